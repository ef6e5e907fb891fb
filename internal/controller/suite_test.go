package controller

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/httpcheck"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/internal/slim"
	"github.com/tminus-dev/tminus/test/testbed"
)

// bed is one test bed for the package: kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler and kwok. Each test works in a namespace of its own.
var bed *testbed.Bed

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Cluster: true}, func(b *testbed.Bed) error {
		bed = b
		// The managers' logs go beside the components' logs, kept when a test fails.
		logFile, err := os.Create(filepath.Join(bed.Dir, "tminus-manager.log"))
		if err != nil {
			return err
		}
		logf.SetLogger(zap.New(zap.WriteTo(logFile), zap.UseDevMode(true)))
		return nil
	}))
}

var nsCounter atomic.Int32

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t" + strconv.Itoa(int(nsCounter.Add(1)))}}
	NewWithT(t).Expect(bed.Client.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// fakeMetrics is a MetricSource whose values the test sets, per query.
type fakeMetrics struct {
	mu      sync.Mutex
	values  map[string]checklist.Measurement
	queries int
	byQuery map[string]int
}

func newFakeMetrics() *fakeMetrics { return &fakeMetrics{values: map[string]checklist.Measurement{}} }

func (f *fakeMetrics) set(query string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[query] = checklist.Measurement{Kind: checklist.ResultValue, Value: v, Display: strconv.FormatFloat(v, 'g', 6, 64), Query: query}
}

func (f *fakeMetrics) Measure(_ context.Context, req prometheus.Request) checklist.Measurement {
	query := req.Query
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.byQuery == nil {
		f.byQuery = map[string]int{}
	}
	f.byQuery[query]++
	if m, ok := f.values[query]; ok {
		return m
	}
	return checklist.Measurement{Kind: checklist.ResultNoData, Query: query}
}

// manager is a running tminus manager.
type manager struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startManagerIn runs the tminus controller against the test bed until the test ends,
// watching only namespace ns (every namespace when empty): each test has a manager of
// its own, so tests may run in parallel. wrap, if set, wraps the manager's client (to
// inject crashes); opts adjust the reconciler.
func startManagerIn(t *testing.T, ns string, metrics MetricSource, wrap func(client.Client, context.CancelFunc) client.Client,
	opts ...func(*DeploymentChecklistReconciler)) *manager {
	t.Helper()
	return startManagerSeeing(t, ns, nil, metrics, wrap, opts...)
}

// startManagerSeeing is startManagerIn with a manager whose cache holds only the
// checklists that sel selects (every one when nil): a manager that has not seen the
// others yet.
func startManagerSeeing(t *testing.T, ns string, sel labels.Selector, metrics MetricSource,
	wrap func(client.Client, context.CancelFunc) client.Client, opts ...func(*DeploymentChecklistReconciler)) *manager {
	t.Helper()
	skip := true
	// The cache reads sign-offs as the reconciler does: its settings are known below.
	rule := &slim.Rule{}
	cacheOpts := StrippingCacheOptionsWith(rule)
	if ns != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	}
	if sel != nil {
		cacheOpts.ByObject = map[client.Object]cache.ByObject{&deployv1alpha1.DeploymentChecklist{}: {Label: sel,
			Transform: rule.Transform}}
	}
	mgr, err := ctrl.NewManager(bed.Config, ctrl.Options{
		Scheme:                 bed.Client.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOpts,
		Controller:             config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := mgr.GetClient()
	if wrap != nil {
		c = wrap(c, cancel)
	}
	r := &DeploymentChecklistReconciler{
		Client:    c,
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("tminus"),
		Clock:     clock.RealClock{},
		Metrics:   metrics,
		HTTP:      &httpcheck.Prober{},
	}
	for _, o := range opts {
		o(r)
	}
	rule.VerifiedApprovals = r.VerifiedApprovals
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	m := &manager{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := mgr.Start(ctx); err != nil {
			t.Logf("manager stopped: %v", err)
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *manager) stop() {
	m.cancel()
	<-m.done
}

// deployment creates a 3-replica Deployment running image and waits for it to roll out.
func deployment(t *testing.T, ns, image string) *appsv1.Deployment {
	t.Helper()
	d := deploymentSpec(ns, image)
	NewWithT(t).Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	waitRunning(t, d, image)
	return d
}

// waitRunning waits until the Deployment is rolled out with image.
func waitRunning(t *testing.T, d *appsv1.Deployment, image string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) error {
		var cur appsv1.Deployment
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(d), &cur)).To(Succeed())
		return testbed.RolledOut(&cur, image)
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

func getDeployment(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	var cur appsv1.Deployment
	NewWithT(t).Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(d), &cur)).To(Succeed())
	return &cur
}

func getChecklist(g Gomega, c *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.DeploymentChecklist {
	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
	return &cur
}

// waitPhase waits for the checklist to reach phase and returns it.
func waitPhase(t *testing.T, c *deployv1alpha1.DeploymentChecklist, phase deployv1alpha1.ChecklistPhase) *deployv1alpha1.DeploymentChecklist {
	t.Helper()
	var cur *deployv1alpha1.DeploymentChecklist
	NewWithT(t).Eventually(func(g Gomega) deployv1alpha1.ChecklistPhase {
		cur = getChecklist(g, c)
		return cur.Status.Phase
	}, 2*time.Minute, 100*time.Millisecond).Should(Equal(phase))
	return cur
}

// setImage changes the Deployment's image, as a pipeline would.
func setImage(t *testing.T, d *appsv1.Deployment, image string) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		cur := getDeployment(t, d)
		cur.Spec.Template.Spec.Containers[0].Image = image
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

// approve records a sign-off annotation, as kubectl annotate or a GitOps commit would.
func approve(t *testing.T, c *deployv1alpha1.DeploymentChecklist, role, value string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) error {
		cur := getChecklist(g, c)
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[deployv1alpha1.ApprovalAnnotationPrefix+role] = value
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

// deploymentSpec is the 3-replica checkout Deployment running image, not created.
func deploymentSpec(ns, image string) *appsv1.Deployment {
	return testbed.Deployment(ns, "checkout", image, 3)
}
