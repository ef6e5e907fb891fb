package freeze

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// ForNamespace lists the freezes of namespace ns: its ChangeFreezes and the
// ClusterChangeFreezes whose namespaceSelector takes it in (or does not parse). Which of
// them apply to a checklist is Selects' to say. c is read without copies (the manager's
// cache: asked every reconcile before T-0, and on checklist label changes), so the
// freezes returned share their selectors with it and must only be read.
func ForNamespace(ctx context.Context, c client.Reader, ns string) ([]Freeze, error) {
	var out []Freeze
	var local deployv1alpha1.ChangeFreezeList
	if err := c.List(ctx, &local, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing change freezes: %w", err)
	}
	for i := range local.Items {
		out = append(out, Of(&local.Items[i]))
	}
	var cluster deployv1alpha1.ClusterChangeFreezeList
	if err := c.List(ctx, &cluster, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing cluster change freezes: %w", err)
	}
	var nsLabels map[string]string
	for i := range cluster.Items {
		f := &cluster.Items[i]
		if f.Spec.NamespaceSelector != nil && nsLabels == nil {
			var n corev1.Namespace
			if err := c.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
				return nil, fmt.Errorf("reading namespace %s for ClusterChangeFreeze %s: %w", ns, f.Name, err)
			}
			nsLabels = n.Labels
			if nsLabels == nil {
				nsLabels = map[string]string{}
			}
		}
		if Applies(nil, f.Spec.NamespaceSelector, nil, nsLabels) {
			out = append(out, OfCluster(f))
		}
	}
	return out, nil
}
