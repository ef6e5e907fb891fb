package dashboard

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Hub holds the one watch of checklists that every viewer of the dashboard shares: a
// viewer reads the informer's store and is told when it changed; no viewer ever asks
// the API server itself, so ten open tabs cost the API server what one does.
type Hub struct {
	informer toolscache.SharedIndexInformer

	mu      sync.Mutex
	gen     uint64
	subs    map[chan struct{}]struct{}
	lastErr string
}

// NewHub watches the checklists of namespace ns ("" for all) with c: the user's client.
func NewHub(c client.WithWatch, ns string) *Hub {
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			var l deployv1alpha1.DeploymentChecklistList
			err := c.List(ctx, &l, client.InNamespace(ns), &client.ListOptions{Raw: &opts})
			return &l, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			var l deployv1alpha1.DeploymentChecklistList
			return c.Watch(ctx, &l, client.InNamespace(ns), &client.ListOptions{Raw: &opts})
		},
	}
	h := &Hub{
		informer: toolscache.NewSharedIndexInformer(lw, &deployv1alpha1.DeploymentChecklist{}, 0, toolscache.Indexers{}),
		subs:     map[chan struct{}]struct{}{},
	}
	changed := func(any) { h.changed("") }
	_, _ = h.informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: changed, DeleteFunc: changed,
		UpdateFunc: func(_, _ any) { h.changed("") },
	})
	_ = h.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *toolscache.Reflector, err error) {
		// The user may not list checklists here: say so on the page instead of
		// showing an empty list as if there were none.
		h.changed(err.Error())
	})
	return h
}

// Run runs the watch until ctx ends.
func (h *Hub) Run(ctx context.Context) { h.informer.RunWithContext(ctx) }

// Synced waits for the first list; false when ctx ended first.
func (h *Hub) Synced(ctx context.Context) bool {
	return toolscache.WaitForCacheSync(ctx.Done(), h.informer.HasSynced)
}

func (h *Hub) changed(watchErr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = watchErr // an event means the watch works again
	h.gen++
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default: // it has a notice pending already: it reads the newest state anyway
		}
	}
}

// Subscribe returns a channel told (coalesced) of every change, and its cancel.
func (h *Hub) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// Viewers is how many viewers are subscribed.
func (h *Hub) Viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Generation counts changes seen, and the watch's last error ("" when it works).
func (h *Hub) Generation() (uint64, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gen, h.lastErr
}

// List returns the checklists in view, as the watch last saw them. They are the
// store's own objects: read them, never change them.
func (h *Hub) List() []*deployv1alpha1.DeploymentChecklist {
	objs := h.informer.GetStore().List()
	out := make([]*deployv1alpha1.DeploymentChecklist, 0, len(objs))
	for _, o := range objs {
		if d, ok := o.(*deployv1alpha1.DeploymentChecklist); ok {
			out = append(out, d)
		}
	}
	return out
}

// Get returns the checklist ns/name as the watch last saw it.
func (h *Hub) Get(ns, name string) (*deployv1alpha1.DeploymentChecklist, error) {
	o, ok, err := h.informer.GetStore().GetByKey(ns + "/" + name)
	if err != nil {
		return nil, err
	}
	d, isDCL := o.(*deployv1alpha1.DeploymentChecklist)
	if !ok || !isDCL {
		return nil, fmt.Errorf("no checklist %s/%s in view", ns, name)
	}
	return d, nil
}
