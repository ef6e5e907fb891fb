package controller

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/test/testbed"
)

func getDaemonSet(g Gomega, ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	var cur appsv1.DaemonSet
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(ds), &cur)).To(Succeed())
	return &cur
}

// waitDaemonSet waits until the DaemonSet's pod on every node runs image.
func waitDaemonSet(t *testing.T, ds *appsv1.DaemonSet, image string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(testbed.DaemonSetRolledOut(getDaemonSet(g, ds), image)).To(Succeed())
		images := podImages(g, ds.Namespace, ds.Name)
		g.Expect(images).To(HaveLen(testbed.DaemonSetNodes))
		g.Expect(images).To(HaveEach(image))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

// TestADaemonSetIsHeldWithOnDeleteReleasedWithItsOwnersRollingUpdateAndRolledBack: the
// checklist holds a node agent by switching it to OnDelete, keeping the owner's
// RollingUpdate (maxUnavailable 2) aside; a new image pushed rolls onto no node; the
// sign-off puts the owner's strategy back, maxUnavailable and all, and every node's pod
// rolls to v2; a breach restores v1 on every node.
func TestADaemonSetIsHeldWithOnDeleteReleasedWithItsOwnersRollingUpdateAndRolledBack(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	spec := testbed.DaemonSet(ns, "agent", "agent:v1")
	spec.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntVal = 2
	g.Expect(bed.Client.Create(context.Background(), spec)).To(Succeed())
	ds := spec
	waitDaemonSet(t, ds, "agent:v1")
	owner := getDaemonSet(g, ds).Spec.UpdateStrategy

	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := newChecklist(ns, withLongVerification)
	c.Name = "agent-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDaemonSet, Name: "agent"}
	create(t, c)
	g.Eventually(func(g Gomega) {
		cur := getDaemonSet(g, ds)
		g.Expect(cur.Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType))
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByChecklist(c.Name)))
		var kept appsv1.DaemonSetUpdateStrategy
		g.Expect(json.Unmarshal([]byte(cur.Annotations[deployv1alpha1.OwnerStrategyAnnotation]), &kept)).To(Succeed())
		g.Expect(kept).To(Equal(owner))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	NewWithT(t).Eventually(func(g Gomega) error {
		cur := getDaemonSet(g, ds)
		cur.Spec.Template.Spec.Containers[0].Image = "agent:v2"
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getChecklist(g, c).TargetStatusOf("agent").CandidateImages).To(Equal([]string{"agent:v2"}))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) []string { return podImages(g, ns, "agent") }, 2*time.Second, 200*time.Millisecond).
		Should(HaveEach("agent:v1"), "no node's pod takes the held template")

	approve(t, c, "deployment-lead", "alice for v2")
	waitDaemonSet(t, ds, "agent:v2")
	released := getDaemonSet(g, ds)
	g.Expect(released.Spec.UpdateStrategy).To(Equal(owner), "the owner's strategy is back, maxUnavailable kept")
	g.Expect(released.Annotations).NotTo(HaveKey(deployv1alpha1.OwnerStrategyAnnotation))
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)

	metrics.set(errorQuery, 0.07)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(rolled.Status.Rollback.Reason).To(Equal(checklist.ReasonTriggerFired))
	waitDaemonSet(t, ds, "agent:v1")
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy).To(Equal(owner))
}
