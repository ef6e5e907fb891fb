package controller

import (
	"context"
	"slices"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/freeze"
)

// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=changefreezes;clusterchangefreezes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// freezesFor lists the change freezes that apply to dcl: its namespace's ChangeFreezes
// and the ClusterChangeFreezes whose namespaceSelector takes it in, whose selector takes
// in dcl's labels or one of its targets' (workloadLabels, one map per target). Only a
// checklist before its release needs them: a freeze never stops a release already out,
// nor a rollback.
func (r *DeploymentChecklistReconciler) freezesFor(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	workloadLabels ...map[string]string) ([]freeze.Freeze, error) {
	if checklist.PastT0(dcl.Status.Phase) {
		return nil, nil
	}
	fs, err := freeze.ForNamespace(ctx, r.Client, dcl.Namespace)
	if err != nil {
		return nil, err
	}
	if len(workloadLabels) == 0 {
		workloadLabels = []map[string]string{nil}
	}
	return slices.DeleteFunc(fs, func(f freeze.Freeze) bool {
		return !slices.ContainsFunc(workloadLabels, func(l map[string]string) bool { return f.Selects(dcl.Labels, l) })
	}), nil
}
