package target

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
)

// Workload holds, releases and restores one kind of workload, each by its own update
// strategy: a Deployment by spec.paused, a StatefulSet by its rolling update's
// partition. Every write is guarded as Hold, Resume, Release, Restore and Mark are for
// a Deployment.
type Workload interface {
	// Kind is the workload's kind, as spec.targets names it.
	Kind() string
	Observe(ctx context.Context, c client.Reader, key types.NamespacedName) (checklist.TargetState, error)
	Hold(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, heldBy, reason, heldTemplate string) error
	Resume(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, templateHash string) error
	Release(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, revision, templateHash string) error
	Restore(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, tmpl *corev1.PodTemplateSpec,
		templateHash, mark string) error
	Mark(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, want bool) error
}

// Stepper is a Workload released in steps (spec.release.steps): a StatefulSet.
type Stepper interface {
	ReleaseStep(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
		revision, templateHash string, pods int32, step string) error
}

// Of is the Workload of kind (a Deployment when empty); nil for a kind tminus does not
// gate.
func Of(kind string) Workload {
	switch kind {
	case "", deployv1alpha1.KindDeployment:
		return deployments{}
	case deployv1alpha1.KindStatefulSet:
		return statefulSets{statefulSetWrites}
	case deployv1alpha1.KindDaemonSet:
		return daemonSets{daemonSetWrites}
	}
	return nil
}

// ObserveTarget reads the target ref of a checklist in namespace.
func ObserveTarget(ctx context.Context, c client.Reader, namespace string, ref deployv1alpha1.TargetRef) (checklist.TargetState, error) {
	w := Of(ref.KindOf())
	if w == nil {
		return checklist.TargetState{Found: true, NotGateable: fmt.Sprintf("tminus does not gate workloads of kind %s", ref.Kind)}, nil
	}
	return w.Observe(ctx, c, types.NamespacedName{Namespace: namespace, Name: ref.Name})
}

// LabelsOf reads the labels of the workload ref names in namespace, and nothing else of
// it: nil when it does not exist, or is of a kind tminus does not gate.
func LabelsOf(ctx context.Context, c client.Reader, namespace string, ref deployv1alpha1.TargetRef) (map[string]string, error) {
	o, err := metadataOf(ctx, c, namespace, ref)
	if o == nil {
		return nil, err
	}
	return o.GetLabels(), nil
}

// AnnotationsOf reads the annotations of the workload ref names in namespace, from the
// cache without a copy (read them, never change them): nil when it does not exist, or
// is of a kind tminus does not gate.
func AnnotationsOf(ctx context.Context, c client.Reader, namespace string, ref deployv1alpha1.TargetRef) (map[string]string, error) {
	o, err := metadataOf(ctx, c, namespace, ref, client.UnsafeDisableDeepCopy)
	if o == nil {
		return nil, err
	}
	return o.GetAnnotations(), nil
}

// metadataOf reads the workload ref names in namespace: nil when it does not exist, or
// is of a kind tminus does not gate.
func metadataOf(ctx context.Context, c client.Reader, namespace string, ref deployv1alpha1.TargetRef,
	opts ...client.GetOption) (client.Object, error) {
	var o client.Object
	switch ref.KindOf() {
	case deployv1alpha1.KindDeployment:
		o = &appsv1.Deployment{}
	case deployv1alpha1.KindStatefulSet:
		o = &appsv1.StatefulSet{}
	case deployv1alpha1.KindDaemonSet:
		o = &appsv1.DaemonSet{}
	default:
		return nil, nil
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, o, opts...); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return o, nil
}

// deployments is the Deployment Workload: the functions of target.go.
type deployments struct{}

func (deployments) Kind() string { return deployv1alpha1.KindDeployment }
func (deployments) Observe(ctx context.Context, c client.Reader, key types.NamespacedName) (checklist.TargetState, error) {
	return Observe(ctx, c, key)
}
func (deployments) Hold(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, heldBy, reason, heldTemplate string) error {
	return Hold(ctx, c, fresh, key, heldBy, reason, heldTemplate)
}
func (deployments) Resume(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, templateHash string) error {
	return Resume(ctx, c, fresh, key, templateHash)
}
func (deployments) Release(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, revision, templateHash string) error {
	return Release(ctx, c, fresh, key, revision, templateHash)
}
func (deployments) Restore(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, tmpl *corev1.PodTemplateSpec,
	templateHash, mark string) error {
	return Restore(ctx, c, fresh, key, tmpl, templateHash, mark)
}
func (deployments) Mark(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, want bool) error {
	return Mark(ctx, c, fresh, key, want)
}

// updateObject is update for any workload kind: the change mutate makes, patched with
// an optimistic lock, read again from the API server (fresh) after a conflict; no
// change, no request; an error of mutate writes nothing.
func updateObject[T client.Object](ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	kind string, newObj func() T, mutate func(T) error) error {
	reader := client.Reader(c)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		o := newObj()
		if err := reader.Get(ctx, key, o); err != nil {
			return fmt.Errorf("reading %s %s: %w", kind, key, err)
		}
		reader = fresh
		before := o.DeepCopyObject().(client.Object)
		if err := mutate(o); err != nil {
			return err
		}
		patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		raw, err := patch.Data(o)
		if err != nil {
			return err
		}
		if isEmptyPatch(raw) {
			return nil
		}
		if err := c.Patch(ctx, o, patch); err != nil {
			return fmt.Errorf("patching %s %s: %w", kind, key, err)
		}
		return nil
	})
}

// annotate sets annotation k to v on o.
func annotate(o metav1.Object, k, v string) {
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	o.SetAnnotations(a)
}

// releasedRevisionsOf reads ReleasedRevisionsAnnotation, newest first.
func releasedRevisionsOf(o metav1.Object) []string {
	v := o.GetAnnotations()[deployv1alpha1.ReleasedRevisionsAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// recordRelease puts revision first among those released on o.
func recordRelease(o metav1.Object, revision string) {
	revs := releasedRevisionsOf(o)
	if len(revs) > 0 && revs[0] == revision {
		return
	}
	revs = slices.DeleteFunc(revs, func(r string) bool { return r == revision })
	revs = append([]string{revision}, revs...)
	if len(revs) > deployv1alpha1.MaxReleasedRevisions {
		revs = revs[:deployv1alpha1.MaxReleasedRevisions]
	}
	annotate(o, deployv1alpha1.ReleasedRevisionsAnnotation, strings.Join(revs, ","))
}

// markRolledBack writes the rollback's marks on o, as Restore does on a Deployment:
// RolledBackAnnotation, and the template among the refused ones (kept when listed).
func markRolledBack(o metav1.Object, mark string) {
	if mark == "" {
		return
	}
	annotate(o, deployv1alpha1.RolledBackAnnotation, mark)
	m := gate.ParseRolledBack(mark)
	if m.Hash == "" {
		return
	}
	refused := gate.ParseRefusals(o.GetAnnotations()[deployv1alpha1.RefusedTemplatesAnnotation])
	if gate.RefusedIn(refused, m.Hash) == nil {
		refused = gate.AddRefusal(refused, gate.Refusal{Hash: m.Hash, Checklist: m.Checklist, UID: m.UID, At: time.Now().UTC().Truncate(time.Second)})
		annotate(o, deployv1alpha1.RefusedTemplatesAnnotation, gate.FormatRefusals(refused))
	}
}

// markGated sets (want) or removes tminus's gated label on o; a label the user set is
// never touched.
func markGated(o metav1.Object, want bool) {
	labels := o.GetLabels()
	cur, ok := labels[deployv1alpha1.GatedLabel]
	switch {
	case want && !ok:
		if labels == nil {
			labels = map[string]string{}
		}
		labels[deployv1alpha1.GatedLabel] = deployv1alpha1.GatedByChecklist
		o.SetLabels(labels)
	case !want && cur == deployv1alpha1.GatedByChecklist:
		delete(labels, deployv1alpha1.GatedLabel)
		o.SetLabels(labels)
	}
}

// holdsTemplate says whether tmpl is still the template decided on, and otherwise why
// not, wrapping ErrTemplateChanged.
func holdsTemplate(kind string, o metav1.Object, tmpl *corev1.PodTemplateSpec, templateHash, what string) error {
	if h := gate.TemplateHash(tmpl); h != templateHash {
		return fmt.Errorf("%w: %s %s/%s now holds %s (template %s), not the template %s was decided on (%s); not written",
			ErrTemplateChanged, kind, o.GetNamespace(), o.GetName(), gate.ImageList(gate.Images(tmpl)), h, what, templateHash)
	}
	return nil
}

// ChecklistsOf reads, from the manager's cache (through ChecklistIndex), the gate's
// view of every checklist targeting the workload of this kind and name: a checklist of
// a Deployment web says nothing of a StatefulSet web.
func ChecklistsOf(ctx context.Context, c client.Reader, kind, namespace, name string) ([]gate.Checklist, error) {
	return checklistsOfKind(ctx, c, kind, namespace, name, client.MatchingFields{ChecklistIndex: name},
		client.UnsafeDisableDeepCopy)
}

// TemplateOf reads the pod template the target ref of a checklist in namespace holds
// now, by its kind; found is false when it does not exist.
func TemplateOf(ctx context.Context, c client.Reader, namespace string, ref deployv1alpha1.TargetRef) (
	tmpl *corev1.PodTemplateSpec, found bool, err error) {
	var obj client.Object
	switch ref.KindOf() {
	case deployv1alpha1.KindDeployment:
		d := &appsv1.Deployment{}
		obj, tmpl = d, &d.Spec.Template
	case deployv1alpha1.KindStatefulSet:
		s := &appsv1.StatefulSet{}
		obj, tmpl = s, &s.Spec.Template
	case deployv1alpha1.KindDaemonSet:
		ds := &appsv1.DaemonSet{}
		obj, tmpl = ds, &ds.Spec.Template
	default:
		return nil, false, fmt.Errorf("tminus does not gate workloads of kind %s", ref.Kind)
	}
	key := types.NamespacedName{Namespace: namespace, Name: ref.Name}
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading %s %s: %w", ref.KindOf(), key, err)
	}
	return tmpl, true, nil
}

// GateViewOf reads the gate rule's view of a StatefulSet or DaemonSet, and why tminus
// cannot hold it ("" when it can); found is false when it does not exist.
func GateViewOf(ctx context.Context, c client.Reader, kind string, key types.NamespacedName) (view gate.Deployment,
	notGateable string, found bool, err error) {
	switch kind {
	case deployv1alpha1.KindStatefulSet:
		var s appsv1.StatefulSet
		if err := c.Get(ctx, key, &s); err != nil {
			return gate.Deployment{}, "", false, client.IgnoreNotFound(err)
		}
		revs, err := ControllerRevisions(ctx, c, &s)
		if err != nil {
			return gate.Deployment{}, "", true, err
		}
		return StatefulSetGateView(&s, revs), NotGateableStatefulSet(&s), true, nil
	case deployv1alpha1.KindDaemonSet:
		var ds appsv1.DaemonSet
		if err := c.Get(ctx, key, &ds); err != nil {
			return gate.Deployment{}, "", false, client.IgnoreNotFound(err)
		}
		revs, err := DaemonSetControllerRevisions(ctx, c, &ds)
		if err != nil {
			return gate.Deployment{}, "", true, err
		}
		return DaemonSetGateView(&ds, &ds, revs), NotGateableDaemonSet(&ds), true, nil
	}
	return gate.Deployment{}, "", false, fmt.Errorf("no gate view of kind %s", kind)
}
