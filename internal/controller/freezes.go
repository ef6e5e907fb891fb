package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/freeze"
)

// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=changefreezes;clusterchangefreezes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// freezesFor lists the change freezes that apply to dcl: its namespace's ChangeFreezes
// and the ClusterChangeFreezes whose selectors take it in. Only a checklist before its
// release needs them: a freeze never stops a release already out, nor a rollback.
func (r *DeploymentChecklistReconciler) freezesFor(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist) ([]freeze.Freeze, error) {
	if checklist.PastT0(dcl.Status.Phase) {
		return nil, nil
	}
	var out []freeze.Freeze
	var local deployv1alpha1.ChangeFreezeList
	// Read from the cache without copies: every reconcile before T-0 asks, and the
	// freezes are only read.
	if err := r.List(ctx, &local, client.InNamespace(dcl.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing change freezes: %w", err)
	}
	for i := range local.Items {
		f := &local.Items[i]
		if freeze.Applies(f.Spec.Selector, nil, dcl.Labels, nil) {
			out = append(out, freeze.Of(f))
		}
	}
	var cluster deployv1alpha1.ClusterChangeFreezeList
	if err := r.List(ctx, &cluster, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing cluster change freezes: %w", err)
	}
	var nsLabels map[string]string
	for i := range cluster.Items {
		f := &cluster.Items[i]
		if f.Spec.NamespaceSelector != nil && nsLabels == nil {
			var ns corev1.Namespace
			if err := r.Get(ctx, client.ObjectKey{Name: dcl.Namespace}, &ns); err != nil {
				return nil, fmt.Errorf("reading namespace %s for ClusterChangeFreeze %s: %w", dcl.Namespace, f.Name, err)
			}
			nsLabels = ns.Labels
			if nsLabels == nil {
				nsLabels = map[string]string{}
			}
		}
		if freeze.Applies(f.Spec.Selector, f.Spec.NamespaceSelector, dcl.Labels, nsLabels) {
			out = append(out, freeze.OfCluster(f))
		}
	}
	return out, nil
}
