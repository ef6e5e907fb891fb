package checklist

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
)

// beforeT0 captures what the target serves, holds it, follows the candidate, walks the
// T-minus phases and, at T-0, releases the candidate. It reports whether the release
// happened.
func (e *engine) beforeT0() bool {
	if e.windowMissed() {
		msg := fmt.Sprintf("missed the deploy window: T-0 was %s and the window closed at %s",
			e.p.deployAt.UTC().Format(time.RFC3339), e.p.deployAt.Add(e.p.window).UTC().Format(time.RFC3339))
		if e.atT0() {
			msg += fmt.Sprintf("; no new template arrived on %s to release", e.alldesc())
		}
		e.fail(ReasonMissedDeployWindow, msg)
		return false
	}
	if e.p.deployAt != nil {
		e.wakeAt(e.p.deployAt.Add(e.p.window))
	}
	e.deployAtInFreeze()
	var missing []int
	e.each(func() bool {
		if !e.tobs().Found {
			missing = append(missing, e.cur)
		}
		return true
	})
	if len(missing) > 0 {
		e.next = fmt.Sprintf("waiting for %s to exist", e.descs(missing))
		e.pollIn(e.p.interval)
		return false
	}
	if e.notGateable() {
		return false
	}
	if !e.each(func() bool {
		t := e.tobs()
		if !e.capturedHere() {
			// A retry (kubectl checklist retry, verified by the checklist webhook: the
			// checklist it names ended RolledBack or Failed on this revision) releases the
			// revision again, after fresh sign-offs: a person asked.
			if rev := e.revision(); slices.Contains(t.ReleasedRevisions, rev) && e.dcl.Annotations[deployv1alpha1.RetryOfAnnotation] == "" {
				e.fail(ReasonAlreadyReleased, fmt.Sprintf("revision %s was already released on %s: this checklist has nothing to "+
					"release and does not touch it (re-applied from Git after the release?); remove it, or name a new revision", rev, e.tdesc()))
				return false
			}
			if t.Settled {
				e.capture()
			}
		}
		return true
	}) {
		return false
	}
	if !e.captured() {
		// Between two ReplicaSets: what serves cannot be told yet, and a pause would
		// freeze both versions. The checks go on; nothing is held or released there.
		defer e.notSettled()
	}
	e.each(func() bool {
		if e.capturedHere() {
			e.hold()
			e.followCandidate()
		}
		return true
	})
	e.judgeApprovals()

	if !e.atT0() {
		if !e.walk(e.p.tminus, false) {
			return false
		}
		if e.waitingForRevokedApprovals() {
			return false
		}
		if !e.captured() {
			e.next = "every T-minus phase passed"
			return false
		}
		if e.p.deployAt != nil && e.now.Before(*e.p.deployAt) {
			if e.st.Phase != deployv1alpha1.PhaseHolding {
				e.event(corev1.EventTypeNormal, ReasonHolding, fmt.Sprintf("every T-minus phase passed; holding until T-0 at %s",
					e.p.deployAt.UTC().Format(time.RFC3339)))
			}
			e.st.Phase = deployv1alpha1.PhaseHolding
			e.st.CurrentPhase = ""
			e.next = "release at " + e.p.deployAt.UTC().Format(time.RFC3339)
			e.wakeAt(*e.p.deployAt)
			return false
		}
		// T-0 never happens inside a change freeze (or outside an allowed window).
		if e.frozen() {
			return false
		}
		now := e.stamp()
		e.setT0(&now)
	} else if e.waitingForRevokedApprovals() {
		// An approval removed before the release revokes it, also while T-0 waits for
		// the new template.
		e.setT0(nil)
		return false
	} else if e.frozen() {
		// T-0 passed while the new template had not arrived, and a change freeze (or
		// the end of an allowed window) came first. T-0 is taken back: the Deployment
		// is held again, here and at admission (the gate admits a new template
		// unpaused only after T-0), so a template that lands in the freeze waits for
		// it to end, or a break-glass, like a T-0 in a freeze.
		e.setT0(nil)
		e.each(func() bool { e.hold(); return true })
		return false
	}
	return e.releaseAtT0()
}

// notGateable reports a target tminus cannot hold (a StatefulSet with the OnDelete
// strategy, a kind it does not gate) and reports whether there is one: the checklist
// then waits, touching no target, until it can be held (its strategy changed) or the
// checklist is deleted.
func (e *engine) notGateable() bool {
	var why []string
	e.each(func() bool {
		if t := e.tobs(); t.NotGateable != "" && !e.capturedHere() {
			why = append(why, t.NotGateable)
		}
		return true
	})
	if len(why) == 0 {
		return false
	}
	msg := strings.Join(why, "; ")
	if c := meta.FindStatusCondition(e.dcl.Status.Conditions, CondReady); c == nil || c.Reason != ReasonTargetNotGateable {
		e.event(corev1.EventTypeWarning, ReasonTargetNotGateable, msg)
	}
	e.waiting = ReasonTargetNotGateable
	e.next = msg
	e.pollIn(e.p.interval)
	return true
}

// notSettled reports a target rolling out between two ReplicaSets, in front of whatever
// else the checklist waits for.
func (e *engine) notSettled() {
	if terminal(e.st.Phase) {
		return
	}
	defer func(cur int) { e.cur = cur }(e.cur)
	for i := range e.refs {
		if e.cur = i; !e.capturedHere() {
			break
		}
	}
	t := e.tobs()
	e.waiting = ReasonTargetNotSettled
	between := "two ReplicaSets"
	if kindOf(e.ref()) != deployv1alpha1.KindDeployment {
		between = "two revisions"
	}
	e.next = fmt.Sprintf("waiting for %s to settle (rolling out between %s, %d of %d %s updated): "+
		"what serves cannot be told yet; %s", e.tdesc(), between, t.UpdatedReplicas, t.Replicas, podsWord(e.ref()), e.next)
	e.pollIn(e.p.interval)
}

func (e *engine) windowMissed() bool {
	return e.p.deployAt != nil && !e.now.Before(e.p.deployAt.Add(e.p.window))
}

// revision is what the checklist releases, as approvals name it.
func (e *engine) revision() string {
	if e.spec.Revision != "" {
		return e.spec.Revision
	}
	return e.dcl.Name
}

// captured says whether every target's serving template was recorded.
func (e *engine) captured() bool { return e.each(e.capturedHere) }

// atT0 says whether T-0 happened (every target records it at once).
func (e *engine) atT0() bool { return e.t0() != nil }

// capture records, once, the template of the ReplicaSet that serves every replica: what
// a rollback restores. A Deployment that serves nothing yet (created held) is captured
// with no template; a rollback then has nothing to restore.
func (e *engine) capture() {
	t := e.tobs()
	ts := e.target()
	now := e.stamp()
	ts.CapturedAt = &now
	if t.Serving == nil {
		return
	}
	raw, err := json.Marshal(t.Serving)
	if err != nil {
		return
	}
	ts.PreDeployTemplate = &runtime.RawExtension{Raw: raw}
	ts.PreDeployTemplateHash = t.ServingHash
	ts.PreDeployRevision = t.ServingRevision
	ts.PreDeployImages = gate.Images(t.Serving)
	ts.PreDeployPodTemplateHash = t.ServingPodTemplateHash
}

// hold keeps the target paused until T-0 (gate Pause). A target already paused, by
// tminus at admission or by someone else, is left as it is.
func (e *engine) hold() {
	if !e.pauses() || e.atT0() || e.tobs().Paused {
		return
	}
	reason := fmt.Sprintf("held by checklist %s until T-0", e.dcl.Name)
	e.action(Action{Kind: ActionHold, Reason: reason})
	held := e.heldAs()
	msg := fmt.Sprintf("%s %s until every T-minus phase passes", held, e.tdesc())
	if e.frozenBy != "" {
		msg = fmt.Sprintf("%s %s while a change freeze holds T-0", held, e.tdesc())
	}
	e.event(corev1.EventTypeNormal, ReasonTargetPaused, msg)
}

// followCandidate records the template the checklist will release: the one, other than
// the pre-deploy template, that the Deployment holds. Until T-0 releases it, a new push
// replaces it and a revert withdraws it.
func (e *engine) followCandidate() {
	t := e.tobs()
	ts := e.target()
	if t.TemplateHash == ts.PreDeployTemplateHash && ts.PreDeployTemplate != nil {
		if ts.CandidateTemplateHash != "" {
			e.event(corev1.EventTypeNormal, ReasonCandidateWithdrawn, fmt.Sprintf(
				"%s is back on its pre-deploy template (%s): nothing to release yet", e.tdesc(), images(ts.PreDeployImages)))
			ts.CandidateTemplateHash, ts.CandidateImages, ts.CandidateSeenAt = "", nil, nil
		}
		return
	}
	if ts.CandidateTemplateHash == t.TemplateHash {
		return
	}
	msg := fmt.Sprintf("new template on %s (%s): it is what this checklist releases at T-0", e.tdesc(), images(t.TemplateImages))
	reason := ReasonCandidateSeen
	if ts.CandidateTemplateHash != "" {
		reason = ReasonCandidateChanged
		msg = fmt.Sprintf("the template on %s changed before T-0, from %s to %s: the new one is what this checklist releases",
			e.tdesc(), images(ts.CandidateImages), images(t.TemplateImages))
	}
	e.event(corev1.EventTypeNormal, reason, msg)
	now := e.stamp()
	ts.CandidateTemplateHash, ts.CandidateImages, ts.CandidateSeenAt = t.TemplateHash, t.TemplateImages, &now
}

// waitingForRevokedApprovals reports, and says, when an approval of a passed T-minus
// phase was taken back before the release.
func (e *engine) waitingForRevokedApprovals() bool {
	revoked := e.revokedApprovals()
	if len(revoked) == 0 {
		return false
	}
	e.next = "waiting for revoked approvals: " + strings.Join(revoked, ", ")
	return true
}

// revokedApprovals lists approval checks of passed T-minus phases that no longer have
// their sign-offs: an approval removed before T-0 revokes it.
func (e *engine) revokedApprovals() []string {
	var out []string
	for _, ph := range e.p.tminus {
		for _, c := range ph.spec.Checks {
			if c.Approval != nil && len(e.approvers(c.Approval.Role)) < approvalCount(c.Approval) {
				out = append(out, ph.spec.Name+"/"+c.Name)
				if cr := checkRecord(e.phaseRecord(ph.spec.Name), c.Name); cr != nil {
					cr.Outcome = deployv1alpha1.OutcomePending
					cr.Message = "approval revoked before T-0"
					if why := e.notCounted(c.Approval.Role); why != "" {
						cr.Message = "approval no longer counts: " + why
					}
				}
			}
		}
	}
	return out
}

// notCounted says why a sign-off of role does not count, if one of them does not.
func (e *engine) notCounted(role string) string {
	for _, a := range e.st.Approvals {
		if a.Role == role && a.NotCounted != "" {
			return a.Approver + "'s was " + a.NotCounted
		}
	}
	return ""
}

func approvalCount(a *deployv1alpha1.ApprovalCheck) int {
	if a.Count < 1 {
		return 1
	}
	return int(a.Count)
}

// approvers lists the distinct approvers of role whose sign-offs count, in a stable
// order.
func (e *engine) approvers(role string) []string {
	var names []string
	for _, a := range e.st.Approvals {
		if a.Role == role && a.NotCounted == "" && !slices.Contains(names, a.Approver) {
			names = append(names, a.Approver)
		}
	}
	slices.Sort(names)
	return names
}
