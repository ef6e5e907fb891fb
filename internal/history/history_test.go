package history_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/history"
	"github.com/tminus-dev/tminus/internal/target"
	"github.com/tminus-dev/tminus/test/testbed"
)

var bed *testbed.Bed

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard())
	var err error
	if bed, err = testbed.Start(context.Background(), testbed.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bed.Stop()
	os.Exit(code)
}

var nsCounter atomic.Int32

func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("history%d", nsCounter.Add(1))
	NewWithT(t).Expect(bed.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

// ended creates a checklist of Deployment deployment and writes its status phase
// (empty: live, as a new checklist is).
func ended(t *testing.T, ns, name, deployment string, phase deployv1alpha1.ChecklistPhase, limit *int32) {
	t.Helper()
	g := NewWithT(t)
	c := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: deployment},
			Revision: name,
			ChecklistBody: deployv1alpha1.ChecklistBody{
				HistoryLimit: limit,
				Phases: []deployv1alpha1.PhaseSpec{{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
					{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
				}}},
			},
		},
	}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	if phase != "" {
		c.Status.Phase = phase
		g.Expect(bed.Client.Status().Update(context.Background(), c)).To(Succeed())
	}
}

// start runs a manager with the history reconciler only (nothing else acts on the
// checklists), deleting with a client of limiter's rate limiter when set (returned),
// each delete first waiting for pace when set.
func start(t *testing.T, limit int, limiter *grantedLimiter, pace *grantedLimiter) client.Client {
	t.Helper()
	g := NewWithT(t)
	mgr, err := ctrl.NewManager(rest.CopyConfig(bed.Config), ctrl.Options{
		Scheme: bed.Client.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: new(true)}, // one manager per test
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(target.Index(context.Background(), mgr.GetFieldIndexer())).To(Succeed())
	deleter := mgr.GetClient()
	if limiter != nil {
		cfg := rest.CopyConfig(bed.Config)
		cfg.RateLimiter = limiter
		c, err := client.New(cfg, client.Options{Scheme: bed.Client.Scheme(), Mapper: mgr.GetRESTMapper()})
		g.Expect(err).NotTo(HaveOccurred())
		deleter = c
	}
	r := &history.Reconciler{Reader: mgr.GetClient(), Deleter: deleter, Limit: limit}
	if pace != nil {
		r.Pace = pace
	}
	g.Expect(r.SetupWithManager(mgr)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return deleter
}

// names lists the checklists of the namespace.
func names(g Gomega, ns string) []string {
	var list deployv1alpha1.DeploymentChecklistList
	g.Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	out := make([]string, 0, len(list.Items))
	for _, c := range list.Items {
		out = append(out, c.Name)
	}
	return out
}

// TestTheOldestEndedChecklistsPastTheLimitAreDeletedAndNoLiveOne: checkout has, oldest
// first, a live checklist (v1, still running), three ended ones (v2 Succeeded, v3
// Failed, v4 RolledBack) and the newest, live, asking for a history of 2. cart has three
// ended ones and names no limit. The manager, started with --checklist-history-limit 1,
// deletes v2 (checkout keeps its two newest ended, v3 and v4, and both live ones) and
// cart's two oldest.
func TestTheOldestEndedChecklistsPastTheLimitAreDeletedAndNoLiveOne(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	two := int32(2)
	type made struct {
		name, deployment string
		phase            deployv1alpha1.ChecklistPhase
		limit            *int32
	}
	rounds := [][]made{
		{{"checkout-v1", "checkout", deployv1alpha1.PhaseRunning, nil}, {"cart-v1", "cart", deployv1alpha1.PhaseSucceeded, nil}},
		{{"checkout-v2", "checkout", deployv1alpha1.PhaseSucceeded, nil}, {"cart-v2", "cart", deployv1alpha1.PhaseRolledBack, nil}},
		{{"checkout-v3", "checkout", deployv1alpha1.PhaseFailed, nil}, {"cart-v3", "cart", deployv1alpha1.PhaseSucceeded, nil}},
		{{"checkout-v4", "checkout", deployv1alpha1.PhaseRolledBack, nil}},
		{{"checkout-v5", "checkout", "", &two}},
	}
	for i, round := range rounds {
		if i > 0 {
			time.Sleep(time.Second) // creation timestamps are to the second
		}
		for _, m := range round {
			ended(t, ns, m.name, m.deployment, m.phase, m.limit)
		}
	}
	start(t, 1, nil, nil)
	want := []string{"cart-v3", "checkout-v1", "checkout-v3", "checkout-v4", "checkout-v5"}
	g.Eventually(func(g Gomega) []string { return names(g, ns) }, time.Minute, 100*time.Millisecond).Should(ConsistOf(want))
	g.Consistently(func(g Gomega) []string { return names(g, ns) }, 2*time.Second, 200*time.Millisecond).Should(ConsistOf(want))

	// The live one that was oldest ends: it is the oldest ended now, past the limit.
	var v1 deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "checkout-v1"}, &v1)).To(Succeed())
	v1.Status.Phase = deployv1alpha1.PhaseFailed
	g.Expect(bed.Client.Status().Update(context.Background(), &v1)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "checkout-v1"},
			&deployv1alpha1.DeploymentChecklist{}))
	}, time.Minute, 100*time.Millisecond).Should(BeTrue())
	g.Expect(names(g, ns)).To(ConsistOf("cart-v3", "checkout-v3", "checkout-v4", "checkout-v5"))
}

// grantedLimiter is a client rate limiter that lets a request through only for a token
// the test grants: what the client's QPS does, without the clock.
type grantedLimiter struct {
	tokens chan struct{}
	taken  atomic.Int32
}

func (l *grantedLimiter) TryAccept() bool {
	select {
	case <-l.tokens:
		l.taken.Add(1)
		return true
	default:
		return false
	}
}
func (l *grantedLimiter) Accept() { <-l.tokens; l.taken.Add(1) }
func (l *grantedLimiter) Stop()   {}
func (l *grantedLimiter) QPS() float32 {
	return 0
}
func (l *grantedLimiter) Wait(ctx context.Context) error {
	select {
	case <-l.tokens:
		l.taken.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *grantedLimiter) grant(n int) {
	for range n {
		l.tokens <- struct{}{}
	}
}

// TestTrimmingAtStartWaitsForTheClientsRateLimiter: a history of four targets with two
// ended checklists each, trimmed to one at start, deletes as fast as the client's rate
// limiter lets it: with two requests granted, two checklists are deleted and no more;
// with two more, the other two.
func TestTrimmingAtStartWaitsForTheClientsRateLimiter(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for i := range 2 {
		for _, d := range []string{"a", "b", "c", "d"} {
			ended(t, ns, fmt.Sprintf("%s-v%d", d, i+1), d, deployv1alpha1.PhaseSucceeded, nil)
		}
		if i == 0 {
			time.Sleep(time.Second) // creation timestamps are to the second
		}
	}
	limiter := &grantedLimiter{tokens: make(chan struct{}, 16)}
	start(t, 1, limiter, nil)
	limiter.grant(2)
	g.Eventually(func(g Gomega) []string { return names(g, ns) }, time.Minute, 100*time.Millisecond).Should(HaveLen(6))
	g.Consistently(func(g Gomega) []string { return names(g, ns) }, 2*time.Second, 200*time.Millisecond).Should(HaveLen(6))
	limiter.grant(2)
	g.Eventually(func(g Gomega) []string { return names(g, ns) }, time.Minute, 100*time.Millisecond).
		Should(ConsistOf("a-v2", "b-v2", "c-v2", "d-v2"))
	g.Expect(limiter.taken.Load()).To(BeEquivalentTo(4))
}

// TestTrimmingAtStartTakesOnlyItsOwnPaceAndLeavesTheClientToLiveReleases: four targets
// with two ended checklists each and a live release on a fifth, trimmed to one at
// start by a client with budget to spare but a trimming pace (--checklist-history-qps)
// of two: two checklists are deleted and no more while the client's other requests go
// through at once (the live release's status written); two more from the pace, the
// other two.
func TestTrimmingAtStartTakesOnlyItsOwnPaceAndLeavesTheClientToLiveReleases(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	ended(t, ns, "e-v1", "e", "", nil)
	for i := range 2 {
		for _, d := range []string{"a", "b", "c", "d"} {
			ended(t, ns, fmt.Sprintf("%s-v%d", d, i+1), d, deployv1alpha1.PhaseSucceeded, nil)
		}
		if i == 0 {
			time.Sleep(time.Second) // creation timestamps are to the second
		}
	}
	budget := &grantedLimiter{tokens: make(chan struct{}, 16)}
	budget.grant(16)
	pace := &grantedLimiter{tokens: make(chan struct{}, 16)}
	c := start(t, 1, budget, pace)
	pace.grant(2)
	g.Eventually(func(g Gomega) []string { return names(g, ns) }, time.Minute, 100*time.Millisecond).Should(HaveLen(7))
	g.Consistently(func(g Gomega) []string { return names(g, ns) }, 2*time.Second, 200*time.Millisecond).Should(HaveLen(7))

	// The trimming waits for its pace; the live release's write does not wait for it.
	var live deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "e-v1"}, &live)).To(Succeed())
	live.Status.Phase = deployv1alpha1.PhaseRunning
	written := make(chan error, 1)
	go func() { written <- c.Status().Update(context.Background(), &live) }()
	g.Eventually(written, 10*time.Second).Should(Receive(BeNil()))
	g.Expect(budget.taken.Load()).To(BeEquivalentTo(3))

	pace.grant(2)
	g.Eventually(func(g Gomega) []string { return names(g, ns) }, time.Minute, 100*time.Millisecond).
		Should(ConsistOf("a-v2", "b-v2", "c-v2", "d-v2", "e-v1"))
	g.Expect(pace.taken.Load()).To(BeEquivalentTo(4))
}
