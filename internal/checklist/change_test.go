package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func TestCompareGradesEachKindOfChange(t *testing.T) {
	base := newChecklist()
	run(base, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.001, "0.001")}, t0)
	later := metav1.NewTime(t0.Add(time.Minute))

	cases := []struct {
		name   string
		change func(st *deployv1alpha1.DeploymentChecklistStatus)
		want   Change
	}{
		{"nothing", func(*deployv1alpha1.DeploymentChecklistStatus) {}, Unchanged},
		{"a check measured again", func(st *deployv1alpha1.DeploymentChecklistStatus) {
			cr := &st.Phases[0].Checks[1]
			cr.LastEvaluated = &later
			cr.History = append(cr.History, deployv1alpha1.Measurement{Time: later, Outcome: cr.Outcome, Value: cr.Value})
		}, Timing},
		{"a trigger measured again", func(st *deployv1alpha1.DeploymentChecklistStatus) {
			st.Triggers[0].LastEvaluated = &later
		}, Timing},
		{"a value moved", func(st *deployv1alpha1.DeploymentChecklistStatus) { st.Phases[0].Checks[1].Value = "0.002" }, Detail},
		{"an error counted", func(st *deployv1alpha1.DeploymentChecklistStatus) { st.Phases[0].Checks[1].ConsecutiveErrors++ }, Detail},
		{"a trigger's message", func(st *deployv1alpha1.DeploymentChecklistStatus) {
			st.Triggers[0].Message = "breaching for 30s of 2m0s"
		}, Detail},
		{"the next scheduled time", func(st *deployv1alpha1.DeploymentChecklistStatus) { st.NextActionAt = &later }, Detail},
		{"an outcome", func(st *deployv1alpha1.DeploymentChecklistStatus) {
			st.Phases[0].Checks[1].Outcome = deployv1alpha1.OutcomeFail
		}, Material},
		{"the phase", func(st *deployv1alpha1.DeploymentChecklistStatus) { st.Phase = deployv1alpha1.PhaseHolding }, Material},
		{"the next action", func(st *deployv1alpha1.DeploymentChecklistStatus) { st.NextAction = "Deployment checkout is gone" }, Material},
		{"a condition's message", func(st *deployv1alpha1.DeploymentChecklistStatus) { st.Conditions[0].Message = "other" }, Material},
		{"a breach starting", func(st *deployv1alpha1.DeploymentChecklistStatus) { st.Triggers[0].BreachingSince = &later }, Material},
		{"an approval", func(st *deployv1alpha1.DeploymentChecklistStatus) {
			st.Approvals = append(st.Approvals, deployv1alpha1.ApprovalRecord{Role: "deployment-lead", Approver: "alice", FirstSeen: later})
		}, Material},
		{"a value and an outcome", func(st *deployv1alpha1.DeploymentChecklistStatus) {
			st.Phases[0].Checks[1].Value, st.Phases[0].Checks[1].Outcome = "0.2", deployv1alpha1.OutcomeFail
		}, Material},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := base.Status.DeepCopy()
			tc.change(cur)
			NewWithT(t).Expect(Compare(&base.Status, cur)).To(Equal(tc.want))
		})
	}
}

// The property that makes an unchanged checklist cost no writes: measuring it again
// and getting the same answer moves nothing but measurement times.
func TestMeasuringTheSameAnswerAgainChangesOnlyTiming(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	held := Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.001, "0.001")}
	run(c, held, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	for i := 1; i <= 12; i++ {
		before := c.Status.DeepCopy()
		run(c, held, t0.Add(time.Duration(i)*30*time.Second))
		g.Expect(Compare(before, &c.Status)).To(Equal(Timing), "held before T-0, measurement %d", i)
	}

	before := c.Status.DeepCopy()
	run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.004, "0.004")}, t0.Add(7*time.Minute))
	g.Expect(Compare(before, &c.Status)).To(Equal(Detail), "a new value on the same side of the threshold")

	before = c.Status.DeepCopy()
	run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.02, "0.02")}, t0.Add(8*time.Minute))
	g.Expect(Compare(before, &c.Status)).To(Equal(Material), "the check now fails")
	before = c.Status.DeepCopy()
	run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.03, "0.03")}, t0.Add(9*time.Minute))
	g.Expect(Compare(before, &c.Status)).To(Equal(Detail), "still failing, another value: the next action names no value")
}

func TestVerifyingWithClearTriggersChangesOnlyTimingBetweenPhaseTransitions(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	steady := Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}
	// T+5m opens five minutes after availability (t0); until then only the trigger is
	// measured.
	run(c, steady, t0.Add(30*time.Second))
	for i := 2; i <= 9; i++ {
		before := c.Status.DeepCopy()
		run(c, steady, t0.Add(time.Duration(i)*30*time.Second))
		g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
		g.Expect(Compare(before, &c.Status)).To(Equal(Timing), "trigger measurement %d", i)
	}
	before := c.Status.DeepCopy()
	run(c, steady, t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
	g.Expect(Compare(before, &c.Status)).To(Equal(Material))
}

func TestAPrometheusOutageIsWrittenWhenItStartsAndWhenItDegrades(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.001, "0.001")}, t0)
	var grades []Change
	for i := 1; i <= 6; i++ {
		before := c.Status.DeepCopy()
		run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: promDown}, t0.Add(time.Duration(i)*30*time.Second))
		grades = append(grades, Compare(before, &c.Status))
	}
	// The first error changes the outcome; the fourth reaches the default limit
	// (Degraded); the errors in between and after only count.
	g.Expect(grades).To(Equal([]Change{Material, Detail, Detail, Material, Detail, Detail}))
}

func TestLastRecordedIsTheNewestMeasurementTime(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	g.Expect(LastRecorded(&deployv1alpha1.DeploymentChecklistStatus{})).To(BeZero())
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(90*time.Second))
	g.Expect(LastRecorded(&c.Status)).To(Equal(t0.Add(90 * time.Second)))
}
