package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/test/testbed"
)

// A release in steps exposes a StatefulSet's new template one pod first, judged on
// that pod, then every pod; a failure at the first step rolls back that pod only.

// dbPod is what a test follows of a pod of StatefulSet db: which pod it is (a restart
// makes a new uid), its image and its revision.
type dbPod struct {
	UID      types.UID
	Image    string
	Revision string
}

func dbPods(g Gomega, ns string) map[string]dbPod {
	var pods corev1.PodList
	g.Expect(bed.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": "db"})).To(Succeed())
	out := map[string]dbPod{}
	for _, p := range pods.Items {
		out[p.Name] = dbPod{UID: p.UID, Image: p.Spec.Containers[0].Image, Revision: p.Labels[appsv1.ControllerRevisionHashLabelKey]}
	}
	return out
}

// inSteps releases db one pod first, judged by stepPhase (at stepAt), then every pod.
func inSteps(stepPhase, stepAt string) option {
	return func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Phases = append(c.Spec.Phases, deployv1alpha1.PhaseSpec{Name: stepPhase, At: stepAt, Checks: []deployv1alpha1.CheckSpec{
			{Name: "errors", Metric: "error-rate", Below: new("0.01")},
		}})
		c.Spec.Release = &deployv1alpha1.ReleaseSpec{Steps: []deployv1alpha1.ReleaseStep{{Pods: intstr.FromInt32(1), Phase: stepPhase}}}
	}
}

func stepRelease(ns string, opts ...option) *deployv1alpha1.DeploymentChecklist {
	c := newChecklist(ns, opts...)
	c.Name = "db-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	return c
}

// TestAStepReleaseWhoseFirstStepBreachesRollsBackTheOnePodItUpdated: db runs three
// pods of v1; the release exposes v2 on one pod (db-2, the highest ordinal) and its
// phase waits; the error rate breaches during that step; the template is restored and
// db-2 alone rolls back: db-0 and db-1 are the pods they were before the release.
func TestAStepReleaseWhoseFirstStepBreachesRollsBackTheOnePodItUpdated(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	s := statefulSet(t, testbed.StatefulSet(ns, "db", "db:v1", 3), "db:v1")
	before := dbPods(g, ns)
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := stepRelease(ns, withLongVerification, inSteps("T+5m", "5m"))
	create(t, c)
	g.Eventually(func(g Gomega) {
		g.Expect(partitionOf(getStatefulSet(g, s))).To(Equal(deployv1alpha1.HoldPartition))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	setStatefulSetImage(t, s, "db:v2")
	approve(t, c, "deployment-lead", "alice for v2")
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.TargetStatusOf("db").StepReadyAt).NotTo(BeNil(), "the first step's pod runs v2, ready")
		g.Expect(cur.Status.NextAction).To(ContainSubstring("step 1 of 2 (1 of 3 pods on the new revision)"))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	step := dbPods(g, ns)
	g.Expect(step["db-2"].Image).To(Equal("db:v2"))
	g.Expect(step["db-0"]).To(Equal(before["db-0"]), "db-0 is not in the step")
	g.Expect(step["db-1"]).To(Equal(before["db-1"]), "db-1 is not in the step")
	g.Expect(getChecklist(g, c).Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(getStatefulSet(g, s).Annotations).To(HaveKeyWithValue(deployv1alpha1.StepAnnotation, "1 of 2"))

	metrics.set(errorQuery, 0.07)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(rolled.Status.Rollback.Reason).To(Equal(checklist.ReasonTriggerFired))
	g.Expect(rolled.Status.Rollback.Message).To(HavePrefix("step 1 of 2 (1 of 3 pods on the new revision): "))
	waitStatefulSet(t, s, "db:v1")
	after := dbPods(g, ns)
	g.Expect(after["db-0"]).To(Equal(before["db-0"]), "db-0 never restarted")
	g.Expect(after["db-1"]).To(Equal(before["db-1"]), "db-1 never restarted")
	g.Expect(after["db-2"].UID).NotTo(Equal(step["db-2"].UID), "db-2 rolled back")
	g.Expect(after["db-2"].Revision).To(Equal(before["db-2"].Revision), "db-2 is back on the pre-deploy revision")
	restored := getStatefulSet(g, s)
	g.Expect(partitionOf(restored)).To(BeZero(), "the owner's partition is back")
	g.Expect(restored.Annotations).NotTo(HaveKey(deployv1alpha1.StepAnnotation))
	g.Expect(restored.Annotations).NotTo(HaveKey(deployv1alpha1.OwnerPartitionAnnotation))
	g.Eventually(func(g Gomega) {
		g.Expect(getChecklist(g, c).TargetStatusOf("db").RestoredAt).NotTo(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
}

// TestAStepReleaseWhoseStepsPassEndsSucceededWithEveryPodOnTheNewRevision: the first
// step's pod passes its phase, the last step releases every pod, and the phase no step
// names judges the whole release.
func TestAStepReleaseWhoseStepsPassEndsSucceededWithEveryPodOnTheNewRevision(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	s := statefulSet(t, testbed.StatefulSet(ns, "db", "db:v1", 3), "db:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := stepRelease(ns, inSteps("T+1s", "1s"))
	create(t, c)
	g.Eventually(func(g Gomega) {
		g.Expect(partitionOf(getStatefulSet(g, s))).To(Equal(deployv1alpha1.HoldPartition))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	setStatefulSetImage(t, s, "db:v2")
	approve(t, c, "deployment-lead", "alice for v2")

	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.TargetStatusOf("db").Step).To(Equal(int32(2)), "the last step released every pod")
	for _, ph := range done.Status.Phases {
		g.Expect(ph.State).To(Equal(deployv1alpha1.PhaseStatePassed), ph.Name)
	}
	waitStatefulSet(t, s, "db:v2")
	cur := getStatefulSet(g, s)
	g.Expect(partitionOf(cur)).To(BeZero())
	g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.StepAnnotation))
	g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.OwnerPartitionAnnotation))
}

// TestAStatefulSetWhoseOwnerKeepsAPartitionIsVerifiedOnceThePodsAboveItRollOut: the
// owner keeps pod 0 on the old revision (partition 1); the release rolls db-1 and db-2
// and the checklist goes on to verify and succeed, db-0 untouched.
func TestAStatefulSetWhoseOwnerKeepsAPartitionIsVerifiedOnceThePodsAboveItRollOut(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	spec := testbed.StatefulSet(ns, "db", "db:v1", 3)
	spec.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(int32(1))}
	s := statefulSet(t, spec, "db:v1")
	before := dbPods(g, ns)
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := stepRelease(ns)
	create(t, c)
	g.Eventually(func(g Gomega) {
		g.Expect(partitionOf(getStatefulSet(g, s))).To(Equal(deployv1alpha1.HoldPartition))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	setStatefulSetImage(t, s, "db:v2")
	approve(t, c, "deployment-lead", "alice for v2")

	waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	after := dbPods(g, ns)
	g.Expect(after["db-0"]).To(Equal(before["db-0"]), "the owner's partition keeps db-0")
	g.Expect(after["db-1"].Image).To(Equal("db:v2"))
	g.Expect(after["db-2"].Image).To(Equal("db:v2"))
	g.Expect(partitionOf(getStatefulSet(g, s))).To(Equal(int32(1)), "the owner's partition is back")
}
