package checklist

import (
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// latencyQuery is p95 latency of the released pods.
const latencyQuery = `histogram_quantile(0.95, sum by (le) (rate(latency_bucket{pod_template_hash="{{podTemplateHash}}"}[5m])))`

// withLatency adds a p95 latency metric and, to T+5m, a check with an absolute limit
// and one relative to the baseline.
func withLatency(policy deployv1alpha1.NoDataPolicy) dclOption {
	return func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Metrics = append(c.Spec.Metrics, deployv1alpha1.MetricSpec{Name: "latency", Query: latencyQuery, OnNoData: policy})
		c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks,
			deployv1alpha1.CheckSpec{Name: "p95-absolute", Metric: "latency", Below: new("2")},
			deployv1alpha1.CheckSpec{Name: "p95-regression", Metric: "latency", BelowBaseline: new("1.5")})
	}
}

// withLatencyTrigger adds a trigger firing at 1.5 × the baseline latency.
func withLatencyTrigger(c *deployv1alpha1.DeploymentChecklist) {
	c.Spec.RollbackTriggers = append(c.Spec.RollbackTriggers,
		deployv1alpha1.RollbackTrigger{Name: "p95-regression", Metric: "latency", AboveBaseline: new("1.5")})
}

func latencies(errors, latency float64) map[string]Measurement {
	return map[string]Measurement{"error-rate": value(errors, "0.001"), "latency": {Kind: ResultValue, Value: latency,
		Display: strconv.FormatFloat(latency, 'g', -1, 64), Query: `...{pod_template_hash="rs-v2"}...`}}
}

func baselineOf(m Measurement) map[string]Measurement { return map[string]Measurement{"latency": m} }

func tplusCheck(c *deployv1alpha1.DeploymentChecklist, name string) deployv1alpha1.CheckStatus {
	for _, cr := range c.Status.Phases[1].Checks {
		if cr.Name == name {
			return cr
		}
	}
	panic("no check " + name)
}

func TestAP95RegressionUnderTheAbsoluteLimitFailsOnlyTheBaselineCheck(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withLatency(deployv1alpha1.NoDataHold))
	g.Expect(c.Status.Targets[0].PreDeployPodTemplateHash).To(Equal("rs-v1"))
	g.Expect(c.Status.Targets[0].ReleasedPodTemplateHash).To(Equal("rs-v2"))

	at := t0.Add(5 * time.Minute)
	needs := NeedsFor(c, at)
	g.Expect(needs.Metrics).To(ContainElement("latency"))
	g.Expect(needs.Baselines).To(Equal([]string{"latency"}), "only the metric compared with its baseline")

	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: latencies(0.001, 0.2),
		Baselines: baselineOf(Measurement{Kind: ResultValue, Value: 0.1, Display: "0.1", Query: "old"})}, at)
	g.Expect(tplusCheck(c, "p95-absolute").Outcome).To(Equal(deployv1alpha1.OutcomePass), "200 ms is under 2 s")
	regression := tplusCheck(c, "p95-regression")
	g.Expect(regression.Outcome).To(Equal(deployv1alpha1.OutcomeFail))
	g.Expect(regression.Threshold).To(Equal("< 1.5 × baseline 0.1 (0.15)"))
	g.Expect(regression.Message).To(Equal("0.2 is not < 1.5 × baseline 0.1 (0.15)"))

	g.Expect(c.Status.Baselines).To(HaveLen(1))
	b := c.Status.Baselines[0]
	g.Expect(b.Metric).To(Equal("latency"))
	g.Expect(b.Result).To(Equal(BaselineValue))
	g.Expect(b.Value).To(Equal("0.1"))
	g.Expect(b.Query).To(Equal("old"))
	g.Expect(b.At.Time).To(Equal(c.Status.Targets[0].T0At.Time), "the metric at T-0")
	g.Expect(NeedsFor(c, at.Add(30*time.Second)).Baselines).To(BeEmpty(), "a baseline value is kept")
}

func TestATriggerAboveTheBaselineRollsBack(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withLatency(deployv1alpha1.NoDataHold), withLatencyTrigger)
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: latencies(0.001, 0.2),
		Baselines: baselineOf(Measurement{Kind: ResultValue, Value: 0.1, Display: "0.1"})}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Message).To(Equal("rollback trigger p95-regression fired: 0.2 > 1.5 × baseline 0.1 (0.15)"))
}

func TestATriggerInItsGracePeriodJudgesNothing(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""), func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.RollbackTriggers[0].After = "5m"
	})
	// The old version's errors still fill the rate window: nothing is judged.
	g.Expect(NeedsFor(c, t0.Add(time.Minute)).Metrics).To(BeEmpty())
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.08, "0.08")}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.Triggers[0].Outcome).To(Equal(deployv1alpha1.OutcomePending))
	g.Expect(c.Status.Triggers[0].Message).To(Equal("grace: judged from 2026-11-26T20:05:00Z (5m0s after the release became available)"))
	g.Expect(d.RequeueAfter).To(BeNumerically("<=", 4*time.Minute))

	// Past it, a breach fires as before.
	g.Expect(NeedsFor(c, t0.Add(5*time.Minute)).Metrics).To(ContainElement("error-rate"))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.08, "0.08")}, t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
}

func TestACheckInItsGracePeriodMovesItsPhasesDeadline(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		// T+5m is the last phase: its deadline is 10m after it opened, at t0+15m.
		c.Spec.Phases[1].Checks[0].After = "14m50s"
	})
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(5*time.Minute))
	g.Expect(tplusCheck(c, "errors").Outcome).To(Equal(deployv1alpha1.OutcomePending))
	g.Expect(tplusCheck(c, "errors").Message).To(HavePrefix("grace: judged from 2026-11-26T20:14:50Z"))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}}, t0.Add(15*time.Minute+10*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying), "the deadline waits one interval past the grace")
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(15*time.Minute+15*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
}

func TestABaselineWithoutDataFollowsOnNoData(t *testing.T) {
	for _, tc := range []struct {
		policy deployv1alpha1.NoDataPolicy
		want   deployv1alpha1.Outcome
	}{
		{deployv1alpha1.NoDataHold, deployv1alpha1.OutcomeNoData},
		{deployv1alpha1.NoDataPass, deployv1alpha1.OutcomePass},
		{deployv1alpha1.NoDataFail, deployv1alpha1.OutcomeFail},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			g := NewWithT(t)
			c := releasedChecklist(withLatency(tc.policy))
			run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: latencies(0.001, 0.2),
				Baselines: baselineOf(Measurement{Kind: ResultNoData, Display: "NaN"})}, t0.Add(5*time.Minute))
			g.Expect(tplusCheck(c, "p95-regression").Outcome).To(Equal(tc.want))
			g.Expect(c.Status.Baselines[0].Result).To(Equal(BaselineNoData))
			if c.Status.Phase == deployv1alpha1.PhaseVerifying {
				g.Expect(NeedsFor(c, t0.Add(5*time.Minute+30*time.Second)).Baselines).To(Equal([]string{"latency"}),
					"asked again: a late sample may still arrive")
			}
		})
	}
}

func TestAZeroBaselineLeavesTheAbsoluteLimitToJudge(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withLatency(deployv1alpha1.NoDataHold), func(c *deployv1alpha1.DeploymentChecklist) {
		// One check with both limits, as the sample writes it.
		c.Spec.Phases[1].Checks[2].Below = new("2")
	})
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: latencies(0.001, 0.2),
		Baselines: baselineOf(Measurement{Kind: ResultValue, Value: 0, Display: "0"})}, t0.Add(5*time.Minute))
	g.Expect(tplusCheck(c, "p95-regression").Outcome).To(Equal(deployv1alpha1.OutcomePass), "judged by below alone")
	g.Expect(c.Status.Baselines[0].Message).To(ContainSubstring("a baseline of 0 or less bounds nothing"))

	// Without an absolute limit, nothing bounds the value: onNoData decides (Hold).
	c = releasedChecklist(withLatency(deployv1alpha1.NoDataHold))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: latencies(0.001, 0.2),
		Baselines: baselineOf(Measurement{Kind: ResultValue, Value: 0, Display: "0"})}, t0.Add(5*time.Minute))
	cr := tplusCheck(c, "p95-regression")
	g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomeNoData))
	g.Expect(cr.Message).To(Equal("the baseline is 0, and a ratio of it bounds nothing; onNoData is Hold"))
}

func TestABaselineErrorNeverPassesNorFires(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withLatency(deployv1alpha1.NoDataHold), withLatencyTrigger)
	down := Measurement{Kind: ResultError, Message: "connection refused"}
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: latencies(0.001, 9), Baselines: baselineOf(down)}, t0.Add(5*time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(tplusCheck(c, "p95-regression").Outcome).To(Equal(deployv1alpha1.OutcomeError))
	g.Expect(c.Status.Triggers[1].Outcome).To(Equal(deployv1alpha1.OutcomeError))
	g.Expect(c.Status.Triggers[1].Message).To(Equal("baseline: connection refused"))
	g.Expect(NeedsFor(c, t0.Add(5*time.Minute+30*time.Second)).Baselines).To(Equal([]string{"latency"}))
}

func TestWhatNeedsAReleaseIsRefusedBeforeT0(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*deployv1alpha1.DeploymentChecklist)
		want   string
	}{
		{"a baseline", func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Phases[0].Checks[1].BelowBaseline = new("1.2") },
			"spec.phases[0].checks[1]: belowBaseline and aboveBaseline are for T-plus phases"},
		{"a grace period", func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Phases[0].Checks[1].After = "5m" },
			"spec.phases[0].checks[1].after: only T-plus phases wait after the release"},
		{"the released pods", func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Metrics[0].Query = latencyQuery },
			`spec.phases[0].checks[1].metric: the query of "error-rate" uses {{podTemplateHash}}`},
		{"a ratio of 0", func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.RollbackTriggers[0].AboveBaseline = new("0") },
			`spec.rollbackTriggers[0].aboveBaseline: "0" is not a ratio greater than 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecklist(tc.mutate)
			NewWithT(t).Expect(Validate(&c.Spec)).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}
