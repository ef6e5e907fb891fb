package checklist

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// fail ends the checklist without a verified release and without a rollback. The
// target keeps what it runs; ended takes tminus's own pause off, unless it holds a
// change nothing released.
func (e *engine) fail(reason, msg string) {
	e.st.Phase = deployv1alpha1.PhaseFailed
	e.st.CurrentPhase = ""
	e.failReason, e.failMessage = reason, msg
	e.event(corev1.EventTypeWarning, reason, msg)
}

// rollback ends the checklist after T-0 by restoring the pre-deploy template, once. A
// rollback with nothing to restore says so and ends Failed: never RolledBack while the
// release still serves.
//
// A release of several targets restores every released target that has something to
// restore, in reverse order of release; one with nothing to restore is named in the
// rollback while the others are restored. Only when none has anything to restore does
// it end Failed.
func (e *engine) rollback(reason, msg, value string) {
	msg = e.stepNote() + msg
	dry := e.spec.Rollback.Action == deployv1alpha1.RollbackNone || !e.pauses()
	rec := &deployv1alpha1.RollbackRecord{Reason: reason, Message: msg, Value: value, FiredAt: e.stamp(), DryRun: dry}
	e.st.Rollback = rec
	e.failReason, e.failMessage = reason, msg
	if dry {
		e.st.Phase = deployv1alpha1.PhaseRolledBack
		e.event(corev1.EventTypeWarning, ReasonRollbackDryRun, "would roll back (rollback.action None or gate Observe): "+msg)
		return
	}
	released := e.releasedTargets()
	var restore, nothing []int
	var whys, runs []string
	for _, i := range released {
		e.cur = i
		if e.restorable() {
			restore = append(restore, i)
			continue
		}
		ts := e.ts()
		nothing = append(nothing, i)
		why := fmt.Sprintf("%s served nothing when the checklist started", e.tdesc())
		if ts.PreDeployTemplate != nil {
			why = "the released template is the pre-deploy one"
			if len(e.refs) > 1 {
				why = fmt.Sprintf("the template released on %s is its pre-deploy one", e.tdesc())
			}
		}
		whys, runs = append(whys, why), append(runs, images(ts.CandidateImages))
	}
	if len(restore) == 0 {
		rec.NothingToRestore = true
		e.st.Phase = deployv1alpha1.PhaseFailed
		e.failReason = ReasonNothingToRestore
		e.failMessage = fmt.Sprintf("%s; nothing to restore (%s): %s still runs; fix forward or scale it down", msg,
			strings.Join(whys, "; "), strings.Join(runs, "; "))
		e.event(corev1.EventTypeWarning, ReasonNothingToRestore, e.failMessage)
		return
	}
	e.st.Phase = deployv1alpha1.PhaseRolledBack
	note := "rolling back: " + msg
	if len(e.refs) > 1 {
		slices.Reverse(restore)
		note += fmt.Sprintf("; restoring %s, in reverse order of release", e.descs(restore))
		if len(nothing) > 0 {
			note += fmt.Sprintf("; nothing to restore on %s (%s): it keeps running %s", e.descs(nothing),
				strings.Join(whys, "; "), strings.Join(runs, "; "))
			e.event(corev1.EventTypeWarning, ReasonNothingToRestore, fmt.Sprintf("nothing to restore on %s (%s)",
				e.descs(nothing), strings.Join(whys, "; ")))
		}
		if never := e.neverReleased(); len(never) > 0 {
			note += fmt.Sprintf("; %s was not released and is left as it is", e.descs(never))
		}
	}
	e.event(corev1.EventTypeWarning, ReasonRolledBack, note)
	// ended, which runs next, restores the pre-deploy templates.
}

// neverReleased are the targets the release did not release.
func (e *engine) neverReleased() []int {
	var out []int
	for i := range e.refs {
		if ts := e.tsAt(i); ts == nil || ts.ReleasedTemplateHash == "" {
			out = append(out, i)
		}
	}
	return out
}

// ended runs on every reconcile of a checklist that has ended: it completes a rollback
// and takes tminus's own pause off the target.
func (e *engine) ended() {
	// Nothing is released any more, and no target waits its turn.
	e.st.Releasing = ""
	if rb := e.st.Rollback; e.st.Phase == deployv1alpha1.PhaseRolledBack && rb != nil && !rb.DryRun {
		e.restoreAll()
		// A target not released keeps what it runs; tminus's own pause comes off it.
		for _, i := range e.neverReleased() {
			e.cur = i
			e.releaseOwnPause()
		}
		return
	}
	e.each(func() bool {
		// A change held after the fact in the very reconcile the checklist ended is held
		// in the admission's name: the checklist holds nothing once it has ended.
		for i := range e.d.Actions {
			if a := &e.d.Actions[i]; a.Kind == ActionHold && a.HeldBy == "" && a.Target == e.tname() {
				a.HeldBy, a.Reason, a.HeldTemplate = deployv1alpha1.HeldByAdmission, e.unreleasedReason(), e.tobs().TemplateHash
				return true
			}
		}
		e.releaseOwnPause()
		return true
	})
}

// restoreAll restores every released target that has something to restore, in
// reverse order of release, and records the rollback complete once each of them is
// seen restored.
func (e *engine) restoreAll() {
	st := e.st
	if st.Rollback == nil || st.Rollback.DryRun || st.Rollback.NothingToRestore {
		return
	}
	done := true
	var next []string
	released := e.releasedTargets()
	for _, i := range slices.Backward(released) {
		e.cur = i
		if !e.restorable() {
			continue
		}
		e.next = ""
		if !e.ensureRestored() {
			done = false
		}
		if e.next != "" {
			next = append(next, e.next)
		}
	}
	e.next = strings.Join(next, "; ")
	if done && st.Rollback.CompletedAt == nil {
		now := e.stamp()
		st.Rollback.CompletedAt = &now
	}
}

// unreleasedReason is the hold reason of a change nothing released, left held when the
// checklist ends.
func (e *engine) unreleasedReason() string {
	t := e.tobs()
	ts := e.ts()
	why := fmt.Sprintf("checklist %s ended %s before releasing it", e.dcl.Name, e.st.Phase)
	if ts != nil && ts.ReleasedTemplateHash != "" {
		why = fmt.Sprintf("it changed while checklist %s verified its release, which ended %s", e.dcl.Name, e.st.Phase)
	}
	return fmt.Sprintf("pod template (%s) is released by no checklist (%s); create a DeploymentChecklist targeting %s to release it",
		images(t.TemplateImages), why, e.tdesc())
}

// releaseOwnPause takes off a pause tminus made for this checklist, unless another live
// checklist holds the target (it decides), or the pause holds a change nothing released:
// that one stays held, now in the admission's name, until a checklist of its own
// releases it.
func (e *engine) releaseOwnPause() {
	t := e.tobs()
	if !e.pauses() || !t.Found || !t.Paused || t.HeldBy != e.mine() || e.obs.Blocker != "" {
		return
	}
	ts := e.ts()
	// A change nothing released: one that never ran, or the one held during this
	// checklist's verification (without the admission gate it may have started to).
	heldHere := ts != nil && t.TemplateHash == ts.HeldTemplateHash
	unreleased := (t.TemplateFirstRan.IsZero() || heldHere) &&
		(ts == nil || (t.TemplateHash != ts.ReleasedTemplateHash && t.TemplateHash != ts.PreDeployTemplateHash))
	if !unreleased {
		e.action(Action{Kind: ActionResume, TemplateHash: t.TemplateHash})
		return
	}
	e.action(Action{Kind: ActionHold, HeldBy: deployv1alpha1.HeldByAdmission, Reason: e.unreleasedReason(), HeldTemplate: t.TemplateHash})
}

// ensureRestored puts the pre-deploy template back and resumes the target, until it is
// seen done. Seeing the target already restored (the manager died between the patch and
// the status write) records it without writing again. It never fights a later release:
// while another checklist is live on the target it writes nothing (that one holds and
// releases it now), and once the rolled-back template neither is the Deployment's nor
// serves (a later checklist released another), there is nothing left to restore.
//
// It reports whether the target at hand is seen restored.
func (e *engine) ensureRestored() bool {
	switch {
	case e.ts() != nil && e.ts().RestoredAt != nil:
		return true
	case !e.tobs().Found:
		e.next = fmt.Sprintf("%s is gone; nothing to restore", e.tdesc())
		return false
	case e.obs.Blocker != "":
		e.next = fmt.Sprintf("checklist %s is live on %s: the restore is left to it", e.obs.Blocker, e.blockedOn())
		return false
	}
	t := e.tobs()
	if t.TemplateHash == e.ts().PreDeployTemplateHash && !t.Paused {
		now := e.stamp()
		e.ts().RestoredAt = &now
		e.event(corev1.EventTypeNormal, ReasonRestored, fmt.Sprintf("%s runs its pre-deploy template again (%s, revision %s)",
			e.tdesc(), images(e.ts().PreDeployImages), e.ts().PreDeployRevision))
		return true
	}
	if bad := e.ts().ReleasedTemplateHash; t.TemplateHash != bad && t.TemplateHash != e.ts().PreDeployTemplateHash && t.ServingHash != bad {
		// Another template than the two this checklist knows: restore only over the
		// rolled-back release serving, never over a rollout of another.
		if t.Settled {
			e.next = fmt.Sprintf("%s moved on to %s: the rolled-back release no longer serves; nothing to restore",
				e.tdesc(), images(t.TemplateImages))
			return false
		}
		e.next = fmt.Sprintf("waiting for %s to settle before restoring it", e.tdesc())
		e.pollIn(e.p.interval)
		return false
	}
	tmpl, err := PreDeployTemplate(e.ts())
	if err != nil {
		e.next = err.Error()
		return false
	}
	// The template rolled back stays refused (gate.FromChecklist's RolledBackHash): the
	// Deployment carries the mark in the same write.
	rolledBack := ""
	if e.pauses() {
		rolledBack = e.ts().ReleasedTemplateHash
	}
	e.action(Action{Kind: ActionRestore, Template: tmpl, RolledBack: rolledBack, TemplateHash: t.TemplateHash})
	e.next = fmt.Sprintf("restoring %s to %s (revision %s)", e.tdesc(), images(e.ts().PreDeployImages), e.ts().PreDeployRevision)
	e.pollIn(e.p.interval)
	return false
}
