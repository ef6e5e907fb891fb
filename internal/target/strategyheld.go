package target

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
)

// strategyHeld is the writes of a workload held by its own update strategy (a
// StatefulSet's partition, a DaemonSet's OnDelete): the same hold marks, template
// checks and records for every such kind, around the kind's own hold and unhold.
type strategyHeld[T client.Object] struct {
	kind   string
	newObj func() T
	// template is the workload's pod template, written in place by a restore.
	template func(T) *corev1.PodTemplateSpec
	// hold sets the kind's hold (keeping the owner's setting aside), unhold puts the
	// owner's setting back and takes every hold mark off.
	hold   func(T) error
	unhold func(T)
}

func (w strategyHeld[T]) update(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	mutate func(T) error) error {
	return updateObject(ctx, c, fresh, key, w.kind, w.newObj, mutate)
}

// Hold holds the workload for heldBy, with the reason and, for a held change, the
// template it holds.
func (w strategyHeld[T]) Hold(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	heldBy, reason, heldTemplate string) error {
	return w.update(ctx, c, fresh, key, func(o T) error {
		if err := w.hold(o); err != nil {
			return err
		}
		annotate(o, deployv1alpha1.HeldByAnnotation, heldBy)
		annotate(o, deployv1alpha1.HoldReasonAnnotation, reason)
		if heldTemplate != "" {
			annotate(o, deployv1alpha1.HeldTemplateAnnotation, heldTemplate)
		} else {
			unannotate(o, deployv1alpha1.HeldTemplateAnnotation)
		}
		return nil
	})
}

// Resume puts the owner's setting back if tminus holds the workload and it still holds
// templateHash.
func (w strategyHeld[T]) Resume(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	templateHash string) error {
	return w.update(ctx, c, fresh, key, func(o T) error {
		if err := holdsTemplate(w.kind, o, w.template(o), templateHash, "the resume"); err != nil {
			return err
		}
		if o.GetAnnotations()[deployv1alpha1.HeldByAnnotation] != "" {
			w.unhold(o)
		}
		return nil
	})
}

// Release puts the owner's setting back, which rolls the pods, and records the revision
// released, if the workload still holds templateHash.
func (w strategyHeld[T]) Release(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	revision, templateHash string) error {
	return w.update(ctx, c, fresh, key, func(o T) error {
		if err := holdsTemplate(w.kind, o, w.template(o), templateHash, "the release of "+revision); err != nil {
			return err
		}
		w.unhold(o)
		recordRelease(o, revision)
		return nil
	})
}

// Restore puts tmpl back as the workload's template with the owner's setting, so the
// pods updated roll back, and marks the rolled-back template in the same write (as
// Restore does for a Deployment).
func (w strategyHeld[T]) Restore(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	tmpl *corev1.PodTemplateSpec, templateHash, mark string) error {
	return w.update(ctx, c, fresh, key, func(o T) error {
		cur := w.template(o)
		if gate.TemplateHash(cur) != gate.TemplateHash(tmpl) {
			if err := holdsTemplate(w.kind, o, cur, templateHash, "the restore"); err != nil {
				return err
			}
		}
		*cur = *tmpl.DeepCopy()
		w.unhold(o)
		markRolledBack(o, mark)
		return nil
	})
}

// Mark sets or removes tminus's gated label.
func (w strategyHeld[T]) Mark(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, want bool) error {
	return w.update(ctx, c, fresh, key, func(o T) error {
		markGated(o, want)
		return nil
	})
}

// ownedRevisions lists the ControllerRevisions o (of kind) controls, among those its
// selector matches.
func ownedRevisions(ctx context.Context, c client.Reader, kind string, o client.Object,
	selector *metav1.LabelSelector) ([]appsv1.ControllerRevision, error) {
	opts := []client.ListOption{client.InNamespace(o.GetNamespace())}
	if selector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(selector); err == nil && !sel.Empty() {
			opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
		}
	}
	var list appsv1.ControllerRevisionList
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing ControllerRevisions of %s %s/%s: %w", kind, o.GetNamespace(), o.GetName(), err)
	}
	out := list.Items[:0]
	for _, r := range list.Items {
		if ref := metav1.GetControllerOf(&r); ref != nil && ref.UID == o.GetUID() {
			out = append(out, r)
		}
	}
	return out, nil
}

// unannotate removes annotation k from o.
func unannotate(o client.Object, k string) {
	a := o.GetAnnotations()
	delete(a, k)
}
