package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// judgedPerTarget: the trigger judges the backend's series, the T+ check the
// frontend's; the T-minus check still judges the whole release.
func judgedPerTarget(c *deployv1alpha1.DeploymentChecklist) {
	twoTier(c)
	c.Spec.RollbackTriggers[0].Target = "backend"
	c.Spec.Phases[1].Checks[0].Target = "frontend"
	c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+10m", "10m"
}

// TestATriggerNamingTheBackendJudgesTheBackendsSeriesAndRollsBackBoth: the metric is
// asked once per target that names it (error-rate@backend, error-rate@frontend); the
// status shows each value under its target, and the backend's breach rolls back the
// whole release.
func TestATriggerNamingTheBackendJudgesTheBackendsSeriesAndRollsBackBoth(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(judgedPerTarget)
	two := func(ts TargetState) []TargetState { return []TargetState{ts, ts} }
	run(c, Observations{Targets: two(heldTarget()), Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
		t0.Add(-time.Minute))
	run(c, Observations{Targets: two(rolledOutTarget())}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))

	needs := NeedsFor(c, t0.Add(10*time.Minute))
	g.Expect(needs.Metrics).To(Equal([]string{"error-rate@backend", "error-rate@frontend"}))

	per := map[string]Measurement{"error-rate@backend": value(0.09, "0.09"), "error-rate@frontend": value(0.02, "0.02")}
	run(c, Observations{Targets: two(rolledOutTarget()), Metrics: per}, t0.Add(10*time.Minute))
	g.Expect(c.Status.Triggers[0].Target).To(Equal("backend"))
	g.Expect(c.Status.Triggers[0].Value).To(Equal("0.09"))
	check := c.Status.Phases[1].Checks[0]
	g.Expect(check.Target).To(Equal("frontend"))
	g.Expect(check.Value).To(Equal("0.02"))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying), "the backend's breach must last 2m")
	d := run(c, Observations{Targets: two(rolledOutTarget()), Metrics: per}, t0.Add(13*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(actionsOn(d, ActionRestore)).To(Equal([]string{"backend", "frontend"}))
}

// TestAQueryForOneTargetNamesThatTargetAndItsReplicaSet: {{target}} and
// {{podTemplateHash}} are that target's alone; unnamed, {{target}} is every target.
func TestAQueryForOneTargetNamesThatTargetAndItsReplicaSet(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	c.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{
		{Kind: "Deployment", Name: "frontend", TargetStatus: deployv1alpha1.TargetStatus{ReleasedPodTemplateHash: "f2"}},
		{Kind: "Deployment", Name: "backend", TargetStatus: deployv1alpha1.TargetStatus{ReleasedPodTemplateHash: "b2"}},
	}
	q := `rate(errors{deployment=~"{{target}}",pod_template_hash="{{podTemplateHash}}"}[5m])`
	g.Expect(RenderQuery(q, QueryVarsFor(c, "backend"))).To(Equal(`rate(errors{deployment=~"backend",pod_template_hash="b2"}[5m])`))
	g.Expect(RenderQuery(`errors{deployment=~"{{target}}"}`, QueryVarsFor(c, ""))).To(Equal(`errors{deployment=~"(frontend|backend)"}`))
	name, target := SplitMetricKey(MetricKey("error-rate", "backend"))
	g.Expect([]string{name, target}).To(Equal([]string{"error-rate", "backend"}))
}
