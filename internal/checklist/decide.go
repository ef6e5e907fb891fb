package checklist

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// immediately asks for another reconcile right away: a phase opened whose measurements
// were not due when this reconcile gathered its observations.
const immediately = time.Millisecond

// engine carries one Decide call.
type engine struct {
	dcl  *deployv1alpha1.DeploymentChecklist
	spec *deployv1alpha1.DeploymentChecklistSpec
	p    *plan
	obs  Observations
	now  time.Time
	st   *deployv1alpha1.DeploymentChecklistStatus
	d    Decision
	wake []time.Time
	// poll is a requeue that is not a scheduled event, so it is not shown in status.
	poll time.Duration
	next string
	// failure holds the reason of a Failed or RolledBack transition made in this call.
	failReason, failMessage string
}

// Decide computes, from the checklist, what this reconcile observed and the time, the
// new status, the actions, the events and when to look again.
func Decide(dcl *deployv1alpha1.DeploymentChecklist, obs Observations, now time.Time) Decision {
	e := &engine{dcl: dcl, spec: &dcl.Spec, obs: obs, now: now}
	e.st = dcl.Status.DeepCopy()
	e.st.ObservedGeneration = dcl.Generation

	p, err := parsePlan(&dcl.Spec)
	if err != nil {
		// The CRD refuses such specs; an object stored before a rule existed lands here.
		setCondition(e.st, dcl.Generation, CondStalled, metav1.ConditionTrue, ReasonInvalidSpec, err.Error())
		setCondition(e.st, dcl.Generation, CondReady, metav1.ConditionFalse, ReasonInvalidSpec, err.Error())
		e.d.Status = *e.st
		return e.d
	}
	e.p = p
	e.syncRecords()
	e.syncApprovals()

	switch e.st.Phase {
	case deployv1alpha1.PhaseSucceeded:
	case deployv1alpha1.PhaseFailed, deployv1alpha1.PhaseRolledBack:
		e.ensureRestored()
	default:
		e.run()
	}

	e.finish(dcl.Status.Phase)
	return e.d
}

// released says whether T-0 has passed for this status.
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
	if !released(e.st.Phase) {
		if done := e.beforeT0(); !done {
			return
		}
	}
	if e.st.Phase == deployv1alpha1.PhaseDeploying {
		e.deploying()
	}
	if e.st.Phase == deployv1alpha1.PhaseVerifying {
		e.verifying()
	}
}

// beforeT0 holds the target, walks the T-minus phases and releases at T-0. It reports
// whether the release happened.
func (e *engine) beforeT0() bool {
	if e.st.Phase == "" || e.st.Phase == deployv1alpha1.PhasePending {
		e.st.Phase = deployv1alpha1.PhaseRunning
	}
	if e.windowMissed() {
		e.fail(ReasonMissedDeployWindow, fmt.Sprintf("missed the deploy window: T-0 was %s and the window closed at %s",
			e.p.deployAt.UTC().Format(time.RFC3339), e.p.deployAt.Add(e.p.window).UTC().Format(time.RFC3339)))
		return false
	}
	if e.p.deployAt != nil {
		e.wakeAt(e.p.deployAt.Add(e.p.window))
	}
	if !e.obs.Target.Found {
		e.next = fmt.Sprintf("waiting for Deployment %s to exist", e.spec.Target.Name)
		e.pollIn(e.p.interval)
		return false
	}
	e.hold()
	if !e.walk(e.p.tminus, false) {
		return false
	}
	if revoked := e.revokedApprovals(); len(revoked) > 0 {
		e.next = "waiting for revoked approvals: " + strings.Join(revoked, ", ")
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
	e.release()
	return true
}

func (e *engine) windowMissed() bool {
	return e.p.deployAt != nil && !e.now.Before(e.p.deployAt.Add(e.p.window))
}

// hold keeps the target paused (gate Pause) and keeps the record of what it runs.
func (e *engine) hold() {
	t := e.obs.Target
	if e.spec.Gate != deployv1alpha1.GateObserve && !t.Paused {
		e.action(Action{Kind: ActionPause})
		e.event(corev1.EventTypeNormal, ReasonTargetPaused,
			fmt.Sprintf("paused Deployment %s until every T-minus phase passes", e.spec.Target.Name))
	}
	if t.RunningTemplate == nil {
		return
	}
	if e.st.Target == nil {
		e.st.Target = &deployv1alpha1.TargetStatus{}
	}
	if e.st.Target.PreDeployTemplateHash != t.RunningHash {
		raw, err := json.Marshal(t.RunningTemplate)
		if err == nil {
			e.st.Target.PreDeployTemplate = &runtime.RawExtension{Raw: raw}
			e.st.Target.PreDeployTemplateHash = t.RunningHash
			e.st.Target.PreDeployRevision = t.Revision
		}
	}
}

func (e *engine) release() {
	t := e.obs.Target
	if e.st.Target == nil {
		e.st.Target = &deployv1alpha1.TargetStatus{}
	}
	now := e.stamp()
	e.st.Target.ReleasedAt = &now
	e.st.Target.ReleasedTemplateHash = t.TemplateHash
	e.st.Phase = deployv1alpha1.PhaseDeploying
	e.st.CurrentPhase = ""
	msg := "T-0: every T-minus phase passed"
	if e.spec.Revision != "" {
		msg += "; releasing " + e.spec.Revision
	}
	if t.TemplateHash != "" && t.TemplateHash == e.st.Target.PreDeployTemplateHash {
		msg += " (the Deployment's template is unchanged: nothing new rolls out)"
	}
	e.event(corev1.EventTypeNormal, ReasonReleased, msg)
	// deploying, which runs next, resumes the target.
}

// deploying waits for the released revision to be available, watching triggers.
func (e *engine) deploying() {
	t := e.obs.Target
	if e.triggers() {
		return
	}
	if !t.Found {
		e.next = fmt.Sprintf("Deployment %s is gone; cannot verify the release", e.spec.Target.Name)
		e.pollIn(e.p.interval)
		return
	}
	if e.spec.Gate != deployv1alpha1.GateObserve && t.Paused {
		e.action(Action{Kind: ActionResume})
	}
	if t.ProgressDeadlineExceeded {
		e.rollback(ReasonRolloutStalled, fmt.Sprintf("Deployment %s exceeded its progress deadline", e.spec.Target.Name), "")
		return
	}
	if !rolledOut(t) {
		e.next = fmt.Sprintf("waiting for the rollout: %d of %d replicas updated, %d available",
			t.UpdatedReplicas, t.Replicas, t.AvailableReplicas)
		e.pollIn(e.p.interval)
		return
	}
	now := e.stamp()
	e.st.Target.AvailableAt = &now
	e.st.Phase = deployv1alpha1.PhaseVerifying
	e.event(corev1.EventTypeNormal, ReasonRolloutAvailable,
		fmt.Sprintf("Deployment %s rolled out: %d replicas available; T-plus phases count from now", e.spec.Target.Name, t.AvailableReplicas))
}

func rolledOut(t TargetState) bool {
	return !t.Paused && t.ObservedGeneration >= t.Generation && t.Available &&
		t.UpdatedReplicas == t.Replicas && t.AvailableReplicas == t.Replicas && t.TotalReplicas == t.Replicas
}

// verifying walks the T-plus phases, watching triggers. A target that disappeared can
// be neither verified nor rolled back: the checklist says so and waits.
func (e *engine) verifying() {
	if !e.obs.Target.Found {
		e.next = fmt.Sprintf("Deployment %s is gone; cannot verify the release", e.spec.Target.Name)
		e.pollIn(e.p.interval)
		return
	}
	if e.triggers() {
		return
	}
	if e.walk(e.p.tplus, true) {
		e.st.Phase = deployv1alpha1.PhaseSucceeded
		e.st.CurrentPhase = ""
		e.event(corev1.EventTypeNormal, ReasonSucceeded, "every phase passed")
	}
}

// walk evaluates the first phase of phases that has not passed, and the ones after it
// as they pass. It reports whether every phase has passed.
func (e *engine) walk(phases []phasePlan, tplus bool) bool {
	for i, ph := range phases {
		rec := e.phaseRecord(ph.spec.Name)
		if rec.State == deployv1alpha1.PhaseStatePassed {
			continue
		}
		openAt := e.openAt(phases, i, tplus)
		if e.now.Before(openAt) {
			e.st.CurrentPhase = ""
			e.next = fmt.Sprintf("%s opens at %s", ph.spec.Name, openAt.UTC().Format(time.RFC3339))
			e.wakeAt(openAt)
			return false
		}
		e.st.CurrentPhase = ph.spec.Name
		if rec.State != deployv1alpha1.PhaseStateOpen {
			rec.State = deployv1alpha1.PhaseStateOpen
			t := e.stamp()
			rec.OpenedAt = &t
			e.event(corev1.EventTypeNormal, ReasonPhaseOpened, fmt.Sprintf("%s opened with %d checks", ph.spec.Name, len(ph.spec.Checks)))
		}
		passed, hardFail := e.evaluate(ph, rec)
		// A Deployment scaled to zero serves nothing: a check that passes (an error
		// rate of 0 with no traffic) says nothing about the release.
		scaledToZero := tplus && e.obs.Target.Found && e.obs.Target.Replicas == 0
		if scaledToZero {
			passed = false
		}
		if tplus && hardFail != "" {
			e.failPhase(rec)
			e.rollback(ReasonVerificationFailed, fmt.Sprintf("%s failed: %s", ph.spec.Name, hardFail), "")
			return false
		}
		if passed {
			rec.State = deployv1alpha1.PhaseStatePassed
			t := e.stamp()
			rec.CompletedAt = &t
			e.event(corev1.EventTypeNormal, ReasonPhasePassed, ph.spec.Name+" passed")
			continue
		}
		deadline, ok := e.deadline(phases, i, tplus, rec)
		if ok && !e.now.Before(deadline) {
			e.failPhase(rec)
			summary := e.failingSummary(ph, rec, true)
			if scaledToZero {
				summary = fmt.Sprintf("Deployment %s was scaled to zero", e.spec.Target.Name)
			}
			if tplus {
				e.rollback(ReasonVerificationFailed, fmt.Sprintf("%s did not pass by %s: %s", ph.spec.Name,
					deadline.UTC().Format(time.RFC3339), summary), "")
			} else {
				e.fail(ReasonPhaseTimedOut, fmt.Sprintf("%s did not pass within its timeout %s: %s", ph.spec.Name, ph.spec.Timeout, summary))
			}
			return false
		}
		if ok {
			e.wakeAt(deadline)
		}
		if scaledToZero {
			e.next = fmt.Sprintf("Deployment %s is scaled to zero: nothing serves the release, so %s cannot pass; scale it up to go on",
				e.spec.Target.Name, ph.spec.Name)
			return false
		}
		// No values in the next action: they move every measurement and this text is
		// in status, so it would be rewritten each time (the check records show them).
		e.next = "waiting for " + ph.spec.Name + ": " + e.failingSummary(ph, rec, false)
		return false
	}
	return true
}

func (e *engine) failPhase(rec *deployv1alpha1.PhaseStatus) {
	rec.State = deployv1alpha1.PhaseStateFailed
	t := e.stamp()
	rec.CompletedAt = &t
}

// openAt is when phase i opens: at its offset from T-0 (T-minus phases with deployAt,
// T-plus phases from availability), and never before the phase before it passed.
func (e *engine) openAt(phases []phasePlan, i int, tplus bool) time.Time {
	var prev *time.Time
	if i > 0 {
		if r := e.phaseRecord(phases[i-1].spec.Name); r.CompletedAt != nil {
			t := r.CompletedAt.Time
			prev = &t
		}
	}
	var scheduled *time.Time
	switch {
	case tplus && e.st.Target != nil && e.st.Target.AvailableAt != nil:
		t := e.st.Target.AvailableAt.Add(phases[i].at)
		scheduled = &t
	case !tplus && e.p.deployAt != nil:
		t := e.p.deployAt.Add(phases[i].at)
		scheduled = &t
	}
	switch {
	case scheduled != nil && prev != nil:
		if prev.After(*scheduled) {
			return *prev
		}
		return *scheduled
	case scheduled != nil:
		return *scheduled
	case prev != nil:
		return *prev
	}
	return e.now
}

// deadline is when an open phase fails: its own timeout; for a T-plus phase also the
// opening of the next one, or for the last one the default timeout.
func (e *engine) deadline(phases []phasePlan, i int, tplus bool, rec *deployv1alpha1.PhaseStatus) (time.Time, bool) {
	opened := e.now
	if rec.OpenedAt != nil {
		opened = rec.OpenedAt.Time
	}
	var d time.Time
	ok := false
	if phases[i].timeout > 0 {
		d, ok = opened.Add(phases[i].timeout), true
	}
	if !tplus {
		return d, ok
	}
	var limit time.Time
	if i+1 < len(phases) && e.st.Target != nil && e.st.Target.AvailableAt != nil {
		limit = e.st.Target.AvailableAt.Add(phases[i+1].at)
		// A phase that opened late still gets one interval to be measured.
		limit = latest(limit, opened.Add(e.p.interval))
	} else {
		limit = opened.Add(DefaultLastPhaseTimeout)
	}
	if !ok || limit.Before(d) {
		d = limit
	}
	return d, true
}

// failingSummary lists the checks of a phase that have not passed, with what they need
// and, if values, what they measured.
func (e *engine) failingSummary(ph phasePlan, rec *deployv1alpha1.PhaseStatus, values bool) string {
	var parts []string
	for _, c := range ph.spec.Checks {
		cr := checkRecord(rec, c.Name)
		if cr == nil || cr.Outcome == deployv1alpha1.OutcomePass {
			continue
		}
		s := c.Name + " " + string(cr.Outcome)
		if values && cr.Value != "" {
			s += " " + cr.Value
		}
		if cr.Threshold != "" {
			s += " (needs " + cr.Threshold + ")"
		}
		if cr.Message != "" && cr.Outcome != deployv1alpha1.OutcomeFail {
			s += ": " + cr.Message
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no check failing"
	}
	return strings.Join(parts, "; ")
}

// fail ends the checklist before T-0; the workload keeps what it ran.
func (e *engine) fail(reason, msg string) {
	e.st.Phase = deployv1alpha1.PhaseFailed
	e.failReason, e.failMessage = reason, msg
	e.event(corev1.EventTypeWarning, reason, msg)
	if e.spec.Gate != deployv1alpha1.GateObserve {
		e.ensureRestored()
	}
}

// rollback ends the checklist after T-0 by restoring the pre-deploy template, once.
func (e *engine) rollback(reason, msg, value string) {
	e.st.Phase = deployv1alpha1.PhaseRolledBack
	e.failReason, e.failMessage = reason, msg
	dry := e.spec.Rollback.Action == deployv1alpha1.RollbackNone || e.spec.Gate == deployv1alpha1.GateObserve
	e.st.Rollback = &deployv1alpha1.RollbackRecord{
		Reason: reason, Message: msg, Value: value, FiredAt: e.stamp(), DryRun: dry,
	}
	if dry {
		e.event(corev1.EventTypeWarning, ReasonRollbackDryRun, "would roll back (rollback.action None or gate Observe): "+msg)
		return
	}
	e.event(corev1.EventTypeWarning, ReasonRolledBack, "rolling back: "+msg)
	e.ensureRestored()
}

// ensureRestored puts the pre-deploy template back and resumes the target, unless it
// was seen done. Seeing the target already restored (the manager died between the
// patch and the status write) records it without writing again.
func (e *engine) ensureRestored() {
	st := e.st
	switch {
	case st.Phase == deployv1alpha1.PhaseRolledBack && (st.Rollback == nil || st.Rollback.DryRun):
		return
	case st.Phase == deployv1alpha1.PhaseFailed && e.spec.Gate == deployv1alpha1.GateObserve:
		return
	case st.Target != nil && st.Target.RestoredAt != nil:
		return
	case st.Target == nil || st.Target.PreDeployTemplate == nil:
		e.next = fmt.Sprintf("nothing to restore: Deployment %s had never rolled out when the checklist started", e.spec.Target.Name)
		return
	case !e.obs.Target.Found:
		e.next = fmt.Sprintf("Deployment %s is gone; nothing to restore", e.spec.Target.Name)
		return
	}
	t := e.obs.Target
	if t.TemplateHash == st.Target.PreDeployTemplateHash && !t.Paused {
		now := e.stamp()
		st.Target.RestoredAt = &now
		if st.Rollback != nil && st.Rollback.CompletedAt == nil {
			st.Rollback.CompletedAt = &now
		}
		e.event(corev1.EventTypeNormal, ReasonRestored, fmt.Sprintf("Deployment %s runs its pre-deploy template again (revision %s)",
			e.spec.Target.Name, st.Target.PreDeployRevision))
		return
	}
	tmpl, err := PreDeployTemplate(st)
	if err != nil {
		e.next = err.Error()
		return
	}
	e.action(Action{Kind: ActionRestore, Template: tmpl})
	e.next = fmt.Sprintf("restoring Deployment %s to revision %s", e.spec.Target.Name, st.Target.PreDeployRevision)
	e.pollIn(e.p.interval)
}

func (e *engine) action(a Action) { e.d.Actions = append(e.d.Actions, a) }

func (e *engine) event(typ, reason, msg string) {
	e.d.Events = append(e.d.Events, Event{Type: typ, Reason: reason, Message: msg})
}

func (e *engine) wakeAt(t time.Time) { e.wake = append(e.wake, t) }

func (e *engine) pollIn(d time.Duration) {
	if e.poll == 0 || d < e.poll {
		e.poll = d
	}
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
				}
			}
		}
	}
	return out
}

func approvalCount(a *deployv1alpha1.ApprovalCheck) int {
	if a.Count < 1 {
		return 1
	}
	return int(a.Count)
}

// approvers lists the distinct approvers of role, in a stable order.
func (e *engine) approvers(role string) []string {
	var names []string
	for _, a := range e.obs.Approvals[role] {
		if !slices.Contains(names, a.Approver) {
			names = append(names, a.Approver)
		}
	}
	slices.Sort(names)
	return names
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
		return "nothing: the checklist failed before T-0"
	case deployv1alpha1.PhaseRolledBack:
		if st.Rollback != nil && st.Rollback.DryRun {
			return "nothing: a rollback would have happened (dry run)"
		}
		return "nothing: rolled back"
	}
	return "evaluating"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// PreDeployTemplate is the pod template the target ran before T-0, as recorded in status.
func PreDeployTemplate(st *deployv1alpha1.DeploymentChecklistStatus) (*corev1.PodTemplateSpec, error) {
	if st.Target == nil || st.Target.PreDeployTemplate == nil {
		return nil, fmt.Errorf("no pre-deploy template was recorded")
	}
	var tmpl corev1.PodTemplateSpec
	if err := json.Unmarshal(st.Target.PreDeployTemplate.Raw, &tmpl); err != nil {
		return nil, fmt.Errorf("cannot read the recorded pre-deploy template: %w", err)
	}
	return &tmpl, nil
}

// stamp is now as status records it: API timestamps keep whole seconds, so a time the
// engine compares with later must be the one that round-trips.
func (e *engine) stamp() metav1.Time { return metav1.NewTime(e.now.Truncate(time.Second)) }
