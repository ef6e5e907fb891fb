// Package approval reads sign-offs from a checklist's annotations:
//
//	approve.tminus.dev/<role>: "<approver> for <revision>"
//
// Several approvers of one role are separated by commas ("alice for v2, bob for v2").
// An approval counts only for the revision it names; when spec.revision is empty, the
// checklist's own name stands for the revision.
package approval

import (
	"fmt"
	"slices"
	"strings"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// Revision is what approvals of dcl must name.
func Revision(dcl *deployv1alpha1.DeploymentChecklist) string {
	if dcl.Spec.Revision != "" {
		return dcl.Spec.Revision
	}
	return dcl.Name
}

// Parse returns, by role, the approvals that count for revision, and a message for each
// malformed value.
func Parse(annotations map[string]string, revision string) (map[string][]checklist.Approval, []string) {
	out := map[string][]checklist.Approval{}
	var problems []string
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		role, ok := strings.CutPrefix(key, deployv1alpha1.ApprovalAnnotationPrefix)
		if !ok {
			continue
		}
		if role == "" {
			problems = append(problems, fmt.Sprintf("annotation %s names no role", key))
			continue
		}
		for entry := range strings.SplitSeq(annotations[key], ",") {
			approver, rev, ok := strings.Cut(strings.TrimSpace(entry), " for ")
			approver, rev = strings.TrimSpace(approver), strings.TrimSpace(rev)
			if !ok || approver == "" || rev == "" {
				problems = append(problems, fmt.Sprintf("annotation %s: %q is not \"<approver> for <revision>\"", key, entry))
				continue
			}
			if rev != revision {
				continue
			}
			out[role] = append(out[role], checklist.Approval{Role: role, Approver: approver, Revision: rev})
		}
	}
	return out, problems
}
