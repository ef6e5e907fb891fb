package scale

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestScaleSmoke runs the scale harness at a small size: the finished checklists cost no
// writes, the active ones share one query per round, and a breach rolls back within an
// interval and a few seconds.
func TestScaleSmoke(t *testing.T) {
	g := NewWithT(t)
	res, err := Run(context.Background(), Config{Checklists: 60, Active: 20, Releases: 2, Interval: 2 * time.Second, Rounds: 3, Log: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("%+v", res)
	g.Expect(res.QueriesPerRound).To(BeNumerically("<=", 2), "22 checklists, one distinct query")
	g.Expect(res.WritesPerRound).To(BeNumerically("<=", float64(res.Active+res.Releases)*1.5),
		"only checklists that measured write their status; finished ones write nothing")
	g.Expect(res.BreachToRollbackP99s).To(BeNumerically(">", 0))
}
