package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// namespacePrefix starts every namespace a run makes; the recorder keeps only those.
const namespacePrefix = "chaos-"

// The labels of a release record's ConfigMap (docs/records.md).
const (
	recordKindLabel      = "deploy.tminus.dev/kind"
	recordKind           = "release-record"
	recordChecklistLabel = "deploy.tminus.dev/checklist"
)

// seen is one version of an object as the recorder saw it from the API server's watch,
// and when.
type seen[T client.Object] struct {
	At      time.Time
	Obj     T
	Deleted bool
}

// history is everything the API server said about one run's namespace: every version
// of its Deployment, ReplicaSets and checklists, in the order the watch gave them.
type history struct {
	deployment  []seen[*appsv1.Deployment]
	replicaSets map[string][]seen[*appsv1.ReplicaSet]
	checklists  map[string][]seen[*deployv1alpha1.DeploymentChecklist]
	// order is the checklists' names, oldest first.
	order []string
	// records are the release records' ConfigMaps, by name.
	records map[string][]seen[*corev1.ConfigMap]
}

// recorder watches the runs' namespaces. Invariants are functions over what it saw.
type recorder struct {
	mu sync.Mutex
	ns map[string]*history
}

// startRecorder watches until ctx ends; it returns once the watches synced (or synced
// ended).
func startRecorder(ctx, synced context.Context, cfg *rest.Config, scheme *runtime.Scheme) (*recorder, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{recordKindLabel: recordKind})},
	}})
	if err != nil {
		return nil, err
	}
	r := &recorder{ns: map[string]*history{}}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &appsv1.ReplicaSet{},
		&deployv1alpha1.DeploymentChecklist{}, &corev1.ConfigMap{}} {
		inf, err := c.GetInformer(synced, obj)
		if err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { r.record(o, false) },
			UpdateFunc: func(_, o any) { r.record(o, false) },
			DeleteFunc: func(o any) {
				if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				r.record(o, true)
			},
		}); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(synced) {
		return nil, fmt.Errorf("the recorder's cache did not sync")
	}
	return r, nil
}

func (r *recorder) record(o any, deleted bool) {
	obj, ok := o.(client.Object)
	if !ok || !strings.HasPrefix(obj.GetNamespace(), namespacePrefix) {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.ns[obj.GetNamespace()]
	if h == nil {
		h = &history{replicaSets: map[string][]seen[*appsv1.ReplicaSet]{},
			checklists: map[string][]seen[*deployv1alpha1.DeploymentChecklist]{},
			records:    map[string][]seen[*corev1.ConfigMap]{}}
		r.ns[obj.GetNamespace()] = h
	}
	switch x := obj.(type) {
	case *appsv1.Deployment:
		h.deployment = append(h.deployment, seen[*appsv1.Deployment]{now, x, deleted})
	case *appsv1.ReplicaSet:
		h.replicaSets[x.Name] = append(h.replicaSets[x.Name], seen[*appsv1.ReplicaSet]{now, x, deleted})
	case *deployv1alpha1.DeploymentChecklist:
		if _, ok := h.checklists[x.Name]; !ok {
			h.order = append(h.order, x.Name)
		}
		h.checklists[x.Name] = append(h.checklists[x.Name], seen[*deployv1alpha1.DeploymentChecklist]{now, x, deleted})
	case *corev1.ConfigMap:
		h.records[x.Name] = append(h.records[x.Name], seen[*corev1.ConfigMap]{now, x, deleted})
	}
}

// view runs f on the namespace's history under the recorder's lock (f must not keep
// it); an empty history when nothing was seen yet.
func (r *recorder) view(ns string, f func(h *history)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.ns[ns]
	if h == nil {
		h = &history{}
	}
	f(h)
}

func (r *recorder) forget(ns string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ns, ns)
}

// latest is the newest version of a checklist, or nil.
func latest[T client.Object](vs []seen[T]) (seen[T], bool) {
	if len(vs) == 0 {
		var zero seen[T]
		return zero, false
	}
	return vs[len(vs)-1], true
}
