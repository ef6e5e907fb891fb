package webhook_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/controller"
	"github.com/tminus-dev/tminus/test/testbed"
)

// gatedDaemonSetInGit is the node agent agent as Git has it: labelled gated, with the
// owner's RollingUpdate strategy (maxUnavailable 1).
func gatedDaemonSetInGit(ns, image string) *appsv1.DaemonSet {
	ds := testbed.DaemonSet(ns, "agent", image)
	ds.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	return ds
}

// daemonSetRelease is the checklist of the node agent's release rev.
func daemonSetRelease(ns, rev string) *deployv1alpha1.DeploymentChecklist {
	c := release(ns, rev, time.Hour)
	c.Name = "agent-" + rev
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDaemonSet, Name: "agent"}
	return c
}

// agentPods lists the node agent's pods.
func agentPods(g Gomega, ns string) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(bed.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": "agent"})).To(Succeed())
	return pods.Items
}

// TestAPodRecreatedOnAHeldDaemonSetLetsNoSelfHealReleaseTheHeldImage: Argo CD applies
// agent:v2 to a gated node agent on v1, with no checklist, and it is held with OnDelete.
// An SRE deletes one node's pod: the DaemonSet controller recreates it on the held v2
// (OnDelete cannot prevent that), and a Warning event on the DaemonSet says so, with
// the command that lists those pods. Argo CD's self-heal then applies the manifest from
// Git, the owner's RollingUpdate in it: the write is stored OnDelete again, and the
// other nodes' pods stay on v1 (a template is not counted as run because a pod started
// on it under tminus's hold). The checklist's sign-off still releases v2 to every node.
func TestAPodRecreatedOnAHeldDaemonSetLetsNoSelfHealReleaseTheHeldImage(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	ds := gatedDaemonSetInGit(ns, "agent:v1")
	g.Expect(apply(ds)).To(Succeed())
	waitDaemonSetRolledOut(t, ds, "agent:v1")
	g.Expect(apply(gatedDaemonSetInGit(ns, "agent:v2"))).To(Succeed())
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType))

	deleted := agentPods(g, ns)[0]
	g.Expect(bed.Client.Delete(context.Background(), &deleted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(statefulSetPodImages(g, ns, "agent")).To(ConsistOf("agent:v1", "agent:v1", "agent:v2"),
			"the recreated pod runs the held template")
		g.Expect(getDaemonSet(g, ds).Status.UpdatedNumberScheduled).To(Equal(int32(1)))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(bed.Client.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, e := range events.Items {
			if e.Reason == controller.ReasonHeldTemplateRunning && e.Regarding.Kind == "DaemonSet" && e.Regarding.Name == "agent" {
				g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
				notes = append(notes, e.Note)
			}
		}
		g.Expect(notes).To(ContainElement(And(
			ContainSubstring("1 pod(s) of DaemonSet agent run the held pod template (agent:v2)"),
			ContainSubstring("OnDelete cannot keep a new pod on agent:v1"),
			ContainSubstring("kubectl get pods -n "+ns+" -l controller-revision-hash="))))
	}, time.Minute, 200*time.Millisecond).Should(Succeed(), "kubectl describe daemonset shows the pod on the held template")

	g.Expect(apply(gatedDaemonSetInGit(ns, "agent:v2"))).To(Succeed(), "the self-heal is admitted, held")
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType),
		"the owner's RollingUpdate does not release the held template")
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "agent") }, 3*time.Second, 200*time.Millisecond).
		Should(ConsistOf("agent:v1", "agent:v1", "agent:v2"), "nothing rolls")

	c := daemonSetRelease(ns, "v2")
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitDaemonSetRolledOut(t, ds, "agent:v2")
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy.Type).To(Equal(appsv1.RollingUpdateDaemonSetStrategyType))
}

// TestADaemonSetHeldTwiceBeforeItsChecklistRollsBackToWhatItsPodsRan: Argo CD applies
// agent:v2, then agent:v3, to a gated node agent on v1 before any checklist: both are
// held and every node's pod stays on v1. The checklist of v3 is signed off and releases
// it to every node; the error rate breaches the rollback trigger, and every node's pod
// is put back on v1, the DaemonSet's template v1's: not v2, the revision before v3,
// which never ran.
func TestADaemonSetHeldTwiceBeforeItsChecklistRollsBackToWhatItsPodsRan(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	ds := gatedDaemonSetInGit(ns, "agent:v1")
	g.Expect(apply(ds)).To(Succeed())
	waitDaemonSetRolledOut(t, ds, "agent:v1")

	g.Expect(apply(gatedDaemonSetInGit(ns, "agent:v2"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		// The DaemonSet controller keeps a revision of the held v2 before v3 comes.
		cur := getDaemonSet(g, ds)
		g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(apply(gatedDaemonSetInGit(ns, "agent:v3"))).To(Succeed())
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType))
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "agent") }, 2*time.Second, 200*time.Millisecond).
		Should(And(HaveLen(testbed.DaemonSetNodes), HaveEach("agent:v1")), "no node's pod takes a held template")

	c := daemonSetRelease(ns, "v3")
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitDaemonSetRolledOut(t, ds, "agent:v3")

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitDaemonSetRolledOut(t, ds, "agent:v1")
	g.Expect(getDaemonSet(g, ds).Spec.Template.Spec.Containers[0].Image).To(Equal("agent:v1"))
}
