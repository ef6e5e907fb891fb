// Package history bounds the past: the ended checklists kept per target workload
// (--checklist-history-limit, a checklist's or template's spec.historyLimit). Older
// ended checklists are deleted by the manager, each by a delete conditional on the UID
// and resourceVersion it was decided on; a live checklist is never deleted. What a
// rolled-back checklist refused stays refused without it (the target's
// deploy.tminus.dev/refused-templates).
package history

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/internal/target"
)

// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=deploymentchecklists,verbs=delete

// DefaultLimit is --checklist-history-limit's default.
const DefaultLimit = 10

// DefaultQPS is --checklist-history-qps's default: the history limit's deletes per
// second, a fifth of --kube-api-qps's default, so trimming a year of releases at start
// never takes the budget of the live releases reconciled beside it.
const DefaultQPS = 20

// Key names a target workload: "<kind>/<namespace>/<name>". A checklist's history is
// counted per workload it targets, so a checklist naming several is counted on each.
func Key(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Keys are the target workloads of a checklist.
func Keys(dcl *deployv1alpha1.DeploymentChecklist) []string {
	refs := dcl.Spec.TargetRefs()
	keys := make([]string, 0, len(refs))
	for _, ref := range refs {
		kind := ref.Kind
		if kind == "" {
			kind = "Deployment"
		}
		keys = append(keys, Key(kind, dcl.Namespace, ref.Name))
	}
	return keys
}

// Ended says whether the checklist has ended (and is not already being deleted): the
// only kind the history limit deletes.
func Ended(dcl *deployv1alpha1.DeploymentChecklist) bool {
	return gate.Terminal(dcl.Status.Phase) && dcl.DeletionTimestamp.IsZero()
}

// LimitOf is the history limit a checklist asks for: its spec.historyLimit, or the one
// its template gave it (kept in status.resolved); 0 when it names none.
func LimitOf(dcl *deployv1alpha1.DeploymentChecklist) int {
	if l := dcl.Spec.HistoryLimit; l != nil {
		return int(*l)
	}
	if r := dcl.Status.Resolved; r != nil {
		var body struct {
			HistoryLimit *int32 `json:"historyLimit"`
		}
		if json.Unmarshal(r.Raw, &body) == nil && body.HistoryLimit != nil {
			return int(*body.HistoryLimit)
		}
	}
	return 0
}

// newestFirst orders checklists by creation, newest first, then by name.
func newestFirst(a, b *deployv1alpha1.DeploymentChecklist) int {
	if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// Past decides which checklists of one target workload (key) are past its history
// limit: the ended ones beyond the newest limit ended ones, oldest last. The limit is
// the newest checklist's own (LimitOf), else def; def 0 with none named keeps them all.
// A live checklist is never among them, nor counted.
func Past(cls []*deployv1alpha1.DeploymentChecklist, key string, def int) []*deployv1alpha1.DeploymentChecklist {
	mine := make([]*deployv1alpha1.DeploymentChecklist, 0, len(cls))
	for _, c := range cls {
		if slices.Contains(Keys(c), key) {
			mine = append(mine, c)
		}
	}
	slices.SortFunc(mine, newestFirst)
	limit := def
	if len(mine) > 0 {
		if l := LimitOf(mine[0]); l > 0 {
			limit = l
		}
	}
	if limit <= 0 {
		return nil
	}
	var out []*deployv1alpha1.DeploymentChecklist
	kept := 0
	for _, c := range mine {
		if !Ended(c) {
			continue
		}
		if kept < limit {
			kept++
			continue
		}
		out = append(out, c)
	}
	return out
}

// Reconciler trims one target workload's history: its requests are the Deployment's
// namespace and name.
type Reconciler struct {
	// Reader reads checklists from the manager's cache (target.ChecklistIndex).
	Reader client.Reader
	// Deleter deletes: the manager's client, whose rate limiter (--kube-api-qps,
	// --kube-api-burst) paces every write, the trimming's too.
	Deleter client.Writer
	// Pace, when set, is the trimming's own rate (--checklist-history-qps): every delete
	// waits for it before the client's rate limiter, so trimming a large past at start
	// takes at most that share of the client's budget and the live releases keep the
	// rest.
	Pace interface {
		Wait(ctx context.Context) error
	}
	// Limit is --checklist-history-limit; 0 keeps every ended checklist whose target's
	// newest checklist names no limit.
	Limit int
	// Shards, when set: only the targets of the shards this replica holds.
	Shards *shard.Set
}

// Reconcile deletes the ended checklists of the Deployment past its history limit, each
// only if it is still the object decided on (UID and resourceVersion): one that
// changed since is decided again on the next event.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if r.Shards != nil {
		done, ok := r.Shards.Begin(req.Namespace, req.Name)
		if !ok {
			return reconcile.Result{}, nil
		}
		defer done()
	}
	var list deployv1alpha1.DeploymentChecklistList
	if err := r.Reader.List(ctx, &list, client.InNamespace(req.Namespace),
		client.MatchingFields{target.ChecklistIndex: req.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing the checklists of %s: %w", req.NamespacedName, err)
	}
	cls := make([]*deployv1alpha1.DeploymentChecklist, 0, len(list.Items))
	for i := range list.Items {
		cls = append(cls, &list.Items[i])
	}
	log := logf.FromContext(ctx)
	for _, c := range Past(cls, Key("Deployment", req.Namespace, req.Name), r.Limit) {
		if r.Pace != nil {
			if err := r.Pace.Wait(ctx); err != nil {
				return reconcile.Result{}, err
			}
		}
		uid, rv := c.UID, c.ResourceVersion
		victim := &deployv1alpha1.DeploymentChecklist{}
		victim.Namespace, victim.Name = c.Namespace, c.Name
		err := r.Deleter.Delete(ctx, victim, client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			metrics.HistoryDeleted.Inc()
			log.Info("deleted an ended checklist past the history limit", "checklist", c.Name, "phase", c.Status.Phase)
		case apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			// Changed since the cache showed it: its update event brings the target back.
			log.Info("not deleted: the checklist changed since it was read", "checklist", c.Name)
		default:
			return reconcile.Result{}, fmt.Errorf("deleting checklist %s/%s: %w", c.Namespace, c.Name, err)
		}
	}
	return reconcile.Result{}, nil
}

// SetupWithManager trims a target's history whenever one of its checklists is created,
// changes or goes: at start, every target once (the cache's first list). target.Index
// must be registered.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	return ctrl.ControllerManagedBy(mgr).
		Named("checklisthistory").
		Watches(&deployv1alpha1.DeploymentChecklist{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				dcl, ok := o.(*deployv1alpha1.DeploymentChecklist)
				if !ok {
					return nil
				}
				var reqs []reconcile.Request
				for _, name := range dcl.Spec.TargetNames() {
					reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: dcl.Namespace, Name: name}})
				}
				return reqs
			}), ctrl.WithPredicates(endings())).
		Complete(r)
}

// endings lets through what can put a target past its limit: a checklist created (and
// every one at start), one that ends, one whose limit changes. A status write of a live
// checklist, the common event, does not.
func endings() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*deployv1alpha1.DeploymentChecklist)
			n, ok2 := e.ObjectNew.(*deployv1alpha1.DeploymentChecklist)
			return !ok1 || !ok2 || Ended(o) != Ended(n) || LimitOf(o) != LimitOf(n)
		},
		DeleteFunc: func(event.DeleteEvent) bool { return false },
	}
}
