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
}
