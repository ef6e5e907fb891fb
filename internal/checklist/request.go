package checklist

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
)

// requests acts, once, on a person's verified request (abort before T-0, rollback after
// it) and records who asked, why and what was made of it in status.request. An
// unverified request is reported and not acted on; one the checklist can no longer act
// on says why. A request already recorded is not read again, so one acted on before a
// restart is not acted on twice.
func (e *engine) requests() {
	for _, r := range e.obs.Requests {
		if e.recorded(r) {
			continue
		}
		rec := &deployv1alpha1.RequestRecord{Kind: r.Kind, By: truncate(r.By, 256), Reason: truncate(r.Reason, 512),
			WrittenBy: truncate(r.WrittenBy, 256), At: e.stamp(), After: e.st.Phase}
		what := map[deployv1alpha1.RequestKind]string{deployv1alpha1.RequestRollback: "rollback",
			deployv1alpha1.RequestAbort: "abort"}[r.Kind]
		if !r.Verified {
			rec.State = deployv1alpha1.RequestUnverified
			rec.Message = truncate(fmt.Sprintf("%s requested by %s (%s) was not verified by the checklist webhook, so it is "+
				"not acted on: write it again while the webhook is served (kubectl checklist %s %s --reason ...)",
				what, r.By, r.Reason, what, e.dcl.Name), 1024)
			e.st.Request = rec
			e.event(corev1.EventTypeWarning, ReasonRequestNotActed, rec.Message)
			continue
		}
		var why string
		switch r.Kind {
		case deployv1alpha1.RequestAbort:
			why = AbortRefusal(e.st.Phase)
		case deployv1alpha1.RequestRollback:
			why = RollbackRefusal(e.dcl, func(name string) TargetState {
				for i, ref := range e.refs {
					if ref.Name == name {
						return *e.obs.targetAt(i)
					}
				}
				return TargetState{}
			}, e.obs.Blocker)
		}
		if why != "" {
			rec.State, rec.Message = deployv1alpha1.RequestNotApplicable, truncate(fmt.Sprintf(
				"%s requested by %s (%s) is not acted on: %s", what, r.By, r.Reason, why), 1024)
			e.st.Request = rec
			e.event(corev1.EventTypeWarning, ReasonRequestNotActed, rec.Message)
			continue
		}
		rec.State = deployv1alpha1.RequestActed
		e.st.Request = rec
		switch r.Kind {
		case deployv1alpha1.RequestAbort:
			e.abort(r)
		case deployv1alpha1.RequestRollback:
			e.rollback(ReasonRollbackRequested, fmt.Sprintf("rolled back by %s: %s", r.By, r.Reason), "")
		}
		rec.Message = truncate(e.failMessage, 1024)
		// One request acts per checklist: it has ended.
		return
	}
}

// recorded says whether status.request already records r as it stands: acted on,
// refused, or reported unverified (a request verified since is read again).
func (e *engine) recorded(r Request) bool {
	rec := e.st.Request
	if rec == nil || rec.Kind != r.Kind || rec.By != truncate(r.By, 256) || rec.Reason != truncate(r.Reason, 512) {
		return false
	}
	return rec.State != deployv1alpha1.RequestUnverified || !r.Verified
}

// abort ends the checklist before T-0 at a person's request: nothing is released; a
// change it held stays held (ended holds it in the admission's name) until a checklist
// of its own, or a retry of this one, releases it.
func (e *engine) abort(r Request) {
	msg := fmt.Sprintf("aborted by %s: %s; the release will not start", r.By, r.Reason)
	var held []string
	e.each(func() bool {
		if t, ts := e.tobs(), e.ts(); e.pauses() && t.Found && t.Paused && t.HeldBy == e.mine() &&
			(ts == nil || t.TemplateHash != ts.PreDeployTemplateHash) {
			held = append(held, fmt.Sprintf("%s's new template (%s)", e.tdesc(), images(t.TemplateImages)))
		}
		return true
	})
	if len(held) > 0 {
		msg += fmt.Sprintf("; %s stays held: `kubectl checklist retry %s` makes a checklist "+
			"that releases it after fresh sign-offs, or revert the template", strings.Join(held, " and "), e.dcl.Name)
	}
	e.fail(ReasonAborted, msg)
}

// AbortRefusal says why a checklist in phase cannot be aborted ("" when it can): the
// release has started, or the checklist has ended.
func AbortRefusal(phase deployv1alpha1.ChecklistPhase) string {
	switch {
	case terminal(phase):
		return fmt.Sprintf("the checklist has ended (%s)", phase)
	case released(phase):
		return "T-0 has passed and the release started: abort stops a release before T-0; " +
			"to undo it, kubectl checklist rollback"
	}
	return ""
}

// RollbackRefusal says why dcl cannot be rolled back at a person's request now ("" when
// it can): during verification (deploying or verifying) it always can; once Succeeded,
// only while each released target's template still serves, nothing newer was released
// and no other checklist is live on its targets. observed is a target as observed,
// blocker the live checklist that comes first on one of them ("" when none).
func RollbackRefusal(dcl *deployv1alpha1.DeploymentChecklist, observed func(name string) TargetState, blocker string) string {
	st := &dcl.Status
	switch st.Phase {
	case deployv1alpha1.PhaseDeploying, deployv1alpha1.PhaseVerifying:
		return ""
	case deployv1alpha1.PhaseSucceeded:
	case deployv1alpha1.PhaseFailed, deployv1alpha1.PhaseRolledBack:
		return fmt.Sprintf("the checklist has ended %s: there is no release of it to roll back", st.Phase)
	default:
		return "T-0 has not passed: nothing was released to roll back; to stop the release, kubectl checklist abort"
	}
	rev := dcl.Spec.Revision
	if rev == "" {
		rev = dcl.Name
	}
	if blocker != "" {
		return fmt.Sprintf("checklist %s is live on %s: a newer release is under way; roll back through it", blocker,
			deployv1alpha1.DescribeTargets(dcl.Spec.TargetRefs()))
	}
	released := 0
	for _, ts := range st.TargetsOf(&dcl.Spec) {
		if ts.ReleasedTemplateHash == "" {
			continue
		}
		released++
		t := observed(ts.Name)
		desc := deployv1alpha1.TargetRef{Kind: ts.Kind, Name: ts.Name}.String()
		switch {
		case !t.Found:
			return fmt.Sprintf("%s is gone", desc)
		case len(t.ReleasedRevisions) > 0 && t.ReleasedRevisions[0] != rev:
			return fmt.Sprintf("revision %s was released on %s after %s", t.ReleasedRevisions[0], desc, rev)
		case !gate.SameTemplate(t.TemplateHash, ts.ReleasedTemplateHash) || (t.ServingHash != "" && !gate.SameTemplate(t.ServingHash, ts.ReleasedTemplateHash)):
			return fmt.Sprintf("the released template (%s) no longer serves on %s, which runs %s", images(ts.CandidateImages),
				desc, images(t.TemplateImages))
		case ts.PreDeployTemplate == nil:
			return fmt.Sprintf("%s served nothing before the release: there is nothing to restore", desc)
		}
	}
	if released == 0 {
		return "nothing was released"
	}
	return ""
}
