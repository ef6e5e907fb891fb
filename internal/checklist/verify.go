package checklist

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// verifying walks the T-plus phases, watching triggers.
func (e *engine) verifying() {
	if !e.releaseGoesOn() {
		return
	}
	// tminus's pause on a released template (a held change was reverted) comes off.
	for _, i := range e.releasedTargets() {
		e.cur = i
		if t := e.tobs(); e.pauses() && t.Paused && t.TemplateHash == e.ts().ReleasedTemplateHash &&
			(t.HeldBy == e.mine() || t.HeldBy == deployv1alpha1.HeldByAdmission) {
			e.action(Action{Kind: ActionResume, TemplateHash: t.TemplateHash})
		}
	}
	if e.walk(e.p.after, true) {
		e.st.Phase = deployv1alpha1.PhaseSucceeded
		e.st.CurrentPhase = ""
		e.event(corev1.EventTypeNormal, ReasonSucceeded, "every phase passed")
	}
}

// heldChange reports a template that replaced the released one after T-0 and was
// released by no checklist; it stays held (paused) and waits for a checklist of its
// own. Without the admission gate it may have started to roll: it is paused now.
func (e *engine) heldChange() {
	t := e.tobs()
	ts := e.ts()
	if ts.HeldTemplateHash != t.TemplateHash {
		ts.HeldTemplateHash, ts.HeldImages = t.TemplateHash, t.TemplateImages
		e.event(corev1.EventTypeWarning, ReasonHeldChange, fmt.Sprintf(
			"%s's pod template changed to %s while this checklist verifies its release (%s): the change is held "+
				"and waits for a checklist of its own; verification of the released template goes on",
			e.tdesc(), images(t.TemplateImages), images(ts.CandidateImages)))
	}
	if e.pauses() && !t.Paused && !e.gateTurnedOff() {
		e.action(Action{Kind: ActionHold, HeldTemplate: t.TemplateHash, Reason: fmt.Sprintf(
			"pod template (%s) changed while checklist %s verifies its release (%s); it waits for a checklist of its own",
			images(t.TemplateImages), e.dcl.Name, images(ts.CandidateImages))})
	}
}

// gateTurnedOff says whether the target carries the gated label with a value that turns
// the admission gate off (the break-glass): tminus then holds no change after the fact.
func (e *engine) gateTurnedOff() bool {
	l := e.tobs().GateLabel
	return l != "" && l != deployv1alpha1.GatedByUser && l != deployv1alpha1.GatedByChecklist
}

// firstPending is the index of the first phase of phases that has not passed, or -1.
// The walk and NeedsFor share it, so they agree on which phase is open.
func (e *engine) firstPending(phases []phasePlan) int {
	for i, ph := range phases {
		if e.phaseRecord(ph.spec.Name).State != deployv1alpha1.PhaseStatePassed {
			return i
		}
	}
	return -1
}

// walk evaluates the first phase of phases that has not passed, and the ones after it
// as they pass. It reports whether every phase has passed.
func (e *engine) walk(phases []phasePlan, tplus bool) bool {
	for i := e.firstPending(phases); i >= 0 && i < len(phases); i++ {
		ph := phases[i]
		rec := e.phaseRecord(ph.spec.Name)
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
		scaledToZero := tplus && e.scaledToZero()
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
			e.endOutage(rec)
			e.event(corev1.EventTypeNormal, ReasonPhasePassed, ph.spec.Name+" passed")
			continue
		}
		unavailable := tplus && !scaledToZero && e.trackUnavailable(ph, rec)
		deadline, ok := e.deadline(phases, i, tplus, rec)
		if ok && !e.now.Before(deadline) {
			if unavailable {
				// An outage is not a failure: the phase holds, and its deadline moves by
				// the time measurements are unavailable.
				e.outage = fmt.Sprintf("%s reached its deadline %s without an answer (%s): holding; the deadline moves by the "+
					"time measurements are unavailable, and a Fail still rolls back", ph.spec.Name, deadline.UTC().Format(time.RFC3339),
					e.failingSummary(ph, rec, false))
				e.next = "holding " + ph.spec.Name + ": measurements unavailable past its deadline"
				e.pollIn(e.p.interval)
				return false
			}
			e.failPhase(rec)
			summary := e.failingSummary(ph, rec, true)
			if scaledToZero {
				summary = fmt.Sprintf("%s was scaled to zero", e.tdesc())
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
			e.next = fmt.Sprintf("%s is scaled to zero: nothing serves the release, so %s cannot pass; scale it up to go on",
				e.tdesc(), ph.spec.Name)
			return false
		}
		// No values in the next action: they move every measurement and this text is
		// in status, so it would be rewritten each time (the check records show them).
		e.next = "waiting for " + ph.spec.Name + ": " + e.failingSummary(ph, rec, false)
		return false
	}
	return true
}

// trackUnavailable records, on an open T-plus phase, when its measurements stopped
// answering and, once they answer again, how long they did not: the phase's deadline
// moves by that much. Unavailable means no check fails and some metric or HTTP check
// is in Error or holds on no data. It reports whether the phase is unavailable now.
func (e *engine) trackUnavailable(ph phasePlan, rec *deployv1alpha1.PhaseStatus) bool {
	failing, unanswered := false, false
	for _, c := range ph.spec.Checks {
		cr := checkRecord(rec, c.Name)
		if cr == nil {
			continue
		}
		switch {
		case cr.Outcome == deployv1alpha1.OutcomeFail:
			failing = true
		case (cr.Kind == KindMetric || cr.Kind == KindHTTP) &&
			(cr.Outcome == deployv1alpha1.OutcomeError || cr.Outcome == deployv1alpha1.OutcomeNoData):
			unanswered = true
		}
	}
	unavailable := unanswered && !failing
	switch {
	case unavailable && rec.UnavailableSince == nil:
		t := e.stamp()
		rec.UnavailableSince = &t
	case !unavailable:
		e.endOutage(rec)
	}
	return unavailable
}

// endOutage adds the time a phase's measurements did not answer, if they did not, to
// how far its deadline moved.
func (e *engine) endOutage(rec *deployv1alpha1.PhaseStatus) {
	if rec.UnavailableSince == nil {
		return
	}
	ext := extension(rec) + e.now.Truncate(time.Second).Sub(rec.UnavailableSince.Time)
	rec.DeadlineExtendedBy = ext.String()
	rec.UnavailableSince = nil
}

// extension is how far a phase's deadline has moved for measurements that did not
// answer (not counting an outage going on now).
func extension(rec *deployv1alpha1.PhaseStatus) time.Duration {
	d, err := time.ParseDuration(rec.DeadlineExtendedBy)
	if err != nil || d < 0 {
		return 0
	}
	return d
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
	case tplus && e.availableAt() != nil:
		t := e.availableAt().Add(phases[i].at)
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
// opening of the next one, or for the last one the default timeout; either moved by
// the time its measurements did not answer.
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
	if i+1 < len(phases) && e.availableAt() != nil {
		limit = e.availableAt().Add(phases[i+1].at)
		// A phase that opened late still gets one interval to be measured.
		limit = latest(limit, opened.Add(e.p.interval))
	} else {
		limit = opened.Add(DefaultLastPhaseTimeout)
	}
	if !ok || limit.Before(d) {
		d = limit
	}
	// A check's grace period gets at least one interval of judging after it.
	for _, c := range phases[i].spec.Checks {
		if after := e.p.checkAfter[CheckKey(phases[i].spec.Name, c.Name)]; after <= 0 {
			continue
		} else if from, ok := e.judgeFrom(after); ok {
			d = latest(d, from.Add(e.p.interval))
		}
	}
	return d.Add(extension(rec)), true
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

// scaledToZero says whether a released target serves nothing (scaled to zero); the
// target at hand is then that one, for the message.
func (e *engine) scaledToZero() bool {
	for _, i := range e.releasedTargets() {
		if e.cur = i; e.tobs().Found && e.tobs().Replicas == 0 {
			return true
		}
	}
	if len(e.releasedTargets()) == 0 && len(e.refs) > 0 {
		e.cur = 0
		return e.tobs().Found && e.tobs().Replicas == 0
	}
	return false
}
