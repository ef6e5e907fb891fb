package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/deputy"
)

// A checklist makes the manager act with the manager's rights: read Secrets for
// Prometheus credentials, create Jobs, run them under a service account. So that a
// checklist grants no more than its author has (the "confused deputy", internal/deputy),
// its author must hold those rights themselves. The rules apply to whoever writes the
// checklist, GitOps service accounts included (their RBAC is the limit), on create and
// whenever a reference, or what decides its use, changes.

// deputyRules says why the requesting user may not write dcl ("" when they may): a
// reference it adds, or whose context it changes (on create, every one), asks the
// manager to do what the user may not.
func (w *ApprovalWebhook) deputyRules(ctx context.Context, req admission.Request, dcl, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	refusal, err := deputy.Judge(ctx, w.Client, deputy.SubjectOf(req.UserInfo), deputy.ChecklistReferences(dcl), deputy.ChecklistReferences(old))
	if err != nil || refusal == nil {
		return "", err
	}
	return refusal.Message() + ", so a checklist it writes may not make tminus do it", nil
}

// approvalChecksKept says why the requesting user may not weaken the checklist's sign-off
// requirements ("" when they may): removing an approval check, lowering its count, or
// moving it from a T-minus phase to a T-plus one (the release then starts without it)
// needs the right to give that sign-off, like signing it.
func (w *ApprovalWebhook) approvalChecksKept(ctx context.Context, req admission.Request, dcl, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	before, beforeT0 := approvalsNeeded(old)
	after, afterT0 := approvalsNeeded(dcl)
	for _, role := range slices.Sorted(maps.Keys(before)) {
		var lowered string
		switch {
		case after[role] < before[role]:
			lowered = fmt.Sprintf("lowers the sign-offs role %s needs from %d to %d", role, before[role], after[role])
		case afterT0[role] < beforeT0[role]:
			lowered = fmt.Sprintf("lowers the sign-offs role %s needs before T-0 from %d to %d (an approval check in a T-plus "+
				"phase no longer holds the release)", role, beforeT0[role], afterT0[role])
		default:
			continue
		}
		msg, err := w.mayApprove(ctx, req, dcl.Namespace, dcl.Name, role)
		if err != nil {
			return "", err
		}
		if msg != "" {
			return fmt.Sprintf("spec.phases: this change %s, which takes the right to give them: %s", lowered, msg), nil
		}
	}
	return "", nil
}

// approvalsNeeded says, by role, how many distinct sign-offs the checklist's approval
// checks need:
// in all, and before T-0 (in the T-minus phases, at <= 0, which hold the release). An
// approval check in a T-plus phase holds only its phase: the release has started.
func approvalsNeeded(dcl *deployv1alpha1.DeploymentChecklist) (all, beforeT0 map[string]int32) {
	all, beforeT0 = map[string]int32{}, map[string]int32{}
	for _, ph := range dcl.Spec.Phases {
		// An offset that does not parse is refused by validation; counted before T-0
		// here, so it never reads as a weakening of what it replaces.
		at, err := time.ParseDuration(ph.At)
		tminus := err != nil || at <= 0
		for _, c := range ph.Checks {
			if c.Approval != nil {
				// The engine counts one set of distinct approvers per role, and each
				// check of the role needs its count of them: what a role needs is its
				// largest count, not their sum (two checks of one sign-off each are
				// passed by one person).
				n := max(c.Approval.Count, 1)
				all[c.Approval.Role] = max(all[c.Approval.Role], n)
				if tminus {
					beforeT0[c.Approval.Role] = max(beforeT0[c.Approval.Role], n)
				}
			}
		}
	}
	return all, beforeT0
}
