package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"

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
// requirements ("" when they may): removing an approval check, or lowering its count,
// needs the right to give that sign-off, like signing it.
func (w *ApprovalWebhook) approvalChecksKept(ctx context.Context, req admission.Request, dcl, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	before, after := approvalsNeeded(old), approvalsNeeded(dcl)
	for _, role := range slices.Sorted(maps.Keys(before)) {
		if after[role] >= before[role] {
			continue
		}
		msg, err := w.mayApprove(ctx, req, dcl.Namespace, dcl.Name, role)
		if err != nil || msg == "" {
			if err != nil {
				return "", err
			}
			continue
		}
		return fmt.Sprintf("spec.phases: this change lowers the sign-offs role %s needs from %d to %d, which takes the right to "+
			"give them: %s", role, before[role], after[role], msg), nil
	}
	return "", nil
}

// approvalsNeeded counts, by role, the sign-offs the checklist's approval checks need.
func approvalsNeeded(dcl *deployv1alpha1.DeploymentChecklist) map[string]int32 {
	out := map[string]int32{}
	for _, ph := range dcl.Spec.Phases {
		for _, c := range ph.Checks {
			if c.Approval != nil {
				out[c.Approval.Role] += max(c.Approval.Count, 1)
			}
		}
	}
	return out
}
