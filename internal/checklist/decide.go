package checklist

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// The engine walks a checklist through its lifecycle, one file a stage:
//
//	hold.go     before T-0: capture what serves, hold the target, follow the candidate
//	release.go  T-0: release the candidate, wait for it to roll out
//	verify.go   the phases (T-minus and T-plus), their deadlines, held changes
//	end.go      endings: failure, rollback, taking tminus's own pause off
//	checks.go   the checks and triggers themselves

// immediately asks for another reconcile right away: a phase opened whose measurements
// were not due when this reconcile gathered its observations.
const immediately = time.Millisecond

// MaxEventNote is the longest event note the API server keeps (events.k8s.io/v1 note).
const MaxEventNote = 1024

// engine carries one Decide call.
type engine struct {
	dcl  *deployv1alpha1.DeploymentChecklist
	spec *deployv1alpha1.DeploymentChecklistSpec
	p    *plan
	obs  Observations
	// refs are the release's targets and cur the index of the one at hand (targets.go).
	refs []deployv1alpha1.TargetRef
	cur  int
	now  time.Time
	st   *deployv1alpha1.DeploymentChecklistStatus
	d    Decision
	wake []time.Time
	// poll is a requeue that is not a scheduled event, so it is not shown in status.
	poll time.Duration
	next string
	// failure holds the reason of a Failed or RolledBack transition made in this call.
	failReason, failMessage string
	// waiting is the reason the checklist is waiting on its target (Reconciling's
	// reason), when it is not its phase: TargetNotSettled, WaitingForTemplate, Blocked.
	waiting string
	// outage says why a T-plus phase past its deadline holds (Degraded).
	outage string
	// released is set when this call released the candidate (its Release is queued).
	released bool
	// frozenBy says which change freezes hold T-0 now; deployAtFrozen, which will
	// hold deployAt.
	frozenBy, deployAtFrozen string
	// stepBase is, while a step's phase is walked, when the step's pods were ready:
	// the phase's `at` and its checks' grace periods count from then (steps.go).
	stepBase *metav1.Time
}

// Decide computes, from the checklist, what this reconcile observed and the time, the
// new status, the actions, the events and when to look again. It takes the checklist
// whole (WholeOf): never what the manager's cache keeps of an ended one.
func Decide(w Whole, obs Observations, now time.Time) Decision {
	dcl := w.dcl
	e := &engine{dcl: dcl, spec: &dcl.Spec, obs: obs, now: now}
	e.st = dcl.Status.DeepCopy()
	e.st.ObservedGeneration = dcl.Generation
	e.readTargets()
	e.upgradeHashes()

	p, err := parsePlan(&dcl.Spec)
	if err != nil {
		// The CRD refuses such specs; an object stored before a rule existed lands here.
		setCondition(e.st, dcl.Generation, CondStalled, metav1.ConditionTrue, ReasonInvalidSpec, err.Error())
		setCondition(e.st, dcl.Generation, CondReady, metav1.ConditionFalse, ReasonInvalidSpec, err.Error())
		e.sortTargets()
		e.d.Status = *e.st
		return e.d
	}
	e.p = p
	if released(e.st.Phase) && !terminal(e.st.Phase) {
		e.followRelease()
		e.recordBaselines()
	}
	e.syncRecords()
	e.syncApprovals()
	e.requests()

	if !terminal(e.st.Phase) {
		e.run()
	}
	if terminal(e.st.Phase) {
		e.ended()
	}
	e.finish(dcl.Status.Phase)
	return e.d
}

// started says whether the checklist left Pending and Blocked.
func started(phase deployv1alpha1.ChecklistPhase) bool {
	switch phase {
	case "", deployv1alpha1.PhasePending, deployv1alpha1.PhaseBlocked:
		return false
	}
	return true
}

// released says whether the candidate was released: T-0 passed with a template to
// release.
func released(phase deployv1alpha1.ChecklistPhase) bool {
	switch phase {
	case deployv1alpha1.PhaseDeploying, deployv1alpha1.PhaseVerifying, deployv1alpha1.PhaseSucceeded:
		return true
	}
	return false
}

// PastT0 says whether the checklist has released its target or ended: it holds
// nothing before T-0 any more.
func PastT0(phase deployv1alpha1.ChecklistPhase) bool { return released(phase) || terminal(phase) }

// Ended says whether phase is a final one: Succeeded, Failed or RolledBack.
func Ended(phase deployv1alpha1.ChecklistPhase) bool { return terminal(phase) }

// WatchingTriggers says whether the checklist is watching a live release's rollback
// triggers (deploying or verifying).
func WatchingTriggers(phase deployv1alpha1.ChecklistPhase) bool {
	return released(phase) && !terminal(phase)
}

// terminal says whether the checklist has ended.
func terminal(phase deployv1alpha1.ChecklistPhase) bool {
	switch phase {
	case deployv1alpha1.PhaseSucceeded, deployv1alpha1.PhaseFailed, deployv1alpha1.PhaseRolledBack:
		return true
	}
	return false
}

func (e *engine) run() {
	if !e.start() {
		return
	}
	if !released(e.st.Phase) && !e.beforeT0() {
		return
	}
	if e.st.Phase == deployv1alpha1.PhaseDeploying {
		e.deploying()
	}
	if e.st.Phase == deployv1alpha1.PhaseVerifying {
		e.verifying()
	}
}

// start waits while another live checklist holds the target (one live checklist per
// Deployment) and reports whether this one may run. The blocker (gate.Blocker: the
// one releasing, then the oldest, then by name) is asked at every reconcile, not only
// before the start: two checklists created in the same instant may both have started,
// neither seeing the other. The one that does not come first stops (yield), unless it
// has released.
func (e *engine) start() bool {
	// A checklist that released goes on verifying what it released whatever appears
	// beside it: yielding would stop watching a release that serves (its triggers and
	// its rollback). The other one is the one to wait (gate.Blocker puts the checklist
	// releasing first).
	if b := e.obs.Blocker; b != "" && !released(e.st.Phase) {
		if started(e.st.Phase) {
			e.yield(b)
		} else if e.st.Phase != deployv1alpha1.PhaseBlocked {
			e.event(corev1.EventTypeNormal, ReasonBlocked, fmt.Sprintf(
				"checklist %s is live on %s: this one waits for it to end and touches nothing meanwhile", b, e.blockedOn()))
		}
		e.st.Phase = deployv1alpha1.PhaseBlocked
		e.waiting = ReasonBlocked
		e.next = fmt.Sprintf("blocked: checklist %s is live on %s; this one starts when it ends", b, e.blockedOn())
		e.pollIn(e.p.interval)
		return false
	}
	if !started(e.st.Phase) {
		e.st.Phase = deployv1alpha1.PhaseRunning
	}
	return true
}

// yield stops a checklist that started without seeing the checklist that comes first
// on its Deployment: it forgets what it captured and walked, touches nothing from now
// on (the other one decides the target's pause), and starts over once the other ends,
// from what the Deployment serves then.
func (e *engine) yield(blocker string) {
	e.event(corev1.EventTypeWarning, ReasonBlocked, fmt.Sprintf(
		"checklist %s is live on %s and comes first (it is releasing, or was created earlier); this one "+
			"started without seeing it (%s): it stops, touches nothing, and starts over when %s ends",
		blocker, e.blockedOn(), e.st.Phase, blocker))
	e.st.Targets, e.st.Phases, e.st.Triggers, e.st.Baselines, e.st.BreakGlass = nil, nil, nil, nil, nil
	e.st.CurrentPhase = ""
	e.syncRecords()
}

// mine is the held-by annotation value of a hold made for this checklist.
func (e *engine) mine() string { return deployv1alpha1.HeldByChecklist(e.dcl.Name) }

// pauses says whether the checklist may touch its target's pause at all.
func (e *engine) pauses() bool { return e.spec.Gate != deployv1alpha1.GateObserve }

// action queues a write; one to a target is to the target at hand unless it names one.
func (e *engine) action(a Action) {
	if a.Target == "" && a.Kind != ActionCreateJob {
		a.Target = e.tname()
		if k := kindOf(e.ref()); k != deployv1alpha1.KindDeployment {
			a.TargetKind = k
		}
	}
	e.d.Actions = append(e.d.Actions, a)
}

// event queues an event; its note is cut to what the API server keeps, here and only
// here, so the longest rollback message still makes an event.
func (e *engine) event(typ, reason, msg string) {
	e.d.Events = append(e.d.Events, Event{Type: typ, Reason: reason, Message: EventNote(msg)})
}

// EventNote cuts an event note to MaxEventNote bytes on a rune boundary.
func EventNote(s string) string { return truncate(s, MaxEventNote) }

func (e *engine) wakeAt(t time.Time) { e.wake = append(e.wake, t) }

func (e *engine) pollIn(d time.Duration) {
	if e.poll == 0 || d < e.poll {
		e.poll = d
	}
}

// finish sets conditions and the next action, and computes when to look again.
func (e *engine) finish(oldPhase deployv1alpha1.ChecklistPhase) {
	if e.st.Phase != oldPhase && terminal(e.st.Phase) {
		e.st.CurrentPhase = ""
	}
	if e.next == "" {
		e.next = defaultNext(e.st)
	}
	e.st.NextAction = truncate(e.next, 256)
	e.setConditions()
	if e.st.Phase != oldPhase && terminal(e.st.Phase) {
		// Ended in this decision (or, Succeeded, rolled back at a person's request): its
		// record is owed (the reconciler writes it once the release has ended, a
		// rollback restored).
		setCondition(e.st, e.dcl.Generation, CondRecorded, metav1.ConditionFalse, ReasonRecordPending,
			"the release record is written once the release has ended (docs/records.md)")
	}

	// nextActionAt shows the next scheduled event (a phase opening, T-0, a deadline, a
	// trigger's duration ending), not the next measurement: that one moves every
	// interval, and status is not rewritten for it.
	e.st.NextActionAt = nil
	if len(e.wake) > 0 {
		t := metav1.NewTime(slices.MinFunc(e.wake, func(a, b time.Time) int { return a.Compare(b) }))
		e.st.NextActionAt = &t
	}
	if !terminal(e.st.Phase) {
		if t, ok := e.nextMeasurement(); ok {
			e.wakeAt(t)
		}
	}
	e.sortTargets()
	if len(e.st.Targets) == 0 {
		e.st.Targets = nil
	}
	e.d.RequeueAfter = e.poll
	if len(e.wake) > 0 {
		first := slices.MinFunc(e.wake, func(a, b time.Time) int { return a.Compare(b) })
		if d := max(first.Sub(e.now), immediately); e.d.RequeueAfter == 0 || d < e.d.RequeueAfter {
			e.d.RequeueAfter = d
		}
	}
	e.d.Status = *e.st
}

// nextMeasurement is when the metrics and HTTP checks being evaluated (the open phase's,
// and the triggers' after T-0) are next due. It is derived from when they were last
// measured, not from now, so a reconcile that measured nothing records the same time.
func (e *engine) nextMeasurement() (time.Time, bool) {
	var next time.Time
	found := false
	consider := func(last *metav1.Time) {
		due := e.p.nextDue(e.now)
		if last != nil && e.p.nextDue(last.Time).After(e.now) {
			due = e.p.nextDue(last.Time)
		}
		if !found || due.Before(next) {
			next, found = due, true
		}
	}
	if released(e.st.Phase) {
		for i := range e.st.Triggers {
			consider(e.st.Triggers[i].LastEvaluated)
		}
	}
	for _, ph := range e.st.Phases {
		if ph.Name != e.st.CurrentPhase || ph.State != deployv1alpha1.PhaseStateOpen {
			continue
		}
		for i := range ph.Checks {
			if ph.Checks[i].Kind == KindMetric || ph.Checks[i].Kind == KindHTTP {
				consider(ph.Checks[i].LastEvaluated)
			}
		}
	}
	return next, found
}

func defaultNext(st *deployv1alpha1.DeploymentChecklistStatus) string {
	switch st.Phase {
	case deployv1alpha1.PhaseSucceeded:
		return "nothing: every phase passed"
	case deployv1alpha1.PhaseFailed:
		return "nothing: the checklist failed"
	case deployv1alpha1.PhaseRolledBack:
		if st.Rollback != nil && st.Rollback.DryRun {
			return "nothing: a rollback would have happened (dry run)"
		}
		return "nothing: rolled back"
	}
	return "evaluating"
}

// Truncate cuts s to at most n bytes, ending in "..." when cut, never inside a rune.
func Truncate(s string, n int) string { return truncate(s, n) }

// truncate cuts s to at most n bytes, ending in "..." when cut, never inside a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// PreDeployTemplate is the pod template a target served when the checklist started,
// as recorded in its status.
func PreDeployTemplate(ts *deployv1alpha1.TargetStatus) (*corev1.PodTemplateSpec, error) {
	if ts == nil || ts.PreDeployTemplate == nil {
		return nil, fmt.Errorf("no pre-deploy template was recorded")
	}
	var tmpl corev1.PodTemplateSpec
	if err := json.Unmarshal(ts.PreDeployTemplate.Raw, &tmpl); err != nil {
		return nil, fmt.Errorf("cannot read the recorded pre-deploy template: %w", err)
	}
	return &tmpl, nil
}

// images renders a list of images for a message.
func images(list []string) string {
	if len(list) == 0 {
		return "no images"
	}
	return strings.Join(list, ", ")
}

// stamp is now as status records it: API timestamps keep whole seconds, so a time the
// engine compares with later must be the one that round-trips.
func (e *engine) stamp() metav1.Time { return metav1.NewTime(e.now.Truncate(time.Second)) }

// blockedOn names, with its kind, the target this checklist shares with its blocker.
func (e *engine) blockedOn() string {
	if e.obs.BlockedOn != "" {
		return e.descOf(e.obs.BlockedOn)
	}
	return e.alldesc()
}
