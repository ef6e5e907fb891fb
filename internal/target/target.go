// Package target observes, holds, releases and restores the Deployment a checklist
// gates. Every write is idempotent and guarded by the object's resourceVersion, so a
// write racing another controller never overwrites it: it is applied again to the
// Deployment read afresh.
package target

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tminus-dev/tminus/internal/checklist"
)

// RevisionAnnotation is the Deployment controller's revision counter, on Deployments
// and their ReplicaSets.
const RevisionAnnotation = "deployment.kubernetes.io/revision"

// Observe reads the Deployment and the ReplicaSet that serves its current revision.
func Observe(ctx context.Context, c client.Reader, key types.NamespacedName) (checklist.TargetState, error) {
	var d appsv1.Deployment
	if err := c.Get(ctx, key, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return checklist.TargetState{}, nil
		}
		return checklist.TargetState{}, fmt.Errorf("reading Deployment %s: %w", key, err)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	t := checklist.TargetState{
		Found:              true,
		Paused:             d.Spec.Paused,
		Generation:         d.Generation,
		ObservedGeneration: d.Status.ObservedGeneration,
		Replicas:           replicas,
		UpdatedReplicas:    d.Status.UpdatedReplicas,
		AvailableReplicas:  d.Status.AvailableReplicas,
		TotalReplicas:      d.Status.Replicas,
		Template:           d.Spec.Template.DeepCopy(),
		TemplateHash:       TemplateHash(&d.Spec.Template),
		Revision:           d.Annotations[RevisionAnnotation],
	}
	for _, cond := range d.Status.Conditions {
		switch {
		case cond.Type == appsv1.DeploymentAvailable:
			t.Available = cond.Status == corev1.ConditionTrue
		case cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse &&
			cond.Reason == "ProgressDeadlineExceeded":
			t.ProgressDeadlineExceeded = true
		}
	}
	running, err := runningTemplate(ctx, c, &d)
	if err != nil {
		return checklist.TargetState{}, err
	}
	if running != nil {
		t.RunningTemplate = running
		t.RunningHash = TemplateHash(running)
	}
	return t, nil
}

// ReplicaSetOwnerIndex indexes ReplicaSets by the name of the Deployment controlling
// them, so observing a target reads its own ReplicaSets, not every one of its namespace.
const ReplicaSetOwnerIndex = ".metadata.controller.deployment"

// IndexReplicaSets registers ReplicaSetOwnerIndex with the manager's cache; Observe
// needs it.
func IndexReplicaSets(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &appsv1.ReplicaSet{}, ReplicaSetOwnerIndex, func(o client.Object) []string {
		if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "Deployment" {
			return []string{ref.Name}
		}
		return nil
	})
}

// runningTemplate is the template of the Deployment's ReplicaSet at its current
// revision, without the pod-template-hash label the Deployment controller adds: what
// `kubectl rollout undo` would put back.
func runningTemplate(ctx context.Context, c client.Reader, d *appsv1.Deployment) (*corev1.PodTemplateSpec, error) {
	rev := d.Annotations[RevisionAnnotation]
	if rev == "" {
		return nil, nil
	}
	var list appsv1.ReplicaSetList
	if err := c.List(ctx, &list, client.InNamespace(d.Namespace), client.MatchingFields{ReplicaSetOwnerIndex: d.Name}); err != nil {
		return nil, fmt.Errorf("listing ReplicaSets of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	for i := range list.Items {
		rs := &list.Items[i]
		if !ownedBy(rs, d) || rs.Annotations[RevisionAnnotation] != rev {
			continue
		}
		tmpl := rs.Spec.Template.DeepCopy()
		if tmpl.Labels != nil {
			tmpl.Labels = maps.Clone(tmpl.Labels)
			delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		}
		return tmpl, nil
	}
	return nil, nil
}

func ownedBy(rs *appsv1.ReplicaSet, d *appsv1.Deployment) bool {
	for _, ref := range rs.OwnerReferences {
		if ref.UID == d.UID {
			return true
		}
	}
	return false
}

// TemplateHash identifies a pod template, ignoring the pod-template-hash label, so a
// Deployment's template and the ReplicaSet made from it hash alike.
func TemplateHash(tmpl *corev1.PodTemplateSpec) string {
	t := tmpl.DeepCopy()
	if t.Labels != nil {
		delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		if len(t.Labels) == 0 {
			t.Labels = nil
		}
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// SetPaused pauses or resumes the Deployment; a Deployment already so is left alone.
// fresh reads from the API server after a write conflict (see update).
func SetPaused(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, paused bool) error {
	return update(ctx, c, fresh, key, func(d *appsv1.Deployment) {
		d.Spec.Paused = paused
	})
}

// Restore puts tmpl back as the Deployment's template and resumes it, as `kubectl
// rollout undo` does. Restoring a Deployment that already runs tmpl changes nothing.
func Restore(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, tmpl *corev1.PodTemplateSpec) error {
	return update(ctx, c, fresh, key, func(d *appsv1.Deployment) {
		d.Spec.Template = *tmpl.DeepCopy()
		d.Spec.Paused = false
	})
}

// update patches the Deployment with mutate's change, with an optimistic lock; no
// change, no request. When another writer (a GitOps sync, kubectl) changed the
// Deployment since it was read, it reads it again from the API server (fresh: the cache
// may still hold the old one) and applies the change to that, a few times.
func update(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, mutate func(*appsv1.Deployment)) error {
	reader := client.Reader(c)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		if err := reader.Get(ctx, key, &d); err != nil {
			return fmt.Errorf("reading Deployment %s: %w", key, err)
		}
		reader = fresh
		before := d.DeepCopy()
		mutate(&d)
		patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		raw, err := patch.Data(&d)
		if err != nil {
			return err
		}
		if isEmptyPatch(raw) {
			return nil
		}
		if err := c.Patch(ctx, &d, patch); err != nil {
			return fmt.Errorf("patching Deployment %s: %w", key, err)
		}
		return nil
	})
}

// isEmptyPatch says whether a merge patch with an optimistic lock changes nothing but
// carries the resourceVersion.
func isEmptyPatch(raw []byte) bool {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	meta, _ := m["metadata"].(map[string]any)
	return len(m) == 1 && len(meta) == 1 && meta["resourceVersion"] != nil
}
