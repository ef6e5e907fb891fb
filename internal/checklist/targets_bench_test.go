package checklist

import (
	"fmt"
	"testing"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// withTargets makes the release one of n targets (t0 … tn-1), released in order.
func withTargets(n int, order deployv1alpha1.ReleaseOrder) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Target = nil
		c.Spec.Targets = nil
		for i := range n {
			c.Spec.Targets = append(c.Spec.Targets, deployv1alpha1.TargetRef{Kind: "Deployment", Name: fmt.Sprintf("t%d", i)})
		}
		c.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: order}
		c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+10m", "10m"
	}
}

func same(n int, t TargetState) []TargetState {
	out := make([]TargetState, n)
	for i := range out {
		out[i] = t
	}
	return out
}

// BenchmarkDecideTargets measures one decision of a release of 1 and of 16 targets:
// while it verifies (every target released and available, triggers measured), and,
// for a Sequential release, while its middle target rolls out and the rest wait.
func BenchmarkDecideTargets(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("verifying/targets=%d", n), func(b *testing.B) {
			c := newChecklist(withTargets(n, deployv1alpha1.ReleaseTogether))
			run(c, Observations{Targets: same(n, heldTarget()), Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
				t0.Add(-time.Minute))
			run(c, Observations{Targets: same(n, rolledOutTarget())}, t0)
			obs := Observations{Targets: same(n, rolledOutTarget()), Metrics: errorRate(0.001, "0.001")}
			at := t0.Add(5 * time.Minute)
			if d := Decide(MustWhole(c), obs, at); d.Status.Phase != deployv1alpha1.PhaseVerifying {
				b.Fatalf("fixture is not verifying: %s", d.Status.Phase)
			}
			b.ReportAllocs()
			for b.Loop() {
				Decide(MustWhole(c), obs, at)
			}
		})
		b.Run(fmt.Sprintf("sequential-deploying/targets=%d", n), func(b *testing.B) {
			c := newChecklist(withTargets(n, deployv1alpha1.ReleaseSequential))
			run(c, Observations{Targets: same(n, heldTarget()), Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
				t0.Add(-time.Minute))
			// Release targets one by one up to the middle one, which rolls out now.
			ts := same(n, heldTarget())
			for i := 0; i < n/2; i++ {
				ts[i] = rolledOutTarget()
				run(c, Observations{Targets: ts}, t0.Add(time.Duration(i)*time.Second))
			}
			rolling := rolledOutTarget()
			rolling.AvailableReplicas = 1
			ts[n/2] = rolling
			obs := Observations{Targets: ts, Metrics: errorRate(0.001, "0.001")}
			at := t0.Add(time.Minute)
			if d := Decide(MustWhole(c), obs, at); d.Status.Phase != deployv1alpha1.PhaseDeploying || d.Status.Releasing != fmt.Sprintf("t%d", n/2) {
				b.Fatalf("fixture is not releasing its middle target: %s, %q", d.Status.Phase, d.Status.Releasing)
			}
			b.ReportAllocs()
			for b.Loop() {
				Decide(MustWhole(c), obs, at)
			}
		})
	}
}
