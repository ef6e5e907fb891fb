package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func TestAStepsPodsAreACountOrAPercentageOfReplicasRoundedUpAtLeastOne(t *testing.T) {
	g := NewWithT(t)
	for _, c := range []struct {
		pods     intstr.IntOrString
		replicas int32
		want     int32
	}{
		{intstr.FromInt32(1), 3, 1},
		{intstr.FromInt32(5), 3, 3},
		{intstr.FromString("50%"), 3, 2},
		{intstr.FromString("50%"), 4, 2},
		{intstr.FromString("1%"), 3, 1},
		{intstr.FromString("100%"), 3, 3},
		{intstr.FromInt32(1), 0, 0},
	} {
		g.Expect(StepPods(c.pods, c.replicas)).To(Equal(c.want), "%s of %d", c.pods.String(), c.replicas)
	}
	g.Expect(StepPartition(3, 1, 0)).To(Equal(int32(2)), "the highest ordinal takes the template")
	g.Expect(StepPartition(3, 3, 0)).To(Equal(int32(0)))
	g.Expect(StepPartition(5, 4, 2)).To(Equal(int32(2)), "never below the owner's partition")
}

// inSteps: StatefulSet db of three pods, released one pod first, judged by T+1m, then
// every pod; T+5m judges the whole release after the last step.
func inSteps(c *deployv1alpha1.DeploymentChecklist) {
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	c.Spec.Phases = append(c.Spec.Phases[:1], deployv1alpha1.PhaseSpec{Name: "T+1m", At: "1m", Checks: []deployv1alpha1.CheckSpec{
		{Name: "errors", Metric: "error-rate", Below: new("0.01")},
	}}, c.Spec.Phases[1])
	c.Spec.Release = &deployv1alpha1.ReleaseSpec{Steps: []deployv1alpha1.ReleaseStep{{Pods: intstr.FromInt32(1), Phase: "T+1m"}}}
}

// heldDB is StatefulSet db held at the hold partition with v2 in its template: the
// update revision is v2's, no pod runs it.
func heldDB() TargetState {
	t := heldTarget()
	t.Partition, t.UpdateHash = deployv1alpha1.HoldPartition, "hash-v2"
	t.PodTemplateHashes = map[string]string{"hash-v1": "db-1", "hash-v2": "db-2"}
	return t
}

// dbOnPods is db released with the partition at replicas - pods, those pods updated
// and every pod ready.
func dbOnPods(pods int32) TargetState {
	t := heldDB()
	t.Paused, t.HeldBy, t.Generation, t.ObservedGeneration = false, "", 3, 3
	t.Partition, t.UpdatedReplicas, t.Revision = 3-pods, pods, "2"
	t.ReleasedRevisions, t.TemplateFirstRan = []string{"v2"}, t0
	t.Settled, t.Serving, t.ServingHash = false, nil, ""
	if pods == 3 {
		t.Settled, t.Serving, t.ServingHash, t.ServingRevision, t.ServingPodTemplateHash = true, template("checkout:v2"), "hash-v2", "2", "db-2"
	}
	return t
}

func TestAReleaseInStepsJudgesItsFirstPodThenReleasesEveryPodAndSucceeds(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(inSteps)
	ok := errorRate(0.001, "0.001")
	d := run(c, Observations{Targets: []TargetState{heldDB()}, Approvals: approved("deployment-lead"), Metrics: ok}, t0.Add(-time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(d.Actions).To(HaveLen(1))
	g.Expect(d.Actions[0]).To(releaseOf(ActionRelease, 1, "1 of 2"))
	g.Expect(c.Status.Targets[0].Step).To(Equal(int32(1)))

	run(c, Observations{Targets: []TargetState{dbOnPods(0)}}, t0)
	g.Expect(c.Status.NextAction).To(ContainSubstring("step 1 of 2: 0 of 3 pods on the new revision"))
	g.Expect(NeedsFor(c, t0).Metrics).To(ContainElement("error-rate"), "the triggers watch every step")

	d = run(c, Observations{Targets: []TargetState{dbOnPods(1)}}, t0.Add(30*time.Second))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonStepReady))
	g.Expect(c.Status.Targets[0].StepReadyAt.Time).To(Equal(t0.Add(30 * time.Second)))
	g.Expect(c.Status.Targets[0].ReleasedPodTemplateHash).To(Equal("db-2"), "{{podTemplateHash}} is the update revision's")
	g.Expect(c.Status.NextAction).To(ContainSubstring("T+1m opens at"))

	open := t0.Add(90 * time.Second)
	g.Expect(NeedsFor(c, open).Metrics).To(Equal([]string{"error-rate"}))
	d = run(c, Observations{Targets: []TargetState{dbOnPods(1)}, Metrics: ok}, open)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(d.Actions).To(HaveLen(1))
	g.Expect(d.Actions[0]).To(releaseOf(ActionRelease, 0, ""))
	g.Expect(reasons(d.Events)).To(ContainElements(ReasonPhasePassed, ReasonStepReleased))
	g.Expect(c.Status.Targets[0].Step).To(Equal(int32(2)))

	d = run(c, Observations{Targets: []TargetState{dbOnPods(1)}}, open.Add(time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying), "the partition of the last step is not written yet")
	g.Expect(d.Actions).To(HaveLen(1), "the last step's write is made again until it is seen")
	g.Expect(d.Actions[0]).To(releaseOf(ActionRelease, 0, ""))
	all := dbOnPods(3)
	all.Partition = 0
	run(c, Observations{Targets: []TargetState{all}}, t0.Add(2*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	run(c, Observations{Targets: []TargetState{all}, Metrics: ok}, t0.Add(7*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
}

func TestATriggerFiringAtTheFirstStepRollsBackNamingTheStep(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(inSteps, withTriggerFor(""))
	run(c, Observations{Targets: []TargetState{heldDB()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
		t0.Add(-time.Minute))
	run(c, Observations{Targets: []TargetState{dbOnPods(1)}}, t0)
	d := run(c, Observations{Targets: []TargetState{dbOnPods(1)}, Metrics: errorRate(0.07, "0.07")}, t0.Add(30*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Message).To(HavePrefix("step 1 of 2 (1 of 3 pods on the new revision): "))
	g.Expect(kinds(d.Actions)).To(ContainElement(ActionRestore))
}

func TestAStatefulSetWhoseOwnerKeepsAPartitionRollsOutWhenThePodsAboveItRunTheRelease(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	})
	held := heldDB()
	held.OwnerPartition = 1
	run(c, Observations{Targets: []TargetState{held}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
		t0.Add(-time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	released := dbOnPods(2)
	released.OwnerPartition, released.Partition = 1, 1
	run(c, Observations{Targets: []TargetState{released}}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying), "pods 1 and 2 run the release; pod 0 is the owner's")
}

// releaseOf matches a release action's kind, pods and step.
func releaseOf(kind ActionKind, pods int32, step string) OmegaMatcher {
	return And(WithTransform(func(a Action) ActionKind { return a.Kind }, Equal(kind)),
		WithTransform(func(a Action) int32 { return a.Pods }, Equal(pods)),
		WithTransform(func(a Action) string { return a.Step }, Equal(step)))
}

func TestStepsWhosePercentagesDecreaseAreAnInvalidSpecNamingTheStep(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(inSteps, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Release.Steps = []deployv1alpha1.ReleaseStep{{Pods: intstr.FromString("50%"), Phase: "T+1m"}, {Pods: intstr.FromString("10%"), Phase: "T+5m"}}
	})
	run(c, Observations{Targets: []TargetState{heldDB()}}, t0)
	g.Expect(c.Status.Conditions).To(ContainElement(And(
		WithTransform(func(c metav1.Condition) string { return c.Reason }, Equal(ReasonInvalidSpec)),
		WithTransform(func(c metav1.Condition) string { return c.Message }, ContainSubstring("spec.release.steps[1].pods: 10% does not increase")))))
}
