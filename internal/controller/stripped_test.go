package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/httpcheck"
	"github.com/tminus-dev/tminus/internal/record"
	"github.com/tminus-dev/tminus/internal/slim"
)

// noConfigMaps is a client that cannot create ConfigMaps: a manager that ends a
// release without writing its record.
type noConfigMaps struct{ client.Client }

func (c noConfigMaps) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*corev1.ConfigMap); ok {
		return errors.New("no ConfigMaps for this manager")
	}
	return c.Client.Create(ctx, obj, opts...)
}

// TestAnEndedChecklistIsDecidedOnTheWholeOneWhileTheCacheKeepsItStripped: a release
// ends (a sign-off that never came) under a manager that could not write its record;
// the next manager caches ended checklists stripped (--strip-ended-checklists). It
// decides on the whole checklist, read from the API server, and writes the record
// owed, which says what the whole status says, phases and checks included; its cache
// keeps the checklist stripped.
func TestAnEndedChecklistIsDecidedOnTheWholeOneWhileTheCacheKeepsItStripped(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	deployment(t, ns, "checkout:v1")
	first := startManagerIn(t, ns, healthyMetrics(), func(c client.Client, _ context.CancelFunc) client.Client { return noConfigMaps{c} })
	c := newChecklist(ns)
	c.Spec.Phases[0].Timeout = "1s"
	create(t, c)
	waitPhase(t, c, deployv1alpha1.PhaseFailed)
	first.stop()
	g.Expect(getChecklist(g, c).Status.Record).To(BeEmpty(), "the first manager wrote no record")

	opts := StrippingCacheOptions()
	opts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	skip := true
	mgr, err := ctrl.NewManager(bed.Config, ctrl.Options{Scheme: bed.Client.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Cache: opts, Controller: config.Controller{SkipNameValidation: &skip}})
	g.Expect(err).NotTo(HaveOccurred())
	r := &DeploymentChecklistReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("tminus"), Clock: clock.RealClock{}, Metrics: healthyMetrics(), HTTP: &httpcheck.Prober{}}
	g.Expect(r.SetupWithManager(mgr)).To(Succeed())
	mctx, cancel := context.WithCancel(ctx)
	m := &manager{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		_ = mgr.Start(mctx)
	}()
	t.Cleanup(m.stop)

	var done *deployv1alpha1.DeploymentChecklist
	var cm corev1.ConfigMap
	g.Eventually(func(g Gomega) {
		done = getChecklist(g, c)
		g.Expect(done.Status.Record).NotTo(BeEmpty())
		g.Expect(bed.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: done.Status.Record}, &cm)).To(Succeed())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	kept, err := record.Parse(&cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kept).To(Equal(record.Build(done)))
	g.Expect(kept.Phases).NotTo(BeEmpty())

	var cached deployv1alpha1.DeploymentChecklist
	g.Expect(mgr.GetClient().Get(ctx, client.ObjectKeyFromObject(c), &cached)).To(Succeed())
	g.Expect(slim.Stripped(&cached)).To(BeTrue())
	g.Expect(cached.Status.Phases).To(BeEmpty())
}
