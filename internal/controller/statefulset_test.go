package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/test/testbed"
)

// The checklist gates a StatefulSet with its own update strategy: held at the
// partition, released by the owner's partition put back, restored from its
// ControllerRevision.

func statefulSet(t *testing.T, s *appsv1.StatefulSet, image string) *appsv1.StatefulSet {
	t.Helper()
	NewWithT(t).Expect(bed.Client.Create(context.Background(), s)).To(Succeed())
	waitStatefulSet(t, s, image)
	return s
}

func getStatefulSet(g Gomega, s *appsv1.StatefulSet) *appsv1.StatefulSet {
	var cur appsv1.StatefulSet
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(s), &cur)).To(Succeed())
	return &cur
}

// waitStatefulSet waits until every pod of the StatefulSet runs image.
func waitStatefulSet(t *testing.T, s *appsv1.StatefulSet, image string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(testbed.StatefulSetRolledOut(getStatefulSet(g, s), image)).To(Succeed())
		g.Expect(podImages(g, s.Namespace, s.Name)).To(HaveEach(image))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

// podImages lists the image of every pod of the app (running or going).
func podImages(g Gomega, ns, app string) []string {
	var pods corev1.PodList
	g.Expect(bed.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": app})).To(Succeed())
	out := make([]string, 0, len(pods.Items))
	for _, p := range pods.Items {
		out = append(out, p.Spec.Containers[0].Image)
	}
	return out
}

func partitionOf(s *appsv1.StatefulSet) int32 {
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return *ru.Partition
	}
	return 0
}

func setStatefulSetImage(t *testing.T, s *appsv1.StatefulSet, image string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) error {
		cur := getStatefulSet(g, s)
		cur.Spec.Template.Spec.Containers[0].Image = image
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

func statefulSetRelease(ns string) *deployv1alpha1.DeploymentChecklist {
	c := newChecklist(ns, withLongVerification)
	c.Name = "db-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	return c
}

// TestAStatefulSetIsHeldAtItsPartitionReleasedBySignOffAndRolledBackOnABreach: the
// checklist holds the StatefulSet at its partition before the new image arrives; the
// image is pushed and no pod takes it; the sign-off puts the owner's partition back and
// every pod rolls to v2; the error rate breaches and the StatefulSet is restored to
// its pre-deploy template, every pod back on v1.
func TestAStatefulSetIsHeldAtItsPartitionReleasedBySignOffAndRolledBackOnABreach(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	s := statefulSet(t, testbed.StatefulSet(ns, "db", "db:v1", 3), "db:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := statefulSetRelease(ns)
	create(t, c)

	g.Eventually(func(g Gomega) {
		cur := getStatefulSet(g, s)
		g.Expect(partitionOf(cur)).To(Equal(deployv1alpha1.HoldPartition))
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByChecklist(c.Name)))
		g.Expect(cur.Annotations).To(HaveKey(deployv1alpha1.OwnerPartitionAnnotation))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	held := getChecklist(g, c)
	g.Expect(held.TargetStatusOf("db").PreDeployImages).To(Equal([]string{"db:v1"}))

	setStatefulSetImage(t, s, "db:v2")
	g.Eventually(func(g Gomega) {
		g.Expect(getChecklist(g, c).TargetStatusOf("db").CandidateImages).To(Equal([]string{"db:v2"}))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) []string { return podImages(g, ns, "db") }, 2*time.Second, 200*time.Millisecond).
		Should(HaveEach("db:v1"), "no pod takes the held template")

	approve(t, c, "deployment-lead", "alice for v2")
	waitStatefulSet(t, s, "db:v2")
	released := getStatefulSet(g, s)
	g.Expect(partitionOf(released)).To(BeZero(), "the owner's partition is back")
	g.Expect(released.Annotations).NotTo(HaveKey(deployv1alpha1.OwnerPartitionAnnotation))
	g.Expect(released.Annotations).NotTo(HaveKey(deployv1alpha1.HeldByAnnotation))
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)

	metrics.set(errorQuery, 0.07)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(rolled.Status.Rollback.Reason).To(Equal(checklist.ReasonTriggerFired))
	waitStatefulSet(t, s, "db:v1")
	g.Eventually(func(g Gomega) {
		g.Expect(getChecklist(g, c).TargetStatusOf("db").RestoredAt).NotTo(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(partitionOf(getStatefulSet(g, s))).To(BeZero())
}

// TestAStatefulSetWithOnDeleteIsReportedNotGateableAndLeftUntouched: tminus cannot hold
// or roll back a StatefulSet whose pods take a new template only when deleted; the
// checklist says so in its Ready condition and never writes to it.
func TestAStatefulSetWithOnDeleteIsReportedNotGateableAndLeftUntouched(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	spec := testbed.StatefulSet(ns, "db", "db:v1", 2)
	spec.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	s := statefulSet(t, spec, "db:v1")
	before := getStatefulSet(g, s)
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := statefulSetRelease(ns)
	create(t, c)

	g.Eventually(func(g Gomega) {
		ready := meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, checklist.CondReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(checklist.ReasonTargetNotGateable))
		g.Expect(ready.Message).To(ContainSubstring("StatefulSet db uses the update strategy OnDelete"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	approve(t, c, "deployment-lead", "alice for v2")
	g.Consistently(func(g Gomega) {
		cur := getStatefulSet(g, s)
		g.Expect(cur.Generation).To(Equal(before.Generation))
		g.Expect(cur.Annotations).To(Equal(before.Annotations))
		g.Expect(cur.Labels).To(Equal(before.Labels))
		g.Expect(getChecklist(g, c).Status.Targets).To(BeEmpty(), "nothing captured")
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
}
