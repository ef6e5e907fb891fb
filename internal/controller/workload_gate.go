package controller

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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

// WorkloadGateReconciler is the GateReconciler of the workloads held by their update
// strategy (Kind: StatefulSet or DaemonSet): it keeps the gated label on those that
// checklists target while they need the admission webhook to see them, and takes
// tminus's hold off once nothing holds it (a checklist deleted whatever its phase),
// putting the owner's partition or strategy back.
type WorkloadGateReconciler struct {
	client.Client
	// APIReader reads from the API server after a write conflict; the Client when nil.
	APIReader client.Reader
	// Shards, when set: only the workloads of the shards this replica holds.
	Shards *shard.Set
	// Kind is the kind of workload reconciled.
	Kind string
	// Recorder tells, on a DaemonSet tminus holds, of pods recreated on the held
	// template; none are told of when nil.
	Recorder EventRecorder
}

// ReasonHeldTemplateRunning is the Warning event on a DaemonSet tminus holds whose pods
// recreated under the hold run the held template.
const ReasonHeldTemplateRunning = "HeldTemplateRunning"

// Reconcile brings one workload's label and hold in line with its checklists.
func (r *WorkloadGateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	done, ours := begin(r.Shards, req.Namespace, req.Name)
	if !ours {
		return ctrl.Result{}, nil
	}
	defer done()
	view, notGateable, found, err := target.GateViewOf(ctx, r.Client, r.Kind, req.NamespacedName)
	if err != nil || !found {
		return ctrl.Result{}, err
	}
	w := target.Of(r.Kind)
	cls, err := target.ChecklistsOf(ctx, r.Client, r.Kind, req.Namespace, req.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	fresh := r.APIReader
	if fresh == nil {
		fresh = r.Client
	}
	log := logf.FromContext(ctx).WithValues("kind", r.Kind, "name", req.NamespacedName)

	// A workload tminus cannot hold (OnDelete) is not labelled: a checklist of it
	// touches nothing.
	want := (gate.WantsMark(cls) && notGateable == "") || len(view.Refused) > 0
	if label := view.GateLabel; (want && label == "") || (!want && label == deployv1alpha1.GatedByChecklist) {
		if err := w.Mark(ctx, r.Client, fresh, req.NamespacedName, want); err != nil {
			return ctrl.Result{}, ignoreGone(err)
		}
		log.Info("gated label", "set", want)
	}

	if !view.Paused || view.HeldBy == "" {
		return ctrl.Result{}, nil
	}
	if err := r.warnHeldPods(ctx, req.NamespacedName); err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case gate.ShouldResume(&view, cls):
		log.Info("taking tminus's hold off: nothing holds it", "heldBy", view.HeldBy)
		err := w.Resume(ctx, r.Client, fresh, req.NamespacedName, view.TemplateHash)
		if errors.Is(err, target.ErrTemplateChanged) {
			log.Info("not resumed: the pod template changed since it was read", "error", err.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, ignoreGone(err)
	case gate.Active(cls) == nil && view.HeldBy != deployv1alpha1.HeldByAdmission && !named(cls, view.HeldBy):
		reason := fmt.Sprintf("pod template (%s) is released by no checklist (it was held for %s, which is gone); "+
			"create a DeploymentChecklist targeting %s %s to release it", gate.ImageList(view.Images), view.HeldBy, r.Kind, req.Name)
		return ctrl.Result{}, ignoreGone(w.Hold(ctx, r.Client, fresh, req.NamespacedName, deployv1alpha1.HeldByAdmission, reason, view.TemplateHash))
	}
	return ctrl.Result{}, nil
}

// warnHeldPods records a Warning event on a DaemonSet tminus holds whose pods run the
// held template: OnDelete holds against the DaemonSet controller only, and a pod
// recreated while held (a new node, an eviction, kubectl delete pod) starts on the held
// template. The SRE reading kubectl describe sees which pods run a template no checklist
// released, and how to list them. The event repeats (and is counted) while they do.
func (r *WorkloadGateReconciler) warnHeldPods(ctx context.Context, key types.NamespacedName) error {
	if r.Kind != deployv1alpha1.KindDaemonSet || r.Recorder == nil {
		return nil
	}
	var ds appsv1.DaemonSet
	if err := r.Get(ctx, key, &ds); err != nil {
		return client.IgnoreNotFound(err)
	}
	held, err := target.DaemonSetHeldPods(ctx, r.Client, &ds)
	if err != nil || held.Pods == 0 {
		return err
	}
	serving := "the template that serves"
	if held.ServingImages != nil {
		serving = gate.ImageList(held.ServingImages)
	}
	r.Recorder.Eventf(&ds, nil, corev1.EventTypeWarning, ReasonHeldTemplateRunning, "Hold",
		"%d pod(s) of DaemonSet %s run the held pod template (%s), which no checklist released: they were created "+
			"while tminus holds the DaemonSet with OnDelete (a new node, an eviction, a deleted pod), and OnDelete cannot "+
			"keep a new pod on %s. List them: kubectl get pods -n %s -l %s=%s. They stay on it until a checklist releases "+
			"it (then every pod takes it) or a rollback restores %s",
		held.Pods, key.Name, gate.ImageList(held.Images), serving, key.Namespace, appsv1.DefaultDaemonSetUniqueLabelKey,
		held.RevisionHash, serving)
	return nil
}

// SetupWithManager watches the workloads of the kind tminus marked or holds, and every
// checklist with one among its targets.
func (r *WorkloadGateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	var obj client.Object
	switch r.Kind {
	case deployv1alpha1.KindStatefulSet:
		obj = &appsv1.StatefulSet{}
	case deployv1alpha1.KindDaemonSet:
		obj = &appsv1.DaemonSet{}
	default:
		return fmt.Errorf("no workload gate for kind %q", r.Kind)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(obj, builder.WithPredicates(predicate.NewPredicateFuncs(marked))).
		Watches(&deployv1alpha1.DeploymentChecklist{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				dcl, ok := o.(*deployv1alpha1.DeploymentChecklist)
				if !ok {
					return nil
				}
				var reqs []reconcile.Request
				for _, ref := range dcl.Spec.TargetRefs() {
					if ref.KindOf() == r.Kind {
						reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: dcl.Namespace, Name: ref.Name}})
					}
				}
				return reqs
			})).
		Named(map[string]string{deployv1alpha1.KindStatefulSet: "statefulsetgate", deployv1alpha1.KindDaemonSet: "daemonsetgate"}[r.Kind]).
		Complete(r)
}
