package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/internal/target"
)

// GateReconciler keeps tminus's marks on the Deployments checklists target: the gated
// label while a checklist needs the admission webhook to see the Deployment, and its
// own pause once nothing holds it any more. It is what cleans up after a checklist is
// deleted, whatever its phase, and after the manager was down when that happened.
type GateReconciler struct {
	client.Client
	// APIReader reads from the API server after a write conflict; the Client when nil.
	APIReader client.Reader
	// Shards, when set: only the Deployments of the shards this replica holds.
	Shards *shard.Set

	taken chan event.GenericEvent
}

// Reconcile brings one Deployment's label and pause in line with its checklists.
func (r *GateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var d appsv1.Deployment
	if err := r.Get(ctx, req.NamespacedName, &d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	done, ours := begin(r.Shards, d.Namespace, d.Name)
	if !ours {
		return ctrl.Result{}, nil
	}
	defer done()
	// What decides: the live checklists and those that refuse or restore the template
	// the Deployment holds, not its past.
	cls, err := target.Deciding(ctx, r.Client, d.Namespace, d.Name, gate.TemplateHash(&d.Spec.Template))
	if err != nil {
		return ctrl.Result{}, err
	}
	fresh := r.APIReader
	if fresh == nil {
		fresh = r.Client
	}
	log := logf.FromContext(ctx).WithValues("deployment", req.NamespacedName)

	// A Deployment listing refused templates keeps the label after the checklists that
	// rolled them back are gone: the admission webhook sees only labelled Deployments.
	want := gate.WantsMark(cls) || len(gate.ParseRefusals(d.Annotations[deployv1alpha1.RefusedTemplatesAnnotation])) > 0
	if !want {
		// A rolled-back checklist refusing another template than the one held.
		if want, err = target.Refusing(ctx, r.Client, d.Namespace, d.Name); err != nil {
			return ctrl.Result{}, err
		}
	}
	if label, ok := d.Labels[deployv1alpha1.GatedLabel]; (want && !ok) || (!want && label == deployv1alpha1.GatedByChecklist) {
		if err := target.Mark(ctx, r.Client, fresh, req.NamespacedName, want); err != nil {
			return ctrl.Result{}, ignoreGone(err)
		}
		log.Info("gated label", "set", want)
	}

	if !d.Spec.Paused || d.Annotations[deployv1alpha1.HeldByAnnotation] == "" {
		return ctrl.Result{}, nil
	}
	rss, err := target.ReplicaSets(ctx, r.Client, &d)
	if err != nil {
		return ctrl.Result{}, err
	}
	view := target.GateView(&d, rss)
	switch {
	case gate.ShouldResume(&view, cls):
		log.Info("taking tminus's pause off: nothing holds it", "heldBy", view.HeldBy)
		err := target.Resume(ctx, r.Client, fresh, req.NamespacedName, view.TemplateHash)
		if errors.Is(err, target.ErrTemplateChanged) {
			// A push landed since the Deployment was read: its update event brings it
			// back, to be decided on what it holds now.
			log.Info("not resumed: the pod template changed since it was read", "error", err.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, ignoreGone(err)
	case gate.Active(cls) == nil && view.HeldBy != deployv1alpha1.HeldByAdmission && !r.exists(ctx, &d, cls, view.HeldBy):
		// Held for a checklist that is gone: the change it held stays held, in the
		// admission's name, saying how to go on.
		reason := fmt.Sprintf("pod template (%s) is released by no checklist (it was held for %s, which is gone); "+
			"create a DeploymentChecklist targeting %s to release it", gate.ImageList(view.Images), view.HeldBy, d.Name)
		// The hold names the template it holds now (a checklist's own hold named none).
		return ctrl.Result{}, ignoreGone(target.Hold(ctx, r.Client, fresh, req.NamespacedName, deployv1alpha1.HeldByAdmission, reason, view.TemplateHash))
	}
	return ctrl.Result{}, nil
}

func ignoreGone(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// SetupWithManager watches the Deployments tminus marked or holds, and every checklist
// (its creation, change and deletion reach its target).
func (r *GateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&appsv1.Deployment{}, builder.WithPredicates(predicate.NewPredicateFuncs(marked)))
	if r.taken != nil {
		b = b.WatchesRawSource(source.Channel(r.taken, &handler.EnqueueRequestForObject{}))
	}
	return b.
		Watches(&deployv1alpha1.DeploymentChecklist{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				dcl, ok := o.(*deployv1alpha1.DeploymentChecklist)
				if !ok {
					return nil
				}
				var reqs []reconcile.Request
				for _, ref := range dcl.Spec.TargetRefs() {
					if ref.KindOf() == deployv1alpha1.KindDeployment {
						reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: dcl.Namespace, Name: ref.Name}})
					}
				}
				return reqs
			})).
		Named("deploymentgate").
		Complete(r)
}

// named says whether heldBy names a checklist of cls (an ended one takes care of its
// own hold).
func named(cls []gate.Checklist, heldBy string) bool {
	for i := range cls {
		if deployv1alpha1.HeldByChecklist(cls[i].Name) == heldBy {
			return true
		}
	}
	return false
}

// exists says whether the checklist heldBy names (tminus's HeldByAnnotation) exists:
// among cls, or else in the cache (one read by name: an ended checklist is not among
// the checklists a decision reads) targeting d. A read that fails counts as existing:
// the hold stays as it is until the next reconcile.
func (r *GateReconciler) exists(ctx context.Context, d *appsv1.Deployment, cls []gate.Checklist, heldBy string) bool {
	if named(cls, heldBy) {
		return true
	}
	name, ok := strings.CutPrefix(heldBy, deployv1alpha1.HeldByChecklist(""))
	if !ok || name == "" {
		return false
	}
	var dcl deployv1alpha1.DeploymentChecklist
	if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, &dcl); err != nil {
		return !apierrors.IsNotFound(err)
	}
	return dcl.Spec.Names(d.Name)
}

// marked says whether a Deployment carries tminus's mark or pause: the gate controller
// looks after those.
func marked(o client.Object) bool {
	return o.GetLabels()[deployv1alpha1.GatedLabel] == deployv1alpha1.GatedByChecklist ||
		o.GetAnnotations()[deployv1alpha1.HeldByAnnotation] != ""
}
