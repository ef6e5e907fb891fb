package scale

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestScaleSmoke runs the scale harness at a small size: checklists whose answers do not
// change cost no writes, the active ones share one query per round, and a breach rolls
// back within an interval and a few seconds.
func TestScaleSmoke(t *testing.T) {
	g := NewWithT(t)
	res, err := Run(context.Background(), Config{Checklists: 60, Active: 20, Releases: 2, Interval: 2 * time.Second, Rounds: 3, Log: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("%+v", res)
	g.Expect(res.QueriesPerRound).To(BeNumerically("<=", 2), "22 checklists, one distinct query")
	// Every active checklist measures every round and finds the same answer (no errors
	// are served): nothing is written. Under one per round leaves room for a stray
	// write of the control plane's own, never one per checklist.
	g.Expect(res.WritesPerRound).To(BeNumerically("<", 1),
		"a checklist that measures the same answer again writes nothing; finished ones write nothing")
	g.Expect(res.BreachToRollbackP99s).To(BeNumerically(">", 0))
	g.Expect(res.ReleasesRestored).To(Equal(2), "every release ended RolledBack, its target recorded restored")
	g.Expect(res.TargetsRestored).To(Equal(2), "every release's Deployment runs v1 again")
}

// TestScaleSmokeReleasesOfFourTargets runs the harness with releases gating four
// Deployments each, rolled out by kube-controller-manager: the breach judged for the
// release rolls every one of them back, and each release ends RolledBack with all
// four targets recorded restored and running v1 again, resumed.
func TestScaleSmokeReleasesOfFourTargets(t *testing.T) {
	g := NewWithT(t)
	res, err := Run(context.Background(), Config{Checklists: 30, Active: 10, Releases: 2, TargetsPerRelease: 4,
		Interval: 2 * time.Second, Rounds: 2, Log: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("%+v", res)
	g.Expect(res.TargetsPerRelease).To(Equal(4))
	g.Expect(res.BreachToRollbackP99s).To(BeNumerically(">", 0))
	g.Expect(res.ReleasesRestored).To(Equal(2),
		"every release ended RolledBack, the rollback complete, each of its four targets released and recorded restored")
	g.Expect(res.TargetsRestored).To(Equal(2*4), "every target of every release runs v1 again, resumed")
}

// TestScaleSmokeBesideADeadPrometheus runs the harness with a quarter of the active
// checklists against a Prometheus that never answers and every query distinct: the
// releases still roll back, and every healthy checklist keeps measuring.
func TestScaleSmokeBesideADeadPrometheus(t *testing.T) {
	g := NewWithT(t)
	res, err := Run(context.Background(), Config{Checklists: 40, Active: 20, Blackholed: 5, DistinctQueries: true,
		Releases: 2, Interval: 2 * time.Second, Rounds: 3, Log: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("%+v", res)
	g.Expect(res.BreachToRollbackP99s).To(BeNumerically(">", 0))
	// Nothing is shared: every healthy checklist's two queries go out each round; the
	// dead Prometheus's circuit is open, so its checklists send almost nothing.
	g.Expect(res.QueriesPerRound).To(BeNumerically(">=", 2*15))
	g.Expect(res.EvaluationsPerSecond).To(BeNumerically(">", 0))
}

// TestScaleSmokeAcrossTwoReplicas runs the harness with two real manager processes
// sharing four shards: each holds two, the releases still roll back, each replica
// shares its queries, and killing one hands its shards to the other within the lease
// and two retries (plus slack for a loaded machine).
func TestScaleSmokeAcrossTwoReplicas(t *testing.T) {
	g := NewWithT(t)
	lease := 4 * time.Second
	res, err := Run(context.Background(), Config{Checklists: 60, Active: 20, Releases: 2, Interval: 2 * time.Second,
		Rounds: 3, Replicas: 2, Shards: 4, Lease: lease, Log: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("%+v", res)
	g.Expect(res.ReplicaRSSMiB).To(HaveLen(2))
	g.Expect(res.ReplicaRSSMiB).To(HaveEach(BeNumerically(">", 0)))
	g.Expect(res.BreachToRollbackP99s).To(BeNumerically(">", 0))
	g.Expect(res.QueriesPerRound).To(BeNumerically("<=", 2*2), "one distinct query, shared within each replica")
	g.Expect(res.EvaluationsPerSecond).To(BeNumerically(">", 0))
	g.Expect(res.TakeoverS).To(BeNumerically(">", 0))
	g.Expect(res.TakeoverS).To(BeNumerically("<=", (lease + 2*lease/8 + 3*time.Second).Seconds()))
}
