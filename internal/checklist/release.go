package checklist

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/freeze"
)

// releaseAtT0 runs once T-0 has passed: it releases the candidate, or, when the
// Deployment holds none yet, waits for it with nothing held. It reports whether the
// release happened.
func (e *engine) releaseAtT0() bool {
	if cand, _ := e.candidateSet(); cand == "" {
		names := e.alldesc()
		if e.st.Phase != deployv1alpha1.PhaseHolding || e.st.CurrentPhase != "" {
			e.event(corev1.EventTypeNormal, ReasonWaitingForTemplate, fmt.Sprintf(
				"T-0: every T-minus phase passed, but %s holds no new template yet; it is released as soon as it arrives",
				names))
		}
		e.st.Phase = deployv1alpha1.PhaseHolding
		e.st.CurrentPhase = ""
		e.waiting = ReasonWaitingForTemplate
		var serves []string
		e.each(func() bool { serves = append(serves, images(e.target().PreDeployImages)); return true })
		e.next = fmt.Sprintf("T-0 passed: waiting for the new template (%s serves %s)", names, strings.Join(serves, "; "))
		// Nothing to hold: take tminus's own pause off.
		e.each(func() bool {
			if t := e.tobs(); e.pauses() && t.Paused && t.HeldBy == e.mine() {
				e.action(Action{Kind: ActionResume, TemplateHash: t.TemplateHash})
			}
			return true
		})
		// A freeze that starts (or an allowed window that closes) while the template
		// has not arrived takes T-0 back and holds the Deployment again: look then.
		if at, ok := freeze.NextHold(e.obs.Freezes, e.now); ok {
			e.wakeAt(at)
		}
		e.pollIn(e.p.interval)
		return false
	}
	e.release()
	return true
}

// release releases the candidates, all at once in the order of spec.targets: from now
// on only they are rolled out and verified. A target whose template did not change is
// not released (tminus's own pause comes off it) and is never restored. A Sequential
// release (spec.release.order) releases only the first target holding a new template;
// the others wait their turn, held (releaseNext).
func (e *engine) release() {
	now := e.stamp()
	e.st.Phase = deployv1alpha1.PhaseDeploying
	e.st.CurrentPhase = ""
	if e.spec.Sequential() {
		e.releaseNext()
		return
	}
	var what []string
	var unchanged []int
	e.each(func() bool {
		ts := e.target()
		if ts.CandidateTemplateHash == "" {
			unchanged = append(unchanged, e.cur)
			if t := e.tobs(); e.pauses() && t.Paused && t.HeldBy == e.mine() {
				e.action(Action{Kind: ActionResume, TemplateHash: t.TemplateHash})
			}
			return true
		}
		ts.ReleasedAt = &now
		ts.ReleasedTemplateHash = ts.CandidateTemplateHash
		if e.stepped() {
			ts.Step = 1
		}
		if len(e.refs) > 1 {
			what = append(what, e.tname()+" "+images(ts.CandidateImages))
		} else {
			what = append(what, images(ts.CandidateImages))
		}
		if e.pauses() {
			e.action(e.releaseAction())
			e.released = true
		}
		return true
	})
	msg := "T-0: every T-minus phase passed; releasing"
	if e.spec.Revision != "" {
		msg += " " + e.spec.Revision
	}
	msg += " (" + strings.Join(what, "; ") + ")"
	if k := e.step(); k > 0 && k <= len(e.p.steps) {
		msg += fmt.Sprintf("; %s: %s first, judged by %s", e.onStep(k), podsText(e.p.steps[k-1].pods), e.p.steps[k-1].phase.spec.Name)
	}
	if len(unchanged) > 0 {
		msg += fmt.Sprintf("; %s did not change: not released", e.descs(unchanged))
	}
	if t0 := e.t0(); t0 != nil && t0.Before(&now) {
		msg += fmt.Sprintf("; the new template arrived %s after T-0", now.Sub(t0.Time).Round(time.Second))
	}
	e.event(corev1.EventTypeNormal, ReasonReleased, msg)
}

// releaseNext releases, in a Sequential release, the next target after the one
// released last (status.releasing) that holds a new template; those passed over, whose
// template did not change, are not released (tminus's own pause comes off them). It
// reports whether a target was released; when none is left, status.releasing is
// cleared.
func (e *engine) releaseNext() bool {
	defer func(cur int) { e.cur = cur }(e.cur)
	from := 0
	if e.st.Releasing != "" {
		from = slices.IndexFunc(e.refs, func(r deployv1alpha1.TargetRef) bool { return r.Name == e.st.Releasing }) + 1
	}
	prev := e.st.Releasing
	var unchanged []int
	for i := from; i < len(e.refs); i++ {
		e.cur = i
		ts := e.target()
		if ts.CandidateTemplateHash == "" {
			unchanged = append(unchanged, i)
			if t := e.tobs(); e.pauses() && t.Paused && t.HeldBy == e.mine() {
				e.action(Action{Kind: ActionResume, TemplateHash: t.TemplateHash})
			}
			continue
		}
		now := e.stamp()
		ts.ReleasedAt = &now
		ts.ReleasedTemplateHash = ts.CandidateTemplateHash
		e.st.Releasing = e.tname()
		if e.pauses() {
			e.action(Action{Kind: ActionRelease, Revision: e.revision(), TemplateHash: ts.ReleasedTemplateHash})
			e.released = true
		}
		msg := "T-0: every T-minus phase passed; releasing"
		if prev != "" {
			msg = fmt.Sprintf("%s rolled out; releasing", e.descOf(prev))
		}
		if e.spec.Revision != "" {
			msg += " " + e.spec.Revision
		}
		msg += fmt.Sprintf(" on %s (%s)", e.tdesc(), images(ts.CandidateImages))
		if len(unchanged) > 0 {
			msg += fmt.Sprintf("; %s did not change: not released", e.descs(unchanged))
		}
		if rest := e.waitingTurn(); len(rest) > 0 {
			msg += fmt.Sprintf("; %s waits for its rollout, held (release order Sequential)", e.descs(rest))
		}
		e.event(corev1.EventTypeNormal, ReasonReleased, msg)
		return true
	}
	e.st.Releasing = ""
	if len(unchanged) > 0 {
		e.event(corev1.EventTypeNormal, ReasonReleased, fmt.Sprintf("%s did not change: not released", e.descs(unchanged)))
	}
	return false
}

// waitingTurn are, in a Sequential release, the targets after the one released now
// (status.releasing): they wait for its rollout, held.
func (e *engine) waitingTurn() []int {
	if !e.spec.Sequential() || e.st.Releasing == "" || terminal(e.st.Phase) {
		return nil
	}
	at := slices.IndexFunc(e.refs, func(r deployv1alpha1.TargetRef) bool { return r.Name == e.st.Releasing })
	if at < 0 {
		return nil
	}
	var out []int
	for i := at + 1; i < len(e.refs); i++ {
		out = append(out, i)
	}
	return out
}

// holdWaiting keeps the targets waiting their turn held, and follows their candidate:
// a new template they get meanwhile is what they release at their turn. The admission
// gate holds such a template as it is written (gate.Checklist.WaitingTurn); this pauses
// one that got through without it, once it is settled (a pause between two
// ReplicaSets would freeze both).
func (e *engine) holdWaiting() {
	defer func(cur int) { e.cur = cur }(e.cur)
	for _, i := range e.waitingTurn() {
		e.cur = i
		t := e.tobs()
		if !t.Found || !e.capturedHere() {
			continue
		}
		e.followCandidate()
		if e.pauses() && !t.Paused && t.Settled {
			e.action(Action{Kind: ActionHold, Reason: fmt.Sprintf("held by checklist %s until %s rolls out (release order Sequential)",
				e.dcl.Name, e.descOf(e.st.Releasing))})
		}
	}
}

// deploying waits for every released template to be available, watching triggers.
func (e *engine) deploying() {
	if !e.releaseGoesOn() {
		return
	}
	if !e.steps() {
		return
	}
	var waiting []string
	for _, i := range e.releasedTargets() {
		e.cur = i
		out, goesOn := e.deployingTarget()
		if !goesOn {
			return
		}
		if !out {
			t := e.tobs()
			waiting = append(waiting, fmt.Sprintf("%d of %d %s updated, %d available", t.UpdatedReplicas, t.Replicas,
				podsWord(e.ref()), t.AvailableReplicas))
			if len(e.refs) > 1 {
				waiting[len(waiting)-1] = e.tname() + " " + waiting[len(waiting)-1]
			}
		}
	}
	if len(waiting) == 0 && e.spec.Sequential() && e.st.Releasing != "" && e.releaseNext() {
		// The previous target rolled out and the next one was released just now.
		waiting = append(waiting, e.st.Releasing+" released")
	}
	e.holdWaiting()
	if len(waiting) > 0 {
		e.next = "waiting for the rollout: " + strings.Join(waiting, "; ")
		if rest := e.waitingTurn(); len(rest) > 0 {
			e.next += fmt.Sprintf("; then %s (release order Sequential)", e.descs(rest))
		}
		e.pollIn(e.p.interval)
		return
	}
	now := e.stamp()
	var available int32
	var released []deployv1alpha1.TargetRef
	for _, i := range e.releasedTargets() {
		e.cur = i
		e.ts().AvailableAt = &now
		available += e.tobs().AvailableReplicas
		released = append(released, e.ref())
	}
	e.st.Phase = deployv1alpha1.PhaseVerifying
	e.event(corev1.EventTypeNormal, ReasonRolloutAvailable,
		fmt.Sprintf("%s rolled out: %d %s available; T-plus phases count from now", e.descs(e.releasedTargets()), available,
			podsWord(released...)))
}

// deployingTarget looks after the rollout of the target at hand: it reports whether
// it rolled out, and whether the release goes on (false: it waits for someone, or
// rolled back).
func (e *engine) deployingTarget() (out, goesOn bool) {
	t := e.tobs()
	if e.pauses() && t.Paused && t.TemplateHash == e.ts().ReleasedTemplateHash && !e.released {
		if t.HeldBy == "" {
			e.next = fmt.Sprintf("%s was %s by someone other than tminus: take that off to roll out the release", e.tdesc(), e.heldAs())
			if kindOf(e.ref()) == deployv1alpha1.KindDeployment {
				e.next = fmt.Sprintf("%s was paused by someone other than tminus: resume it to roll out the release", e.tdesc())
			}
			e.pollIn(e.p.interval)
			return false, false
		}
		// tminus's pause (the release's resume did not land yet, or the webhook's cache
		// lagged): release again, it is idempotent.
		e.action(e.releaseAction())
	}
	if e.progressDeadlineExceeded() {
		e.rollback(ReasonRolloutStalled, fmt.Sprintf("%s exceeded its progress deadline rolling out %s",
			e.tdesc(), images(e.ts().CandidateImages)), "")
		return false, false
	}
	if e.pauses() && !e.released && !t.Paused && t.TemplateHash == e.ts().ReleasedTemplateHash &&
		!slices.Contains(t.ReleasedRevisions, e.revision()) {
		// The release's write was lost after status recorded it (it conflicted with
		// the Deployment controller's writes a few times over, and the reconcile that
		// read the checklist again found it released): the revision is not recorded
		// on the Deployment, so a re-applied old checklist would not know it. Release
		// again; it is idempotent.
		e.action(e.releaseAction())
	}
	return e.rolledOut(), true
}

// releaseGoesOn is what deploying and verifying check first, and reports whether they
// go on: the target is still there (one that disappeared can be neither verified nor
// rolled back: the checklist says so and waits), no trigger fired, and the target still
// holds the release (templateMoved).
//
// In a release of several targets, a released target that disappeared fails the
// release naming it, and the others are restored.
func (e *engine) releaseGoesOn() bool {
	released := e.releasedTargets()
	for _, i := range released {
		if e.cur = i; e.tobs().Found {
			continue
		}
		if len(released) == 1 {
			e.next = fmt.Sprintf("%s is gone; cannot verify the release", e.tdesc())
			e.pollIn(e.p.interval)
			return false
		}
		e.rollback(ReasonTargetGone, fmt.Sprintf("%s, released by this checklist, was deleted during the release", e.tdesc()), "")
		return false
	}
	if e.triggers() {
		return false
	}
	for _, i := range released {
		if e.cur = i; e.templateMoved() {
			return false
		}
	}
	return true
}

// rolledOut says whether the released template serves every replica, all available.
// It reads the ReplicaSet that serves, not the Deployment's updated count, which
// refers to its template now: a change held during the rollout does not hide it.
func (e *engine) rolledOut() bool {
	t := e.tobs()
	if t.UpdateHash != "" && (!t.Settled || t.ServingHash != e.ts().ReleasedTemplateHash) {
		// A StatefulSet rolls out the pods at and above its owner's partition: with one
		// above 0 its current revision never becomes the update revision, so it is
		// rolled out once those pods run the release and every pod is ready.
		want := max(t.Replicas-t.OwnerPartition, 0)
		return t.ObservedGeneration >= t.Generation && !t.Paused && t.UpdateHash == e.ts().ReleasedTemplateHash &&
			t.Partition <= t.OwnerPartition && t.UpdatedReplicas >= want &&
			t.Available && t.AvailableReplicas >= t.Replicas && t.TotalReplicas == t.Replicas
	}
	return t.ObservedGeneration >= t.Generation && t.Settled && t.ServingHash == e.ts().ReleasedTemplateHash &&
		t.Available && t.AvailableReplicas >= t.Replicas && t.TotalReplicas == t.Replicas
}

// progressDeadlineExceeded trusts the Deployment's ProgressDeadlineExceeded only when the
// Deployment controller saw the current generation and the condition turned after the
// release: a paused Deployment keeps one left over from before, which says nothing
// about the release.
func (e *engine) progressDeadlineExceeded() bool {
	t := e.tobs()
	if !t.ProgressDeadlineExceeded || t.ObservedGeneration < t.Generation || e.ts().ReleasedAt == nil {
		return false
	}
	return t.ProgressingSince.After(e.ts().ReleasedAt.Time)
}

// templateMoved handles, after T-0, a Deployment that no longer holds the released
// template, and reports whether the checklist ended on it:
//   - back on the pre-deploy template, or on one it ran before the release (`kubectl
//     rollout undo`, a Git revert): the release was withdrawn; nothing left to verify;
//   - a new template nothing released, held before it rolled (the admission gate): it
//     is reported and stays held; verification of the released template goes on;
//   - a new template that started rolling (no admission gate): while deploying, the
//     release can no longer be told apart and the checklist ends; while verifying it
//     is paused at once and reported.
func (e *engine) templateMoved() bool {
	t := e.tobs()
	ts := e.ts()
	if t.TemplateHash == ts.ReleasedTemplateHash {
		if ts.HeldTemplateHash != "" {
			e.event(corev1.EventTypeNormal, ReasonHeldChangeGone, fmt.Sprintf(
				"%s is back on the released template (%s): the held change (%s) is gone", e.tdesc(),
				images(ts.CandidateImages), images(ts.HeldImages)))
			ts.HeldTemplateHash, ts.HeldImages = "", nil
		}
		return false
	}
	ranBefore := !t.TemplateFirstRan.IsZero() && ts.ReleasedAt != nil && t.TemplateFirstRan.Before(ts.ReleasedAt.Time)
	if t.TemplateHash == ts.PreDeployTemplateHash || ranBefore {
		e.fail(ReasonReleaseWithdrawn, fmt.Sprintf("%s no longer holds the released template (%s): it was set back to %s, "+
			"a template it ran before, outside tminus; there is nothing left to verify", e.tdesc(), images(ts.CandidateImages),
			images(t.TemplateImages)))
		return true
	}
	if e.st.Phase == deployv1alpha1.PhaseDeploying {
		switch {
		case !t.TemplateFirstRan.IsZero():
			e.fail(ReasonReleaseReplaced, fmt.Sprintf("%s's template changed to %s while the release (%s) was rolling out, "+
				"and the change is rolling too (no admission gate held it); tminus cannot verify a release that no longer rolls out, "+
				"and does not pause a rollout halfway", e.tdesc(), images(t.TemplateImages), images(ts.CandidateImages)))
			return true
		case t.Settled && t.ServingHash != ts.ReleasedTemplateHash:
			e.fail(ReasonReleaseReplaced, fmt.Sprintf("%s's template changed to %s before the release (%s) rolled out; "+
				"the change is held and waits for a checklist of its own", e.tdesc(), images(t.TemplateImages), images(ts.CandidateImages)))
			return true
		}
	}
	e.heldChange()
	return false
}
