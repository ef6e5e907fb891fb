package faults

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/test/testbed"
)

const shardCount = 4

// runShardedManager starts a manager process that takes shards by Lease.
func runShardedManager(t *testing.T, bin string) *exec.Cmd {
	t.Helper()
	return runManagerWith(t, bin,
		"--shards", fmt.Sprint(shardCount), "--leader-elect-namespace", leaseNamespace,
		"--leader-elect-lease-duration", leaseDuration.String(),
		"--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(),
		"--allowed-hosts", "127.0.0.1/32",
		"--webhooks=false")
}

// identityOf reads the shard identity a manager logged when it started.
func identityOf(g Gomega, bin string) string {
	id := testbed.ShardIdentity(filepath.Join(bed.Dir, filepath.Base(bin)+".log"))
	g.Expect(id).NotTo(BeEmpty(), "the manager logs its shard identity")
	return id
}

// shardLeases reads who holds each shard, and since when.
func shardLeases(g Gomega) []coordinationv1.Lease {
	out := make([]coordinationv1.Lease, shardCount)
	for i := range shardCount {
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace,
			Name: fmt.Sprintf("tminus-shard-%d", i)}, &out[i])).To(Succeed())
	}
	return out
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func TestTwoReplicasSplitTheChecklistsAndTheSurvivorTakesOverAKilledOnesShardsWithNoOverlappingWrites(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(client.IgnoreAlreadyExists(bed.Client.Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}))).To(Succeed())
	bins := buildManager(t, "tminus-shard-a", "tminus-shard-b")
	a := runShardedManager(t, bins[0])
	runShardedManager(t, bins[1])
	var idA, idB string
	g.Eventually(func(g Gomega) {
		idA, idB = identityOf(g, bins[0]), identityOf(g, bins[1])
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// Both replicas run, two shards each.
	g.Eventually(func(g Gomega) map[string]int {
		held := map[string]int{}
		for _, l := range shardLeases(g) {
			held[holder(&l)]++
		}
		return held
	}, time.Minute, 200*time.Millisecond).Should(Equal(map[string]int{idA: shardCount / 2, idB: shardCount / 2}))

	// One release in every shard, each held for its sign-off.
	svc := service(t)
	nsOf := make([]string, shardCount)
	prefix := fmt.Sprintf("sharded%d-", nsCounter.Add(1))
	for n := 0; slices.Contains(nsOf, ""); n++ {
		name := fmt.Sprintf("%s%d", prefix, n)
		if i := shard.Of(name, "checkout", shardCount); nsOf[i] == "" {
			nsOf[i] = name
		}
	}
	for _, ns := range nsOf {
		g.Expect(bed.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		g.Expect(bed.Client.Create(ctx, testbed.Deployment(ns, "checkout", "checkout:v1", 2))).To(Succeed())
	}
	for _, ns := range nsOf {
		waitRolledOut(t, ns, "checkout:v1")
		g.Expect(bed.Client.Create(ctx, checklistFor(ns, svc.URL))).To(Succeed())
	}
	for _, ns := range nsOf {
		g.Eventually(func(g Gomega) bool { return getDeployment(g, ns).Spec.Paused }, time.Minute, 100*time.Millisecond).
			Should(BeTrue())
		pushImage(t, ns, "checkout:v2")
	}
	for _, ns := range nsOf {
		g.Eventually(func(g Gomega) string { return getChecklist(g, ns).Status.NextAction }, time.Minute, 100*time.Millisecond).
			Should(ContainSubstring("waiting for deployment-lead sign-off"))
	}
	before := shardLeases(g)

	// a dies without a word: its shards' Leases have to expire.
	g.Expect(a.Process.Signal(syscall.SIGKILL)).To(Succeed())
	_ = a.Wait()
	killed := time.Now()
	for _, ns := range nsOf {
		approve(t, ns)
	}
	for _, ns := range nsOf {
		waitPhase(t, ns, deployv1alpha1.PhaseSucceeded)
		waitRolledOut(t, ns, "checkout:v2")
	}

	after := shardLeases(g)
	var worst time.Duration
	for i := range after {
		g.Expect(holder(&after[i])).To(Equal(idB), "shard %d", i)
		if holder(&before[i]) == idA {
			worst = max(worst, after[i].Spec.AcquireTime.Sub(killed))
		}
	}
	t.Logf("the survivor took over the killed replica's shards %s after the kill (lease %s, retry %s)",
		worst.Round(time.Millisecond), leaseDuration, retryPeriod)
	g.Expect(worst).To(BeNumerically("<=", leaseDuration+2*retryPeriod+2*time.Second))

	// The audit log: each release's objects were written by the replica holding its
	// shard, never by both at once.
	events, err := bed.Audit()
	g.Expect(err).NotTo(HaveOccurred())
	writers := map[string]map[string]int{}
	for _, e := range events {
		if e.ResponseStatus.Code >= 300 || e.ObjectRef.Resource == "events" || !slices.Contains(nsOf, e.ObjectRef.Namespace) {
			continue
		}
		i := shard.Of(e.ObjectRef.Namespace, "checkout", shardCount)
		var who string
		switch {
		case strings.HasPrefix(e.UserAgent, "tminus-shard-a/"):
			who = "a"
			g.Expect(holder(&before[i])).To(Equal(idA), "a wrote %s/%s of shard %d, which b held", e.ObjectRef.Namespace,
				e.ObjectRef.Resource, i)
			g.Expect(e.RequestReceived).To(BeTemporally("<", killed))
		case strings.HasPrefix(e.UserAgent, "tminus-shard-b/"):
			who = "b"
			if holder(&before[i]) == idA {
				g.Expect(e.RequestReceived).To(BeTemporally(">=", after[i].Spec.AcquireTime.Truncate(time.Microsecond)),
					"b wrote %s %s/%s of shard %d before it took the shard over", e.Verb, e.ObjectRef.Namespace,
					e.ObjectRef.Resource, i)
			}
		default:
			continue
		}
		if writers[e.ObjectRef.Namespace] == nil {
			writers[e.ObjectRef.Namespace] = map[string]int{}
		}
		writers[e.ObjectRef.Namespace][who]++
	}
	for i, ns := range nsOf {
		if holder(&before[i]) == idA {
			g.Expect(writers[ns]["a"]).To(BeNumerically(">", 0), "a held the release of shard %d", i)
		}
		g.Expect(writers[ns]["b"]).To(BeNumerically(">", 0), "b released the release of shard %d", i)
	}
	t.Logf("writes by replica per release: %v", writers)
}
