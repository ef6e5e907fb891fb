package controller

import (
	"context"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/target"
)

// heldInItsName says whether a workload of the ended checklist dcl (the cache's
// stripped copy) is still held in its name, read from the cache: the one thing a
// stripped checklist may still owe (the engine takes tminus's own hold off once the
// release has ended) that its own object does not show. Every other thing owed keeps
// an ended checklist whole in the cache (slim.Owed).
func (r *DeploymentChecklistReconciler) heldInItsName(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist) (bool, error) {
	mine := deployv1alpha1.HeldByChecklist(dcl.Name)
	for _, ref := range dcl.Spec.TargetRefs() {
		annotations, err := target.AnnotationsOf(ctx, r.Client, dcl.Namespace, ref)
		if err != nil {
			return false, err
		}
		if annotations[deployv1alpha1.HeldByAnnotation] == mine {
			return true, nil
		}
	}
	return false, nil
}
