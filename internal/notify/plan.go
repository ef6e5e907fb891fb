// Package notify tells people of a checklist's transitions: awaiting sign-off,
// released, succeeded, rolled back, failed, degraded, a held change. Plan, pure, adds
// to a status the messages its namespace's NotificationPolicies owe; the Dispatcher,
// outside the reconcile, sends them to Slack, Microsoft Teams or a signed JSON webhook
// and records each one sent in the status, so it is never sent twice.
package notify

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// MaxEntries bounds status.notifications (the CRD's MaxItems).
const MaxEntries = 64

// creationSlack: a transition this long before a policy was created still counts as
// after it (clocks of the API server and the manager differ a little).
const creationSlack = 5 * time.Second

// Transition is one transition a checklist's status shows.
type Transition struct {
	Event deployv1alpha1.NotificationEvent
	// Key is one per transition: the event and what it is about.
	Key string
	// At is when it happened.
	At time.Time
	// Summary says what happened and why, in one paragraph.
	Summary string
	// Ongoing transitions (a wait for sign-off, an outage, a held change) still hold:
	// they are notified to a policy created after they began.
	Ongoing bool
}

// targetsOf names the release's targets with their kinds: "Deployment checkout",
// "Deployments frontend, backend" when they share a kind, "Deployment web, StatefulSet
// db" when not.
func targetsOf(spec *deployv1alpha1.DeploymentChecklistSpec) string {
	refs := spec.TargetRefs()
	for _, r := range refs {
		if r.KindOf() != refs[0].KindOf() {
			return deployv1alpha1.DescribeTargets(refs)
		}
	}
	if len(refs) > 1 {
		return refs[0].KindOf() + "s " + strings.Join(spec.TargetNames(), ", ")
	}
	return deployv1alpha1.DescribeTargets(refs)
}

// Transitions lists the transitions st shows for dcl (the checklist as walked: its
// spec resolved from its template).
func Transitions(dcl *deployv1alpha1.DeploymentChecklist, st *deployv1alpha1.DeploymentChecklistStatus) []Transition {
	var out []Transition
	who := fmt.Sprintf("%s/%s (%s, revision %s)", dcl.Namespace, dcl.Name, targetsOf(&dcl.Spec), approval.Revision(dcl))
	targets := st.TargetsOf(&dcl.Spec)
	cond := func(typ string) *metav1.Condition {
		c := meta.FindStatusCondition(st.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue {
			return nil
		}
		return c
	}
	if c := cond(checklist.CondAwaitingApproval); c != nil && !checklist.Ended(st.Phase) {
		phase := cmp.Or(st.CurrentPhase, string(st.Phase))
		out = append(out, Transition{Event: deployv1alpha1.NotifyAwaitingSignOff, Key: "AwaitingSignOff/" + phase,
			At: c.LastTransitionTime.Time, Ongoing: true,
			Summary: fmt.Sprintf("%s is at %s and needs sign-off: %s.", who, phase, c.Message)})
	}
	var releasedAt *metav1.Time
	var released []string
	for _, ts := range targets {
		if ts.ReleasedAt == nil {
			continue
		}
		if releasedAt == nil || ts.ReleasedAt.Before(releasedAt) {
			releasedAt = ts.ReleasedAt
		}
		s := images(ts.CandidateImages)
		if len(ts.PreDeployImages) > 0 {
			s += " (was " + images(ts.PreDeployImages) + ")"
		}
		if len(targets) > 1 {
			s = ts.Name + " " + s
		}
		released = append(released, s)
	}
	if releasedAt != nil {
		out = append(out, Transition{Event: deployv1alpha1.NotifyReleased, Key: "Released", At: releasedAt.Time,
			Summary: fmt.Sprintf("%s released: %s.", who, strings.Join(released, "; "))})
	}
	ready := meta.FindStatusCondition(st.Conditions, checklist.CondReady)
	switch {
	case st.Phase == deployv1alpha1.PhaseSucceeded && ready != nil:
		out = append(out, Transition{Event: deployv1alpha1.NotifySucceeded, Key: "Succeeded", At: ready.LastTransitionTime.Time,
			Summary: fmt.Sprintf("%s verified: every phase passed.", who)})
	case st.Phase == deployv1alpha1.PhaseRolledBack && st.Rollback != nil:
		out = append(out, Transition{Event: deployv1alpha1.NotifyRolledBack, Key: "RolledBack", At: st.Rollback.FiredAt.Time,
			Summary: rollbackSummary(who, dcl, st)})
	case st.Phase == deployv1alpha1.PhaseFailed && ready != nil:
		out = append(out, Transition{Event: deployv1alpha1.NotifyFailed, Key: "Failed", At: ready.LastTransitionTime.Time,
			Summary: fmt.Sprintf("%s failed (%s): %s", who, ready.Reason, ready.Message)})
	}
	if c := cond(checklist.CondDegraded); c != nil {
		out = append(out, Transition{Event: deployv1alpha1.NotifyDegraded,
			Key: "Degraded/" + c.LastTransitionTime.UTC().Format(time.RFC3339), At: c.LastTransitionTime.Time, Ongoing: true,
			Summary: fmt.Sprintf("%s is degraded and holds (an outage never passes a gate nor rolls back): %s", who, c.Message)})
	}
	if c := cond(checklist.CondHeldChange); c != nil {
		for _, ts := range targets {
			if ts.HeldTemplateHash != "" {
				out = append(out, Transition{Event: deployv1alpha1.NotifyHeldChange, Key: "HeldChange/" + ts.HeldTemplateHash,
					At: c.LastTransitionTime.Time, Ongoing: true, Summary: fmt.Sprintf("%s holds a change: %s", who, c.Message)})
			}
		}
	}
	return out
}

// Trigger is the rollback trigger that fired, as the notification tells it.
type Trigger struct {
	Name      string `json:"name"`
	Value     string `json:"value,omitempty"`
	Threshold string `json:"threshold,omitempty"`
	// Query is the trigger metric's query as sent (variables filled in).
	Query string `json:"query,omitempty"`
}

// FiredTrigger finds the trigger whose firing rolled st back, if a trigger did.
func FiredTrigger(dcl *deployv1alpha1.DeploymentChecklist, st *deployv1alpha1.DeploymentChecklistStatus) *Trigger {
	if st.Rollback == nil || st.Rollback.Reason != checklist.ReasonTriggerFired {
		return nil
	}
	for _, t := range st.Triggers {
		if !strings.HasPrefix(st.Rollback.Message, "rollback trigger "+t.Name+" fired") {
			continue
		}
		out := &Trigger{Name: t.Name, Value: t.Value, Threshold: t.Threshold}
		for _, spec := range dcl.Spec.RollbackTriggers {
			if spec.Name != t.Name || spec.Metric == "" {
				continue
			}
			walked := *dcl // the query's variables as st has them
			walked.Status = *st
			for _, m := range dcl.Spec.Metrics {
				if m.Name == spec.Metric {
					out.Query = checklist.RenderQuery(m.Query, checklist.QueryVarsFor(&walked, spec.Target))
				}
			}
		}
		return out
	}
	return nil
}

func rollbackSummary(who string, dcl *deployv1alpha1.DeploymentChecklist, st *deployv1alpha1.DeploymentChecklistStatus) string {
	rb := st.Rollback
	verb := "rolled back"
	if rb.DryRun {
		verb = "would have been rolled back (dry run: nothing was changed)"
	}
	s := fmt.Sprintf("%s %s: %s", who, verb, rb.Message)
	if rb.Reason == checklist.ReasonRollbackRequested && !rb.DryRun {
		// "rolled back by carol: CVE-…" says it already.
		s = fmt.Sprintf("%s %s", who, rb.Message)
	}
	if t := FiredTrigger(dcl, st); t != nil && t.Query != "" {
		s += fmt.Sprintf(" (query: %s)", t.Query)
	}
	if rb.DryRun {
		return s + "."
	}
	targets := st.TargetsOf(&dcl.Spec)
	var restored, kept []string
	// In reverse order of release, as they are restored.
	for _, ts := range slices.Backward(targets) {
		switch {
		case ts.ReleasedTemplateHash == "" && len(targets) > 1:
			continue // not released: nothing to restore
		case len(ts.PreDeployImages) == 0 || (len(targets) > 1 && ts.ReleasedTemplateHash == ts.PreDeployTemplateHash):
			kept = append(kept, ts.Name)
		case len(targets) > 1:
			restored = append(restored, ts.Name+" "+images(ts.PreDeployImages))
		default:
			restored = append(restored, images(ts.PreDeployImages))
		}
	}
	if len(restored) > 0 {
		s += ". Restored: " + strings.Join(restored, "; ")
	}
	if len(kept) > 0 && len(targets) > 1 {
		s += ". Nothing to restore on " + strings.Join(kept, ", ")
	}
	return s + "."
}

// Selects says whether policy p notifies event e of dcl.
func Selects(p *deployv1alpha1.NotificationPolicy, dcl *deployv1alpha1.DeploymentChecklist, e deployv1alpha1.NotificationEvent) bool {
	if len(p.Spec.On) > 0 && !slices.Contains(p.Spec.On, e) {
		return false
	}
	if p.Spec.Selector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(dcl.Labels))
}

// ReceiverID names a policy's receiver in status: <policy>/<receiver>.
func ReceiverID(policy, receiver string) string { return policy + "/" + receiver }

// Plan adds to st a pending message, per receiver, for each transition st shows that
// a policy notifies and st has no message for, pending or settled. A transition that
// ended before a policy was created is not notified by it (a new policy does not
// announce last month's releases); one still holding is. It returns how many it added.
func Plan(policies []deployv1alpha1.NotificationPolicy, dcl *deployv1alpha1.DeploymentChecklist,
	st *deployv1alpha1.DeploymentChecklistStatus) int {
	// Entries settled under an earlier version are remembered before any is dropped.
	for i := range st.Notifications {
		remember(st, &st.Notifications[i])
	}
	if len(policies) == 0 {
		return 0
	}
	added := 0
	shown := Transitions(dcl, st)
	for _, t := range shown {
		for i := range policies {
			p := &policies[i]
			if !Selects(p, dcl, t.Event) {
				continue
			}
			if !t.Ongoing && t.At.Before(p.CreationTimestamp.Add(-creationSlack)) {
				continue
			}
			for _, r := range p.Spec.Receivers {
				id := ReceiverID(p.Name, r.Name)
				if Owed(st, t.Key, id) {
					continue
				}
				if receiverIndex(st, id, true) < 0 {
					// More receivers than status can remember: one it could not
					// remember sending to might be sent to twice.
					continue
				}
				st.Notifications = append(st.Notifications, deployv1alpha1.NotificationStatus{
					Event: t.Event, Key: t.Key, Receiver: id, Summary: checklist.Truncate(t.Summary, 2048),
					At: metav1.NewTime(t.At), State: deployv1alpha1.NotificationPending,
				})
				added++
			}
		}
	}
	st.Notifications = trim(st.Notifications)
	forgetUnshown(st, shown)
	return added
}

// Owed says whether st already holds the message of transition key to receiver id:
// pending, sent or given up on.
func Owed(st *deployv1alpha1.DeploymentChecklistStatus, key, id string) bool {
	if slices.ContainsFunc(st.Notifications, func(n deployv1alpha1.NotificationStatus) bool {
		return n.Key == key && n.Receiver == id
	}) {
		return true
	}
	tr, i := notified(st, key), receiverIndex(st, id, false)
	return tr != nil && i >= 0 && (slices.Contains(tr.Sent, i) || slices.Contains(tr.Failed, i))
}

// MaxReceivers and MaxTransitions bound status.notified (the CRD's MaxItems).
const (
	MaxReceivers   = 256
	MaxTransitions = 64
)

// receiverIndex is id's index in st's notified receivers; with add, id is added if it
// is not there and there is room. -1 when it is not there.
func receiverIndex(st *deployv1alpha1.DeploymentChecklistStatus, id string, add bool) int32 {
	if st.Notified != nil {
		if i := slices.Index(st.Notified.Receivers, id); i >= 0 {
			return int32(i)
		}
	}
	if !add {
		return -1
	}
	if st.Notified == nil {
		st.Notified = &deployv1alpha1.NotifiedStatus{}
	}
	if len(st.Notified.Receivers) >= MaxReceivers {
		return -1
	}
	st.Notified.Receivers = append(st.Notified.Receivers, id)
	return int32(len(st.Notified.Receivers) - 1)
}

// notified is transition key's entry in st.notified, nil when it has none.
func notified(st *deployv1alpha1.DeploymentChecklistStatus, key string) *deployv1alpha1.NotifiedTransition {
	if st.Notified == nil {
		return nil
	}
	for i := range st.Notified.Transitions {
		if st.Notified.Transitions[i].Key == key {
			return &st.Notified.Transitions[i]
		}
	}
	return nil
}

// remember records message n in st.notified once it is sent or given up on.
func remember(st *deployv1alpha1.DeploymentChecklistStatus, n *deployv1alpha1.NotificationStatus) {
	if n.State != deployv1alpha1.NotificationSent && n.State != deployv1alpha1.NotificationFailed {
		return
	}
	rememberResult(st, n.Key, n.Receiver, n.State == deployv1alpha1.NotificationSent)
}

// rememberResult records that the message of transition key to receiver id was sent
// (or given up on).
func rememberResult(st *deployv1alpha1.DeploymentChecklistStatus, key, id string, sent bool) {
	i := receiverIndex(st, id, true)
	if i < 0 {
		return
	}
	tr := notified(st, key)
	if tr == nil {
		st.Notified.Transitions = append(st.Notified.Transitions, deployv1alpha1.NotifiedTransition{Key: key})
		tr = &st.Notified.Transitions[len(st.Notified.Transitions)-1]
	}
	list := &tr.Failed
	if sent {
		list = &tr.Sent
	}
	if !slices.Contains(*list, i) {
		*list = append(*list, i)
		slices.Sort(*list)
	}
}

// forgetUnshown keeps st.notified within MaxTransitions: the oldest transitions st no
// longer shows go first (one never shown again is never planned again); those still
// shown stay, so none is sent twice.
func forgetUnshown(st *deployv1alpha1.DeploymentChecklistStatus, shown []Transition) {
	if st.Notified == nil {
		return
	}
	trs := &st.Notified.Transitions
	for i := 0; len(*trs) > MaxTransitions && i < len(*trs); {
		if slices.ContainsFunc(shown, func(t Transition) bool { return t.Key == (*trs)[i].Key }) {
			i++
			continue
		}
		*trs = slices.Delete(*trs, i, i+1)
	}
}

// trim keeps at most MaxEntries: the oldest settled (sent or failed) messages go first,
// remembered in notified.
func trim(ns []deployv1alpha1.NotificationStatus) []deployv1alpha1.NotificationStatus {
	for len(ns) > MaxEntries {
		i := max(0, slices.IndexFunc(ns, func(n deployv1alpha1.NotificationStatus) bool {
			return n.State != deployv1alpha1.NotificationPending
		}))
		ns = slices.Delete(ns, i, i+1)
	}
	return ns
}

// Pending says whether st holds a message not sent yet.
func Pending(st *deployv1alpha1.DeploymentChecklistStatus) bool {
	return slices.ContainsFunc(st.Notifications, func(n deployv1alpha1.NotificationStatus) bool {
		return n.State == deployv1alpha1.NotificationPending
	})
}

func images(imgs []string) string {
	if len(imgs) == 0 {
		return "(images unknown)"
	}
	return strings.Join(imgs, ", ")
}
