package controller

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/internal/target"
)

// StatefulSetGateReconciler is the GateReconciler of StatefulSets: it keeps the gated
// label on the StatefulSets checklists target while they need the admission webhook to
// see them, and takes tminus's hold partition off once nothing holds it (a checklist
// deleted whatever its phase), putting the owner's partition back.
type StatefulSetGateReconciler struct {
	client.Client
	// APIReader reads from the API server after a write conflict; the Client when nil.
	APIReader client.Reader
	// Shards, when set: only the StatefulSets of the shards this replica holds.
	Shards *shard.Set
}

// Reconcile brings one StatefulSet's label and hold in line with its checklists.
func (r *StatefulSetGateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s appsv1.StatefulSet
	if err := r.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	done, ours := begin(r.Shards, s.Namespace, s.Name)
	if !ours {
		return ctrl.Result{}, nil
	}
	defer done()
	w := target.Of(deployv1alpha1.KindStatefulSet)
	cls, err := target.ChecklistsOf(ctx, r.Client, deployv1alpha1.KindStatefulSet, s.Namespace, s.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	fresh := r.APIReader
	if fresh == nil {
		fresh = r.Client
	}
	log := logf.FromContext(ctx).WithValues("statefulset", req.NamespacedName)

	// A StatefulSet tminus cannot hold (OnDelete) is not labelled: a checklist of it
	// touches nothing.
	want := (gate.WantsMark(cls) && target.NotGateableStatefulSet(&s) == "") ||
		len(gate.ParseRefusals(s.Annotations[deployv1alpha1.RefusedTemplatesAnnotation])) > 0
	if label, ok := s.Labels[deployv1alpha1.GatedLabel]; (want && !ok) || (!want && label == deployv1alpha1.GatedByChecklist) {
		if err := w.Mark(ctx, r.Client, fresh, req.NamespacedName, want); err != nil {
			return ctrl.Result{}, ignoreGone(err)
		}
		log.Info("gated label", "set", want)
	}

	revs, err := target.ControllerRevisions(ctx, r.Client, &s)
	if err != nil {
		return ctrl.Result{}, err
	}
	view := target.StatefulSetGateView(&s, revs)
	if !view.Paused || view.HeldBy == "" {
		return ctrl.Result{}, nil
	}
	switch {
	case gate.ShouldResume(&view, cls):
		log.Info("taking tminus's hold partition off: nothing holds it", "heldBy", view.HeldBy)
		err := w.Resume(ctx, r.Client, fresh, req.NamespacedName, view.TemplateHash)
		if errors.Is(err, target.ErrTemplateChanged) {
			log.Info("not resumed: the pod template changed since it was read", "error", err.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, ignoreGone(err)
	case gate.Active(cls) == nil && view.HeldBy != deployv1alpha1.HeldByAdmission && !named(cls, view.HeldBy):
		reason := fmt.Sprintf("pod template (%s) is released by no checklist (it was held for %s, which is gone); "+
			"create a DeploymentChecklist targeting StatefulSet %s to release it", gate.ImageList(view.Images), view.HeldBy, s.Name)
		return ctrl.Result{}, ignoreGone(w.Hold(ctx, r.Client, fresh, req.NamespacedName, deployv1alpha1.HeldByAdmission, reason, view.TemplateHash))
	}
	return ctrl.Result{}, nil
}

// SetupWithManager watches the StatefulSets tminus marked or holds, and every checklist
// with a StatefulSet among its targets.
func (r *StatefulSetGateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&appsv1.StatefulSet{}, builder.WithPredicates(predicate.NewPredicateFuncs(marked))).
		Watches(&deployv1alpha1.DeploymentChecklist{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				dcl, ok := o.(*deployv1alpha1.DeploymentChecklist)
				if !ok {
					return nil
				}
				var reqs []reconcile.Request
				for _, ref := range dcl.Spec.TargetRefs() {
					if ref.KindOf() == deployv1alpha1.KindStatefulSet {
						reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: dcl.Namespace, Name: ref.Name}})
					}
				}
				return reqs
			})).
		Named("statefulsetgate").
		Complete(r)
}
