package checklist

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func TestNeedsAsksOnlyForWhatIsDue(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withJobCheck(0))
	g.Expect(NeedsFor(c, t0).Metrics).To(Equal([]string{"error-rate"}), "never measured: due")
	g.Expect(NeedsFor(c, t0).Jobs).To(Equal([]string{"T-10m/smoke"}))

	run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.02, "0.02")}, t0)
	g.Expect(NeedsFor(c, t0.Add(29*time.Second)).Metrics).To(BeEmpty(), "measured 29s ago with a 30s interval")
	g.Expect(NeedsFor(c, t0.Add(30*time.Second)).Metrics).To(Equal([]string{"error-rate"}))
}

func TestNeedsAsksForTriggersOnlyAfterT0(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Phases[0].Checks = c.Spec.Phases[0].Checks[:1] // approval only
		c.Spec.RollbackTriggers = append(c.Spec.RollbackTriggers, deployv1alpha1.RollbackTrigger{
			Name: "health", HTTP: &deployv1alpha1.HTTPCheck{URL: "http://checkout/health"},
		})
	})
	n := NeedsFor(c, t0)
	g.Expect(n.Metrics).To(BeEmpty())
	g.Expect(n.HTTP).To(BeEmpty())

	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead")}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	n = NeedsFor(c, t0.Add(time.Second))
	g.Expect(n.Metrics).To(Equal([]string{"error-rate"}))
	g.Expect(n.HTTP).To(HaveKey("trigger/health"))

	c.Status.Phase = deployv1alpha1.PhaseSucceeded
	g.Expect(NeedsFor(c, t0.Add(time.Hour)).Metrics).To(BeEmpty(), "nothing is measured once it ended")
}

func TestNeedsAsksForTheOpenTPlusPhasesChecksAndNothingWhileWaitingForTheTemplate(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withJobCheck(1), func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.RollbackTriggers = nil })
	g.Expect(NeedsFor(c, t0.Add(time.Minute)).Metrics).To(BeEmpty(), "T+5m is not open yet")
	n := NeedsFor(c, t0.Add(5*time.Minute))
	g.Expect(n.Metrics).To(Equal([]string{"error-rate"}))
	g.Expect(n.Jobs).To(Equal([]string{"T+5m/smoke"}))

	// T-0 passed with no new template: the T-minus phases passed, nothing is due.
	w := newChecklist()
	run(w, Observations{Targets: []TargetState{servingV1()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0)
	g.Expect(w.Status.Targets[0].T0At).NotTo(BeNil())
	g.Expect(NeedsFor(w, t0.Add(time.Minute)).Metrics).To(BeEmpty())
}

func TestJobNamesAreDeterministicDistinctAndShortEnoughForALabel(t *testing.T) {
	g := NewWithT(t)
	g.Expect(JobName("checkout-v2", "T-60m", "db-backup")).To(Equal("checkout-v2-tm60m-db-backup"))
	g.Expect(JobName("checkout-v2", "T+60m", "db-backup")).NotTo(Equal(JobName("checkout-v2", "T-60m", "db-backup")))
	long := strings.Repeat("a", 60)
	n1, n2 := JobName(long, "T+5m", "smoke-tests"), JobName(long, "T+5m", "smoke-tests-2")
	g.Expect(len(n1)).To(BeNumerically("<=", 63))
	g.Expect(n1).NotTo(Equal(n2))
	g.Expect(JobName(long, "T+5m", "smoke-tests")).To(Equal(n1))
}

func TestAChecklistNameTooLongForALabelValueIsShortenedUniquely(t *testing.T) {
	g := NewWithT(t)
	g.Expect(LabelValue("checkout-v2")).To(Equal("checkout-v2"))
	a, b := LabelValue(strings.Repeat("a", 200)+"-1"), LabelValue(strings.Repeat("a", 200)+"-2")
	g.Expect(len(a)).To(BeNumerically("<=", 63))
	g.Expect(a).NotTo(Equal(b))
	g.Expect(a).To(MatchRegexp(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`))
}

func TestQueriesResolveTheirVariables(t *testing.T) {
	c := newChecklist()
	got := ResolveQuery(c, `rate(x{namespace="{{namespace}}",app="{{target}}",version="{{revision}}",dcl="{{checklist}}"}[5m])`)
	NewWithT(t).Expect(got).To(Equal(`rate(x{namespace="shop",app="checkout",version="v2",dcl="checkout-v2"}[5m])`))
}

func seedSample(b *testing.B) *deployv1alpha1.DeploymentChecklist {
	raw, err := os.ReadFile("../../config/samples/deploy_v1alpha1_deploymentchecklist.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var c deployv1alpha1.DeploymentChecklist
	if err := yaml.Unmarshal(raw, &c); err != nil {
		b.Fatal(err)
	}
	c.Namespace = "shop"
	return &c
}

// BenchmarkDecide measures one decision on the seed checklist (8 phases, 4 triggers)
// while it verifies T+15m with every metric and trigger measured.
func BenchmarkDecide(b *testing.B) {
	c := seedSample(b)
	approvals := approved("deployment-lead", "technical-review", "security-review", "operations")
	for role := range approvals {
		approvals[role][0].Revision = "v2.7.0"
	}
	ok := Measurement{Kind: ResultValue, Value: 0.001, Display: "0.001"}
	obs := Observations{
		Targets:   []TargetState{heldTarget()},
		Approvals: approvals,
		Metrics:   map[string]Measurement{"error-rate": ok, "p95-latency": ok, "db-connection-errors": ok},
		HTTP:      map[string]Measurement{},
		Jobs:      map[string]JobState{},
	}
	for _, ph := range c.Spec.Phases {
		for _, ch := range ph.Checks {
			if ch.HTTP != nil {
				obs.HTTP[CheckKey(ph.Name, ch.Name)] = Measurement{Kind: ResultValue, Value: 200, Display: "200", OK: true}
			}
			if ch.Job != nil {
				obs.Jobs[CheckKey(ph.Name, ch.Name)] = JobState{Exists: true, Succeeded: true}
			}
		}
	}
	obs.HTTP[TriggerKey("health-failing")] = Measurement{Kind: ResultValue, Value: 200, Display: "200", OK: true}
	// Walk it to T+15m: every T-minus phase passed, released, available, T+5m passed.
	now := t0
	run(c, obs, now)
	obs.Targets = []TargetState{rolledOutTarget()}
	run(c, obs, now.Add(time.Second))
	run(c, obs, now.Add(5*time.Minute+time.Second))
	if c.Status.Phase != deployv1alpha1.PhaseVerifying || c.Status.Phases[4].State != deployv1alpha1.PhaseStatePassed {
		b.Fatalf("fixture is not between T+5m and T+15m: %s, %s is %s", c.Status.Phase, c.Status.Phases[4].Name, c.Status.Phases[4].State)
	}
	at := now.Add(15*time.Minute + time.Second)
	obs.Jobs[CheckKey("T+15m", "production-smoke")] = JobState{Exists: true}
	b.ReportAllocs()
	for b.Loop() {
		d := Decide(mustWhole(c), obs, at)
		if d.Status.Phase != deployv1alpha1.PhaseVerifying {
			b.Fatalf("unexpected phase %s", d.Status.Phase)
		}
	}
}

// TestStatusStaysSmallAfterTenThousandMeasurements measures the seed checklist's status
// after 10,000 evaluations of every metric and trigger: bounded history keeps it far
// below etcd's object limit.
func TestStatusStaysSmallAfterTenThousandMeasurements(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile("../../config/samples/deploy_v1alpha1_deploymentchecklist.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	var c deployv1alpha1.DeploymentChecklist
	g.Expect(yaml.Unmarshal(raw, &c)).To(Succeed())
	c.Namespace = "shop"
	bad := Measurement{Kind: ResultValue, Value: 0.5, Display: "0.500000001", Query: strings.Repeat("x", 300)}
	obs := Observations{Targets: []TargetState{heldTarget()}, Metrics: map[string]Measurement{"error-rate": bad, "p95-latency": bad, "db-connection-errors": bad}}
	now := t0
	for range 10000 {
		run(&c, obs, now)
		now = now.Add(30 * time.Second)
	}
	out, err := json.Marshal(&c)
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("checklist with status after 10,000 measurements: %d bytes", len(out))
	g.Expect(len(out)).To(BeNumerically("<", 64<<10))
}

func TestEvaluationTimeIsTheTickForReconcilesOfTheSameRound(t *testing.T) {
	g := NewWithT(t)
	tick := time.Date(2026, 11, 26, 20, 0, 10, 0, time.UTC)
	for _, late := range []time.Duration{0, 300 * time.Millisecond, 2 * time.Second, 4999 * time.Millisecond} {
		g.Expect(EvaluationTime(tick.Add(late), 10*time.Second)).To(Equal(tick), "%s after the tick", late)
	}
	off := tick.Add(7 * time.Second)
	g.Expect(EvaluationTime(off, 10*time.Second)).To(Equal(off), "far from a tick: now")
}
