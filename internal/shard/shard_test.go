package shard

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tminus-dev/tminus/test/testbed"
)

var bed *testbed.Bed

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{}, func(b *testbed.Bed) error { bed = b; return nil }))
}

var namespaces atomic.Int32

// newNamespace makes a namespace of its own for a test's Leases.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, namespaces.Add(1))
	if err := bed.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestAKeyAlwaysFallsToTheSameShardAndShardsAreEven(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Of("team-a", "checkout", 8)).To(Equal(Of("team-a", "checkout", 8)))
	g.Expect(Of("team-a", "checkout", 1)).To(Equal(0))
	// The namespace and the name are kept apart: a/bc and ab/c differ.
	counts := make([]int, 8)
	for n := range 8000 {
		counts[Of(fmt.Sprintf("team-%d", n%50), fmt.Sprintf("app-%d", n), 8)]++
	}
	for i, c := range counts {
		g.Expect(c).To(BeNumerically("~", 1000, 150), "shard %d", i)
	}
}

// timeline records, for every shard, which replicas held it when.
type timeline struct {
	mu      sync.Mutex
	holders map[int]map[string]bool
	overlap []string
}

func (tl *timeline) onChange(identity string) func(int, bool) {
	return func(i int, held bool) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if tl.holders[i] == nil {
			tl.holders[i] = map[string]bool{}
		}
		if held && len(tl.holders[i]) > 0 {
			tl.overlap = append(tl.overlap, fmt.Sprintf("shard %d taken by %s while %v held it", i, identity, tl.holders[i]))
		}
		if held {
			tl.holders[i][identity] = true
		} else {
			delete(tl.holders[i], identity)
		}
	}
}

func (tl *timeline) heldBy(identity string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, h := range tl.holders {
		if h[identity] {
			n++
		}
	}
	return n
}

// replica starts a Set as identity; stop ends it and returns what Start returned.
func replica(t *testing.T, ns, identity string, tl *timeline) (s *Set, stop func() error) {
	t.Helper()
	return replicaWith(t, ns, identity, &Set{}, tl.onChange(identity))
}

// replicaWith starts s as identity, telling onChange of its shards.
func replicaWith(t *testing.T, ns, identity string, s *Set, onChange func(int, bool)) (*Set, func() error) {
	t.Helper()
	cfg := rest.CopyConfig(bed.Config)
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Leases, s.Namespace, s.Name, s.Shards, s.Identity = cs.CoordinationV1(), ns, "tminus-shard", 6, identity
	s.LeaseDuration, s.RenewDeadline, s.RetryPeriod = 3*time.Second, 2*time.Second, 250*time.Millisecond
	s.OnChange, s.Log = onChange, logr.Discard()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	var once sync.Once
	var result error
	stop := func() error {
		once.Do(func() { cancel(); result = <-done })
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

func TestReplicasSplitTheShardsAndAStoppedReplicaHandsItsShardsOverWithNoOverlap(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "shards-split")
	tl := &timeline{holders: map[int]map[string]bool{}}

	a, stopA := replica(t, ns, "replica-a", tl)
	g.Eventually(func() int { return tl.heldBy("replica-a") }, 20*time.Second, 50*time.Millisecond).Should(Equal(6))

	// A second replica joins: each ends with half, a's in-flight work done before b
	// begins any of what it hands over.
	// a hands back its highest shards; take work of shard 5 before b comes.
	app := "checkout"
	for n := 0; Of("team", app, 6) != 5; n++ {
		app = fmt.Sprintf("checkout-%d", n)
	}
	begun, ok := a.Begin("team", app)
	g.Expect(ok).To(BeTrue())
	var once sync.Once
	done := func() { once.Do(begun) }
	t.Cleanup(done)
	b, _ := replica(t, ns, "replica-b", tl)
	g.Eventually(func() int { return tl.heldBy("replica-a") }, 20*time.Second, 50*time.Millisecond).
		Should(BeNumerically("<=", 5))
	g.Eventually(func() bool { return a.Owns("team", app) }, 10*time.Second, 50*time.Millisecond).Should(BeFalse(),
		"a stops beginning work of a shard it hands back at once")
	// While a's work of it is in flight, b does not get it.
	g.Consistently(func() bool { return b.Owns("team", app) }, 2*time.Second, 50*time.Millisecond).Should(BeFalse())
	done()
	g.Eventually(func() bool { return b.Owns("team", app) }, 10*time.Second, 50*time.Millisecond).Should(BeTrue())
	g.Eventually(func() []int { return []int{tl.heldBy("replica-a"), tl.heldBy("replica-b")} }, 30*time.Second,
		50*time.Millisecond).Should(Equal([]int{3, 3}))

	// a stops cleanly: its Leases are released, b takes every shard without waiting
	// for them to expire.
	g.Expect(stopA()).To(Succeed())
	g.Eventually(func() int { return tl.heldBy("replica-b") }, 10*time.Second, 50*time.Millisecond).Should(Equal(6))
	g.Expect(a.Held()).To(BeEmpty())

	tl.mu.Lock()
	defer tl.mu.Unlock()
	g.Expect(tl.overlap).To(BeEmpty())
}

func TestAShardWhoseHolderStoppedRenewingIsTakenOverOneLeaseDurationAfterItsLastRenewal(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "shards-ghost")
	// A replica that died a moment ago: it holds every shard and is a member, and
	// renews nothing any more.
	ghost := "replica-ghost"
	last := metav1.NewMicroTime(time.Now())
	secs := int32(3)
	for _, name := range []string{"tminus-shard-0", "tminus-shard-1", "tminus-shard-2", "tminus-shard-3",
		"tminus-shard-4", "tminus-shard-5", "tminus-shard-member-ghost"} {
		g.Expect(bed.Client.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{SetLabel: "tminus-shard"}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &ghost, LeaseDurationSeconds: &secs, AcquireTime: &last,
				RenewTime: &last},
		})).To(Succeed())
	}
	tl := &timeline{holders: map[int]map[string]bool{}}
	started := time.Now()
	replica(t, ns, "replica-a", tl)

	// Not before the lease duration: the ghost may be alive and slow.
	g.Consistently(func() int { return tl.heldBy("replica-a") }, 2*time.Second, 50*time.Millisecond).Should(BeZero())
	g.Eventually(func() int { return tl.heldBy("replica-a") }, 10*time.Second, 20*time.Millisecond).Should(Equal(6))
	took := time.Since(started)
	t.Logf("took the dead replica's shards %s after starting (lease 3s, retry 250ms)", took.Round(time.Millisecond))
	// Observed from the start, so the lease duration and two retry periods after its
	// first look, and a second of slack for a loaded machine.
	g.Expect(took).To(BeNumerically("<=", 3*time.Second+2*250*time.Millisecond+time.Second))
}

func TestAReplicaWhoseShardWasTakenStopsActingAndSaysWhy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "shards-taken")
	tl := &timeline{holders: map[int]map[string]bool{}}
	a, stop := replica(t, ns, "replica-a", tl)
	g.Eventually(func() int { return tl.heldBy("replica-a") }, 20*time.Second, 50*time.Millisecond).Should(Equal(6))

	// Someone else writes itself into shard 2's Lease (a replica that thought it
	// expired, a human): a must not go on with work another may be doing.
	g.Eventually(func() error {
		var l coordinationv1.Lease
		if err := bed.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tminus-shard-2"}, &l); err != nil {
			return err
		}
		l.Spec.HolderIdentity = new("intruder")
		return bed.Client.Update(ctx, &l)
	}, 5*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() int { return tl.heldBy("replica-a") }, 5*time.Second, 20*time.Millisecond).Should(BeZero())
	err := stop()
	g.Expect(err).To(MatchError(ContainSubstring(`shard 2: lost the Lease ` + ns + `/tminus-shard-2: it is held by "intruder"`)))
	g.Expect(a.Held()).To(BeEmpty())
}

// stalling is a replica's Lease client whose List and Update, once stalled, hang until
// their context ends, as calls to an API server that stopped answering do.
type stalling struct {
	coordinationclient.LeasesGetter
	stalled atomic.Bool
}

func (s *stalling) Leases(ns string) coordinationclient.LeaseInterface {
	return stallingLeases{LeaseInterface: s.LeasesGetter.Leases(ns), stalled: &s.stalled}
}

type stallingLeases struct {
	coordinationclient.LeaseInterface
	stalled *atomic.Bool
}

func (l stallingLeases) List(ctx context.Context, opts metav1.ListOptions) (*coordinationv1.LeaseList, error) {
	if l.stalled.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return l.LeaseInterface.List(ctx, opts)
}

func (l stallingLeases) Update(ctx context.Context, lease *coordinationv1.Lease,
	opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if l.stalled.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return l.LeaseInterface.Update(ctx, lease, opts)
}

func TestAReplicaWhoseLeaseCallsHangStopsActingBeforeAnotherCanTakeItsShards(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "shards-hung")
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(bed.Config))
	g.Expect(err).NotTo(HaveOccurred())
	leases := &stalling{LeasesGetter: cs.CoordinationV1()}
	tl := &timeline{holders: map[int]map[string]bool{}}
	a := &Set{
		Leases: leases, Namespace: ns, Name: "tminus-shard", Shards: 6, Identity: "replica-a",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond,
		OnChange: tl.onChange("replica-a"), Log: logr.Discard(),
	}
	ended := make(chan error, 1)
	go func() { ended <- a.Start(t.Context()) }()
	g.Eventually(func() int { return tl.heldBy("replica-a") }, 20*time.Second, 50*time.Millisecond).Should(Equal(6))
	// A Deployment of each shard.
	apps := map[int]string{}
	for n := 0; len(apps) < 6; n++ {
		app := fmt.Sprintf("checkout-%d", n)
		if _, ok := apps[Of("team", app, 6)]; !ok {
			apps[Of("team", app, 6)] = app
		}
	}

	// The API server stops answering a's List and Update: they hang.
	leases.stalled.Store(true)
	// b comes, and takes each shard once a's Lease of it expired. At that moment a
	// must not be acting on it any more.
	var mu sync.Mutex
	var actedWhileTaken []string
	b := &Set{}
	_, stopB := replicaWith(t, ns, "replica-b", b, func(i int, held bool) {
		if !held {
			return
		}
		if done, ok := a.Begin("team", apps[i]); ok {
			done()
			mu.Lock()
			actedWhileTaken = append(actedWhileTaken, fmt.Sprintf("shard %d", i))
			mu.Unlock()
		}
	})
	defer func() { _ = stopB() }()
	g.Eventually(func() int {
		n := 0
		for i := range 6 {
			if b.Owns("team", apps[i]) {
				n++
			}
		}
		return n
	}, 30*time.Second, 50*time.Millisecond).Should(Equal(6))
	mu.Lock()
	g.Expect(actedWhileTaken).To(BeEmpty(), "a went on acting on shards b had taken")
	mu.Unlock()
	// a did not wait for its hung calls: it gave up at the renew deadline and said why.
	g.Eventually(ended, 10*time.Second).Should(Receive(MatchError(ContainSubstring("was not renewed within 2s"))))
	g.Expect(a.Held()).To(BeEmpty())
}
