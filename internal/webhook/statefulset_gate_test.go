package webhook_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/test/testbed"
)

func getStatefulSet(g Gomega, s *appsv1.StatefulSet) *appsv1.StatefulSet {
	var cur appsv1.StatefulSet
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(s), &cur)).To(Succeed())
	return &cur
}

// statefulSetPodImages lists the image of every pod of the app.
func statefulSetPodImages(g Gomega, ns, app string) []string {
	var pods corev1.PodList
	g.Expect(bed.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": app})).To(Succeed())
	out := make([]string, 0, len(pods.Items))
	for _, p := range pods.Items {
		out = append(out, p.Spec.Containers[0].Image)
	}
	return out
}

// gatedStatefulSet creates the StatefulSet db running db:v1 on replicas pods and labels
// it gated once it rolled out, as an existing database would be.
func gatedStatefulSet(t *testing.T, ns string, replicas int32) *appsv1.StatefulSet {
	t.Helper()
	g := NewWithT(t)
	s := testbed.StatefulSet(ns, "db", "db:v1", replicas)
	g.Expect(bed.Client.Create(context.Background(), s)).To(Succeed())
	waitStatefulSetRolledOut(t, s, "db:v1", int(replicas))
	g.Eventually(func(g Gomega) error {
		cur := getStatefulSet(g, s)
		cur.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	return s
}

func waitStatefulSetRolledOut(t *testing.T, s *appsv1.StatefulSet, image string, replicas int) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(testbed.StatefulSetRolledOut(getStatefulSet(g, s), image)).To(Succeed())
		images := statefulSetPodImages(g, s.Namespace, s.Name)
		g.Expect(images).To(HaveLen(replicas))
		g.Expect(images).To(HaveEach(image))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

// TestAGatedStatefulSetsNewImageIsHeldInTheWriteThatMakesItAndItsRollbackStaysRefused:
// Argo CD applies a new image to a StatefulSet labelled gated in Git, with no checklist
// yet: the API server stores it at tminus's hold partition in that same write, and no
// pod takes it. Scaling the held StatefulSet goes through on the old image. The
// checklist comes, is signed off and releases it; a breach rolls it back, and the
// self-heal re-applying the rolled-back image is refused, naming the StatefulSet.
func TestAGatedStatefulSetsNewImageIsHeldInTheWriteThatMakesItAndItsRollbackStaysRefused(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	s := gatedStatefulSet(t, ns, 3)

	v2 := testbed.StatefulSet(ns, "db", "db:v2", 3)
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	stored := getStatefulSet(g, s)
	g.Expect(stored.Spec.UpdateStrategy.RollingUpdate).NotTo(BeNil())
	g.Expect(stored.Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(Equal(deployv1alpha1.HoldPartition)),
		"held in the same write that changed the template")
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
	g.Expect(stored.Annotations).To(HaveKey(deployv1alpha1.OwnerPartitionAnnotation))
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, 2*time.Second, 200*time.Millisecond).
		Should(HaveEach("db:v1"), "no pod takes the held template")

	// An HPA-style scale of the held StatefulSet: not a release, and the new pod runs
	// what serves.
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 4}}
	g.Expect(bed.Client.SubResource("scale").Update(context.Background(), getStatefulSet(g, s), client.WithSubResourceBody(scale))).To(Succeed())
	g.Eventually(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, time.Minute, 100*time.Millisecond).
		Should(And(HaveLen(4), HaveEach("db:v1")))

	c := release(ns, "v2", time.Hour)
	c.Name = "db-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	// A second release of the same StatefulSet, committed a moment later, is refused
	// naming the workload by its kind and the checklist that holds it.
	second := release(ns, "v3", time.Hour)
	second.Name = "db-v3"
	second.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	err := bed.Client.Create(context.Background(), second)
	g.Expect(err).To(MatchError(ContainSubstring("StatefulSet db already has a live checklist, db-v2")))
	g.Expect(err).To(MatchError(ContainSubstring("one live checklist per StatefulSet")))
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitStatefulSetRolledOut(t, s, "db:v2", 4)

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitStatefulSetRolledOut(t, s, "db:v1", 4)

	bad := testbed.StatefulSet(ns, "db", "db:v2", 4)
	bad.Labels = v2.Labels
	for write := 1; write <= 10; write++ {
		err := apply(bad)
		g.Expect(err).To(HaveOccurred(), "self-heal write %d", write)
		g.Expect(err.Error()).To(ContainSubstring("StatefulSet " + ns + "/db: this pod template (db:v2) was rolled back by checklist db-v2"))
		g.Expect(statefulSetPodImages(g, ns, "db")).To(HaveEach("db:v1"), "after write %d", write)
	}
}

// TestAGatedDaemonSetsNewImageIsHeldWithOnDeleteInTheWriteThatMakesIt: Argo CD applies
// a new image to a node agent labelled gated in Git, with no checklist: the API server
// stores it with the OnDelete strategy in that same write, the owner's RollingUpdate
// kept aside, and no node's pod takes it.
func TestAGatedDaemonSetsNewImageIsHeldWithOnDeleteInTheWriteThatMakesIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	ds := testbed.DaemonSet(ns, "agent", "agent:v1")
	g.Expect(bed.Client.Create(context.Background(), ds)).To(Succeed())
	get := func(g Gomega) *appsv1.DaemonSet {
		var cur appsv1.DaemonSet
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(ds), &cur)).To(Succeed())
		return &cur
	}
	g.Eventually(func(g Gomega) error { return testbed.DaemonSetRolledOut(get(g), "agent:v1") }, 2*time.Minute, 100*time.Millisecond).
		Should(Succeed())

	v2 := testbed.DaemonSet(ns, "agent", "agent:v2")
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	stored := get(g)
	g.Expect(stored.Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType), "held in the same write")
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
	g.Expect(stored.Annotations[deployv1alpha1.OwnerStrategyAnnotation]).To(ContainSubstring(`"maxUnavailable":1`))
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "agent") }, 2*time.Second, 200*time.Millisecond).
		Should(And(HaveLen(testbed.DaemonSetNodes), HaveEach("agent:v1")), "no node's pod takes the held template")
}

func getDaemonSet(g Gomega, ds *appsv1.DaemonSet) *appsv1.DaemonSet {
	var cur appsv1.DaemonSet
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(ds), &cur)).To(Succeed())
	return &cur
}

// waitDaemonSetRolledOut waits for ds to run image on every node it runs on, each node's
// pod included.
func waitDaemonSetRolledOut(t *testing.T, ds *appsv1.DaemonSet, image string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(testbed.DaemonSetRolledOut(getDaemonSet(g, ds), image)).To(Succeed())
		g.Expect(statefulSetPodImages(g, ds.Namespace, ds.Name)).To(And(HaveLen(testbed.DaemonSetNodes), HaveEach(image)))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

// TestAGatedDaemonSetsReleaseRolledBackByABreachStaysOnTheOldImageThroughTheSelfHeal:
// the order of events a user produces with a node agent labelled gated in Git. Argo CD
// applies a new image and it is held on every node; the checklist comes, is signed off
// and releases it to every node's pod; the error rate breaches the rollback trigger and
// every node's pod is put back on the old image; Argo CD's self-heal re-applying the
// rolled-back image is refused by the API server, naming the DaemonSet and the
// checklist, ten writes in a row, and no node's pod leaves the old image.
func TestAGatedDaemonSetsReleaseRolledBackByABreachStaysOnTheOldImageThroughTheSelfHeal(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	ds := testbed.DaemonSet(ns, "agent", "agent:v1")
	g.Expect(bed.Client.Create(context.Background(), ds)).To(Succeed())
	waitDaemonSetRolledOut(t, ds, "agent:v1")

	v2 := testbed.DaemonSet(ns, "agent", "agent:v2")
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType),
		"held in the same write that changed the template")
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "agent") }, 2*time.Second, 200*time.Millisecond).
		Should(And(HaveLen(testbed.DaemonSetNodes), HaveEach("agent:v1")), "no node's pod takes the held template")

	c := release(ns, "v2", time.Hour)
	c.Name = "agent-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDaemonSet, Name: "agent"}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitDaemonSetRolledOut(t, ds, "agent:v2")

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitDaemonSetRolledOut(t, ds, "agent:v1")

	for write := 1; write <= 10; write++ {
		err := apply(v2)
		g.Expect(err).To(HaveOccurred(), "self-heal write %d", write)
		g.Expect(err.Error()).To(ContainSubstring("DaemonSet " + ns + "/agent: this pod template (agent:v2) was rolled back by checklist agent-v2"))
		g.Expect(getDaemonSet(g, ds).Spec.Template.Spec.Containers[0].Image).To(Equal("agent:v1"), "after write %d", write)
		g.Expect(statefulSetPodImages(g, ns, "agent")).To(And(HaveLen(testbed.DaemonSetNodes), HaveEach("agent:v1")),
			"after write %d", write)
	}
}

// TestASignOffOnAStatefulSetsReleaseIsBoundToTheTemplateTheStatefulSetHeld: the approval
// webhook records, with a sign-off, the template the StatefulSet held when it was given
// (read as a StatefulSet, not looked for as a Deployment and recorded as none), so an
// image pushed after it is not what was signed for and the sign-off does not count for it.
func TestASignOffOnAStatefulSetsReleaseIsBoundToTheTemplateTheStatefulSetHeld(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	s := testbed.StatefulSet(ns, "db", "db:v1", 2)
	g.Expect(bed.Client.Create(context.Background(), s)).To(Succeed())
	waitStatefulSetRolledOut(t, s, "db:v1", 2)
	v2 := testbed.StatefulSet(ns, "db", "db:v2", 2)
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	held := gate.TemplateHash(&getStatefulSet(g, s).Spec.Template)

	c := release(ns, "v2", time.Hour)
	c.Name = "db-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	deployAt := metav1.NewTime(time.Now().Add(30 * time.Minute))
	c.Spec.DeployAt = &deployAt
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets[0].CandidateImages).To(Equal([]string{"db:v2"}))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())

	signOff(t, c)
	var signed deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &signed)).To(Succeed())
	g.Expect(signed.Annotations).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead", HaveSuffix(" | template "+held)))

	v3 := testbed.StatefulSet(ns, "db", "db:v3", 2)
	v3.Labels = v2.Labels
	g.Expect(apply(v3)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets[0].CandidateImages).To(Equal([]string{"db:v3"}))
		g.Expect(cur.Status.Approvals).To(HaveLen(1))
		g.Expect(cur.Status.Approvals[0].NotCounted).To(Equal(
			"given for db:v2, but the StatefulSet now holds db:v3 for release: sign again"))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, 2*time.Second, 200*time.Millisecond).
		Should(HaveEach("db:v1"), "nothing signed for is released")
}

// TestAnObserveChecklistIsRefusedOnAStatefulSetOrDaemonSetItsOwnerGated: as for a
// Deployment, a checklist with gate: Observe (which holds nothing) is refused on a
// StatefulSet or DaemonSet labelled gated=true in Git, naming the workload by its kind
// and the label's break-glass; one of gate Pause is let in.
func TestAnObserveChecklistIsRefusedOnAStatefulSetOrDaemonSetItsOwnerGated(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	s := testbed.StatefulSet(ns, "db", "db:v1", 1)
	s.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(bed.Client.Create(ctx, s)).To(Succeed())
	ds := testbed.DaemonSet(ns, "agent", "agent:v1")
	ds.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(bed.Client.Create(ctx, ds)).To(Succeed())

	for _, ref := range []deployv1alpha1.TargetRef{
		{Kind: deployv1alpha1.KindStatefulSet, Name: "db"},
		{Kind: deployv1alpha1.KindDaemonSet, Name: "agent"},
	} {
		c := observeRelease(ns, "v2")
		c.Name, c.Spec.Target = ref.Name+"-v2", &ref
		err := bed.Client.Create(ctx, c)
		g.Expect(err).To(MatchError(ContainSubstring("spec.gate: Observe holds nothing, and %s is labelled %s=%s",
			ref.String(), deployv1alpha1.GatedLabel, deployv1alpha1.GatedByUser)), ref.String())
		g.Expect(err).To(MatchError(ContainSubstring("takes the right to edit the %s)", ref.Kind)), ref.String())

		c.Spec.Gate = deployv1alpha1.GatePause
		g.Expect(bed.Client.Create(ctx, c)).To(Succeed(), "gate Pause on %s", ref.String())
	}
}

// TestARetryIsOfTheSameKindOfWorkloadNotOnlyOfTheSameName: the retry-of annotation of a
// release of the Deployment db may not name a release of the StatefulSet db of the same
// revision: a retry is of the same workloads, kind and name, and the refusal names the
// kind retried.
func TestARetryIsOfTheSameKindOfWorkloadNotOnlyOfTheSameName(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	c := release(ns, "v2", time.Hour)
	c.Name, c.Spec.Target = "db-v2", &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())

	forged := release(ns, "v2", time.Hour)
	forged.Name, forged.Spec.Target = "db-v2-retry", &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDeployment, Name: "db"}
	forged.Annotations = map[string]string{deployv1alpha1.RetryOfAnnotation: "db-v2"}
	g.Expect(bed.Client.Create(ctx, forged)).To(MatchError(ContainSubstring(
		`names checklist db-v2, of StatefulSet db revision "v2": a retry is of the same StatefulSet and revision`)))
}

// selfHealWriter is a GitOps tool's self-heal: it server-side-applies manifest (as
// apply does) every 100 ms until stopped, counting its writes and the API server's
// refusals, the last of which it keeps.
type selfHealWriter struct {
	mu              sync.Mutex
	writes, refused int
	lastRefusal     string
	stop            chan struct{}
	done            chan struct{}
}

// waitWrites waits until the writer has applied at least n times.
func (w *selfHealWriter) waitWrites(t *testing.T, n int) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		writes, _, _ := w.counts()
		g.Expect(writes).To(BeNumerically(">=", n))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

func startSelfHeal(t *testing.T, manifest client.Object) *selfHealWriter {
	t.Helper()
	w := &selfHealWriter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			err := apply(manifest.DeepCopyObject().(client.Object))
			w.mu.Lock()
			w.writes++
			if err != nil {
				w.refused++
				w.lastRefusal = err.Error()
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *selfHealWriter) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *selfHealWriter) counts() (writes, refused int, lastRefusal string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.refused, w.lastRefusal
}

// TestAGitOpsSelfHealApplyingAStatefulSetWithoutItsPartitionNeitherReleasesNorUndoesARollback:
// the StatefulSet is Argo CD's, labelled gated and with its own partition 0 in Git, and
// the partition is in ignoreDifferences with RespectIgnoreDifferences: from the new image
// on, the self-heal server-side-applies the manifest without the partition every 100 ms
// through the whole release. While the checklist waits for its sign-off the partition
// stays at tminus's hold and no pod takes the new image, however often the writer applies;
// the sign-off releases it to every pod; a breach rolls every pod back to v1, and there
// they stay while the writer goes on applying the rolled-back image, each of its writes
// refused.
func TestAGitOpsSelfHealApplyingAStatefulSetWithoutItsPartitionNeitherReleasesNorUndoesARollback(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	gatedLabels := map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	inGit := func(image string, partition *int32) *appsv1.StatefulSet {
		s := testbed.StatefulSet(ns, "db", image, 3)
		s.Labels = gatedLabels
		if partition != nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: partition}
		}
		return s
	}
	zero := int32(0)
	s := inGit("db:v1", &zero)
	g.Expect(apply(s)).To(Succeed())
	waitStatefulSetRolledOut(t, s, "db:v1", 3)

	g.Expect(apply(inGit("db:v2", &zero))).To(Succeed())
	held := func(g Gomega) {
		ru := getStatefulSet(g, s).Spec.UpdateStrategy.RollingUpdate
		g.Expect(ru).NotTo(BeNil())
		g.Expect(ru.Partition).To(HaveValue(Equal(deployv1alpha1.HoldPartition)))
	}
	held(g)

	// From here on Argo CD leaves the partition out of what it applies.
	writer := startSelfHeal(t, inGit("db:v2", nil))
	c := release(ns, "v2", time.Hour)
	c.Name = "db-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	writer.waitWrites(t, 30)
	g.Consistently(func(g Gomega) {
		held(g)
		g.Expect(statefulSetPodImages(g, ns, "db")).To(And(HaveLen(3), HaveEach("db:v1")))
	}, 3*time.Second, 100*time.Millisecond).Should(Succeed(), "held before the sign-off, whatever the writer applies")
	var before deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &before)).To(Succeed())
	g.Expect(before.Status.Phase).To(BeElementOf(deployv1alpha1.PhasePending, deployv1alpha1.PhaseRunning),
		"the checklist still waits for its sign-off")
	writes, refused, _ := writer.counts()
	t.Logf("before the sign-off: %d writes, %d refused", writes, refused)

	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitStatefulSetRolledOut(t, s, "db:v2", 3)

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitStatefulSetRolledOut(t, s, "db:v1", 3)
	writesAtRollback, refusedAtRollback, _ := writer.counts()
	g.Consistently(func(g Gomega) {
		g.Expect(getStatefulSet(g, s).Spec.Template.Spec.Containers[0].Image).To(Equal("db:v1"))
		g.Expect(statefulSetPodImages(g, ns, "db")).To(And(HaveLen(3), HaveEach("db:v1")))
	}, 3*time.Second, 100*time.Millisecond).Should(Succeed(), "the rollback stays while the writer applies v2")
	writer.halt()
	writes, refused, last := writer.counts()
	t.Logf("through the release: %d writes, %d refused", writes, refused)
	expectRefusedSinceRollback(g, writes-writesAtRollback, refused-refusedAtRollback)
	g.Expect(last).To(ContainSubstring("StatefulSet " + ns + "/db: this pod template (db:v2) was rolled back by checklist db-v2"))
}

// expectRefusedSinceRollback: every write the self-heal made once the rollback had
// rolled out was refused, but for one that may have been in flight across it.
func expectRefusedSinceRollback(g Gomega, writes, refused int) {
	g.Expect(writes).To(BeNumerically(">", 0))
	g.Expect(refused).To(BeNumerically(">=", writes-1), "the writer's writes of the rolled-back image are refused")
}

// TestAGitOpsSelfHealApplyingADaemonSetWithoutItsUpdateStrategyNeitherReleasesNorUndoesARollback:
// as for the StatefulSet, with a node agent whose updateStrategy (RollingUpdate,
// maxUnavailable 2 in Git) is in Argo CD's ignoreDifferences: from the new image on the
// self-heal applies the manifest without updateStrategy every 100 ms. Before the
// sign-off the DaemonSet stays OnDelete, the owner's strategy kept, and no node's pod
// takes the new image; the sign-off puts the owner's strategy back and releases it to
// every node; a breach puts every node back on v1, and there it
// stays while the writer's writes of the rolled-back image are refused.
func TestAGitOpsSelfHealApplyingADaemonSetWithoutItsUpdateStrategyNeitherReleasesNorUndoesARollback(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	two := intstr.FromInt32(2)
	inGit := func(image string, withStrategy bool) *appsv1.DaemonSet {
		ds := testbed.DaemonSet(ns, "agent", image)
		ds.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &two
		if !withStrategy {
			ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{}
		}
		return ds
	}
	ds := inGit("agent:v1", true)
	g.Expect(apply(ds)).To(Succeed())
	waitDaemonSetRolledOut(t, ds, "agent:v1")

	g.Expect(apply(inGit("agent:v2", true))).To(Succeed())
	held := func(g Gomega) {
		cur := getDaemonSet(g, ds)
		g.Expect(cur.Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType))
		g.Expect(cur.Annotations[deployv1alpha1.OwnerStrategyAnnotation]).To(ContainSubstring(`"maxUnavailable":2`),
			"the owner's strategy from Git, whatever the writer leaves out")
	}
	held(g)

	writer := startSelfHeal(t, inGit("agent:v2", false))
	c := release(ns, "v2", time.Hour)
	c.Name = "agent-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDaemonSet, Name: "agent"}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	writer.waitWrites(t, 30)
	g.Consistently(func(g Gomega) {
		held(g)
		g.Expect(statefulSetPodImages(g, ns, "agent")).To(And(HaveLen(testbed.DaemonSetNodes), HaveEach("agent:v1")))
	}, 3*time.Second, 100*time.Millisecond).Should(Succeed(), "held before the sign-off, whatever the writer applies")
	var before deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &before)).To(Succeed())
	g.Expect(before.Status.Phase).To(BeElementOf(deployv1alpha1.PhasePending, deployv1alpha1.PhaseRunning),
		"the checklist still waits for its sign-off")

	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitDaemonSetRolledOut(t, ds, "agent:v2")
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy.RollingUpdate).To(HaveField("MaxUnavailable", HaveValue(Equal(two))),
		"the release put the owner's strategy back")

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitDaemonSetRolledOut(t, ds, "agent:v1")
	writesAtRollback, refusedAtRollback, _ := writer.counts()
	g.Consistently(func(g Gomega) {
		g.Expect(getDaemonSet(g, ds).Spec.Template.Spec.Containers[0].Image).To(Equal("agent:v1"))
		g.Expect(statefulSetPodImages(g, ns, "agent")).To(And(HaveLen(testbed.DaemonSetNodes), HaveEach("agent:v1")))
	}, 3*time.Second, 100*time.Millisecond).Should(Succeed(), "the rollback stays while the writer applies v2")
	writer.halt()
	writes, refused, last := writer.counts()
	t.Logf("through the release: %d writes, %d refused", writes, refused)
	expectRefusedSinceRollback(g, writes-writesAtRollback, refused-refusedAtRollback)
	g.Expect(last).To(ContainSubstring("DaemonSet " + ns + "/agent: this pod template (agent:v2) was rolled back by checklist agent-v2"))
}

// TestAnOwnersPartitionOutlivesASelfHealThatLeavesThePartitionOut: Git sets partition 1
// (pod 0 is the owner's to update) and the new image is held; from then on the self-heal
// applies the manifest without the partition every 100 ms, which drops the partition and
// tminus's annotation the hold wrote in Argo CD's earlier write (the API server counts
// them as Argo CD's). The partition kept as the owner's stays 1, and the release puts 1
// back: pods 1 and 2 take the new image, pod 0 stays on v1.
func TestAnOwnersPartitionOutlivesASelfHealThatLeavesThePartitionOut(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	inGit := func(image string, partition *int32) *appsv1.StatefulSet {
		s := testbed.StatefulSet(ns, "db", image, 3)
		s.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
		if partition != nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: partition}
		}
		return s
	}
	one := int32(1)
	s := inGit("db:v1", &one)
	g.Expect(apply(s)).To(Succeed())
	waitStatefulSetRolledOut(t, s, "db:v1", 3)
	g.Expect(apply(inGit("db:v2", &one))).To(Succeed())
	g.Expect(getStatefulSet(g, s).Annotations).To(HaveKeyWithValue(deployv1alpha1.OwnerPartitionAnnotation, "1"))

	writer := startSelfHeal(t, inGit("db:v2", nil))
	g.Eventually(func(g Gomega) {
		writes, _, _ := writer.counts()
		g.Expect(writes).To(BeNumerically(">=", 10))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	stored := getStatefulSet(g, s)
	g.Expect(stored.Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(Equal(deployv1alpha1.HoldPartition)))
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.OwnerPartitionAnnotation, "1"),
		"the owner's partition, whatever the writer leaves out")

	c := release(ns, "v2", time.Hour)
	c.Name = "db-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	signOff(t, c)
	g.Eventually(func(g Gomega) {
		cur := getStatefulSet(g, s)
		g.Expect(cur.Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(Equal(int32(1))), "the owner's partition put back")
		g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.OwnerPartitionAnnotation))
		var pods corev1.PodList
		g.Expect(bed.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"app": "db"})).To(Succeed())
		images := map[string]string{}
		for _, p := range pods.Items {
			images[p.Name] = p.Spec.Containers[0].Image
		}
		g.Expect(images).To(Equal(map[string]string{"db-0": "db:v1", "db-1": "db:v2", "db-2": "db:v2"}))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) *int32 { return getStatefulSet(g, s).Spec.UpdateStrategy.RollingUpdate.Partition },
		2*time.Second, 100*time.Millisecond).Should(HaveValue(Equal(int32(1))), "the writer's applies leave the owner's partition")
}

// TestAHeldStatefulSetCannotBeSwitchedToOnDelete: Git applies db:v2 to a gated
// StatefulSet with no checklist, and it is held at tminus's partition. An editor then
// switches the update strategy to OnDelete, where tminus cannot hold it: the API server
// refuses the write, naming the StatefulSet and why, and a pod deleted afterwards comes
// back on db:v1.
func TestAHeldStatefulSetCannotBeSwitchedToOnDelete(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	s := gatedStatefulSet(t, ns, 2)
	v2 := testbed.StatefulSet(ns, "db", "db:v2", 2)
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	g.Expect(getStatefulSet(g, s).Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(Equal(deployv1alpha1.HoldPartition)))

	err := bed.Client.Patch(context.Background(), getStatefulSet(g, s), client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}`)))
	g.Expect(err).To(MatchError(ContainSubstring("StatefulSet " + ns + "/db is held by tminus")))
	g.Expect(err).To(MatchError(ContainSubstring("would make it ungateable")))
	g.Expect(getStatefulSet(g, s).Spec.UpdateStrategy.Type).To(Equal(appsv1.RollingUpdateStatefulSetStrategyType))

	var pod corev1.Pod
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "db-0"}, &pod)).To(Succeed())
	g.Expect(bed.Client.Delete(context.Background(), &pod)).To(Succeed())
	g.Eventually(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, time.Minute, 200*time.Millisecond).
		Should(And(HaveLen(2), HaveEach("db:v1")))
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, 2*time.Second, 200*time.Millisecond).
		Should(HaveEach("db:v1"), "the recreated pod runs what serves, not the held template")
}

// TestAHeldDaemonSetKeepsItsHoldMarksAndAResumeAfterDroppingThemIsHeldAgain: Git applies
// agent:v2 to a gated DaemonSet with no checklist, and it is held with OnDelete. An editor
// with no right to sign off drops tminus's marks (the owner's strategy kept aside, and
// who holds it) in a write of annotations alone, then writes RollingUpdate to let the
// held image roll. The marks are put back in the first write, the second is stored
// OnDelete again, and every node's pod stays on agent:v1.
func TestAHeldDaemonSetKeepsItsHoldMarksAndAResumeAfterDroppingThemIsHeldAgain(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	ds := testbed.DaemonSet(ns, "agent", "agent:v1")
	g.Expect(bed.Client.Create(context.Background(), ds)).To(Succeed())
	waitDaemonSetRolledOut(t, ds, "agent:v1")
	v2 := testbed.DaemonSet(ns, "agent", "agent:v2")
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	held := getDaemonSet(g, ds)
	g.Expect(held.Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType))
	kept := held.Annotations[deployv1alpha1.OwnerStrategyAnnotation]
	g.Expect(kept).NotTo(BeEmpty())

	drop := fmt.Sprintf(`{"metadata":{"annotations":{%q:null,%q:null}}}`, deployv1alpha1.OwnerStrategyAnnotation, deployv1alpha1.HeldByAnnotation)
	g.Expect(bed.Client.Patch(context.Background(), getDaemonSet(g, ds), client.RawPatch(types.MergePatchType, []byte(drop)))).To(Succeed())
	stored := getDaemonSet(g, ds)
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.OwnerStrategyAnnotation, kept), "put back in the same write")
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))

	resume := `{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":1}}}}`
	g.Expect(bed.Client.Patch(context.Background(), getDaemonSet(g, ds), client.RawPatch(types.MergePatchType, []byte(resume)))).To(Succeed())
	g.Expect(getDaemonSet(g, ds).Spec.UpdateStrategy.Type).To(Equal(appsv1.OnDeleteDaemonSetStrategyType), "held again in the write")
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "agent") }, 3*time.Second, 200*time.Millisecond).
		Should(And(HaveLen(testbed.DaemonSetNodes), HaveEach("agent:v1")), "no node's pod takes the held template")
}

// TestAChangeHeldDuringAStepKeepsTheOwnersPartitionNotTheSteps: during a release in
// steps the StatefulSet's partition is the step's (2 of 3 pods held back) and the
// owner's (none) is kept aside. A new image written then is held at tminus's partition,
// and the partition kept stays the owner's: a restore or a later release puts 0 back,
// not the step's 2.
func TestAChangeHeldDuringAStepKeepsTheOwnersPartitionNotTheSteps(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	s := gatedStatefulSet(t, ns, 3)
	g.Eventually(func(g Gomega) error {
		cur := getStatefulSet(g, s)
		cur.Spec.Template.Spec.Containers[0].Image = "db:v3"
		cur.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(int32(2))}
		cur.Annotations = map[string]string{deployv1alpha1.StepAnnotation: "1 of 2", deployv1alpha1.OwnerPartitionAnnotation: ""}
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	held := getStatefulSet(g, s)
	g.Expect(held.Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(Equal(deployv1alpha1.HoldPartition)))
	g.Expect(held.Annotations).To(HaveKeyWithValue(deployv1alpha1.OwnerPartitionAnnotation, ""), "the owner's partition, not the step's")
}

// inFirstStep makes db (3 pods on db:v1, gated), applies db:v2 and checklist db-v2
// releasing it in steps (1 pod, then all; the step's phase an hour long), signs it off
// and returns once db-2 runs v2, ready: the first step, waiting.
func inFirstStep(t *testing.T, ns string) (*appsv1.StatefulSet, *deployv1alpha1.DeploymentChecklist) {
	t.Helper()
	g := NewWithT(t)
	s := gatedStatefulSet(t, ns, 3)
	v2 := testbed.StatefulSet(ns, "db", "db:v2", 3)
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	c := release(ns, "v2", time.Hour)
	c.Name = "db-v2"
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	c.Spec.Release = &deployv1alpha1.ReleaseSpec{Steps: []deployv1alpha1.ReleaseStep{
		{Pods: intstr.FromInt32(1), Phase: c.Spec.Phases[1].Name}}}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	signOff(t, c)
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.TargetStatusOf("db")).NotTo(BeNil())
		g.Expect(cur.TargetStatusOf("db").StepReadyAt).NotTo(BeNil(), "the first step's pod runs v2, ready")
		g.Expect(getStatefulSet(g, s).Annotations).To(HaveKeyWithValue(deployv1alpha1.StepAnnotation, "1 of 2"))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	return s, c
}

// TestAStatefulSetInAStepCannotBeScaledUpUntilItsReleaseEnds: db is in the first step
// of a release in steps (db-2 on v2 of 3 pods). An HPA or the on-call scales it to 5,
// through the scale subresource and then in spec.replicas: both are refused, naming
// the checklist, the step and the pods that would have started on the release, and no
// pod is added. Once the release is rolled back, the same scale-up passes and every
// pod runs v1.
func TestAStatefulSetInAStepCannotBeScaledUpUntilItsReleaseEnds(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	s, c := inFirstStep(t, ns)

	scale := &autoscalingv1.Scale{}
	g.Expect(bed.Client.SubResource("scale").Get(ctx, getStatefulSet(g, s), scale)).To(Succeed())
	scale.Spec.Replicas = 5
	err := bed.Client.SubResource("scale").Update(ctx, getStatefulSet(g, s), client.WithSubResourceBody(scale))
	g.Expect(err).To(MatchError(ContainSubstring("is released in steps by checklist db-v2 (step 1 of 2")))
	g.Expect(err).To(MatchError(ContainSubstring("would start db-3, db-4 on the release")))
	err = bed.Client.Patch(ctx, getStatefulSet(g, s), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":5}}`)))
	g.Expect(err).To(MatchError(ContainSubstring("is released in steps by checklist db-v2 (step 1 of 2")))
	g.Expect(getStatefulSet(g, s).Spec.Replicas).To(HaveValue(Equal(int32(3))))
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, 2*time.Second, 200*time.Millisecond).
		Should(ConsistOf("db:v1", "db:v1", "db:v2"), "no pod added above the step's partition")

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	g.Eventually(func() error {
		g.Expect(bed.Client.SubResource("scale").Get(ctx, getStatefulSet(g, s), scale)).To(Succeed())
		scale.Spec.Replicas = 5
		return bed.Client.SubResource("scale").Update(ctx, getStatefulSet(g, s), client.WithSubResourceBody(scale))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, 2*time.Minute, 200*time.Millisecond).
		Should(And(HaveLen(5), HaveEach("db:v1")))
}

// TestAPartitionWrittenDuringAStepIsTheOwnersAndReleasesNoPodEarly: db is in the first
// step of a release in steps (db-2 on v2, its phase waiting an hour). Its editor,
// wanting v2 out now, patches the partition to 0 (as a GitOps apply of a manifest
// saying partition 0 would). No pod outside the step takes v2: the partition written
// is kept as the owner's, put back after the last step, and the step's stays.
func TestAPartitionWrittenDuringAStepIsTheOwnersAndReleasesNoPodEarly(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	s, _ := inFirstStep(t, ns)
	g.Expect(statefulSetPodImages(g, ns, "db")).To(ConsistOf("db:v1", "db:v1", "db:v2"))

	g.Expect(bed.Client.Patch(context.Background(), getStatefulSet(g, s), client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`)))).To(Succeed())
	cur := getStatefulSet(g, s)
	g.Expect(cur.Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(Equal(int32(2))), "the step's partition stays")
	g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.OwnerPartitionAnnotation, "0"))
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, 3*time.Second, 200*time.Millisecond).
		Should(ConsistOf("db:v1", "db:v1", "db:v2"), "db-0 and db-1 are not in the step")
}

// TestAStatefulSetInAStepCannotBeSwitchedToOnDelete: db is in the first step of a
// release in steps; its editor switches it to OnDelete to release pods by hand. The
// write is refused naming the step: with OnDelete every pod deleted afterwards would
// start on the release before its steps passed.
func TestAStatefulSetInAStepCannotBeSwitchedToOnDelete(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	s, _ := inFirstStep(t, ns)

	err := bed.Client.Patch(context.Background(), getStatefulSet(g, s), client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}`)))
	g.Expect(err).To(MatchError(ContainSubstring("is released in steps by tminus (1 of 2")))
	g.Expect(getStatefulSet(g, s).Spec.UpdateStrategy.Type).To(Equal(appsv1.RollingUpdateStatefulSetStrategyType))
}

// TestAStepLeftByADeletedChecklistIsTheOwnersToFinish: db is in the first step of a
// release in steps when its checklist is deleted. Nothing steps db any more, so the
// partition its owner then writes is admitted as written (no live checklist keeps the
// step's), and every pod takes the template.
func TestAStepLeftByADeletedChecklistIsTheOwnersToFinish(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	s, c := inFirstStep(t, ns)

	g.Expect(bed.Client.Delete(context.Background(), c)).To(Succeed())
	g.Eventually(func() error {
		return bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &deployv1alpha1.DeploymentChecklist{})
	}, 30*time.Second, 100*time.Millisecond).Should(MatchError(ContainSubstring("not found")))
	g.Eventually(func() error {
		return bed.Client.Patch(context.Background(), getStatefulSet(g, s), client.RawPatch(types.MergePatchType,
			[]byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`)))
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(getStatefulSet(g, s).Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(BeZero()))
	waitStatefulSetRolledOut(t, s, "db:v2", 3)
}

// warningsSeen keeps the warnings the API server sent a client (admission webhooks'
// warnings among them), as kubectl prints them.
type warningsSeen struct {
	mu  sync.Mutex
	all []string
}

func (w *warningsSeen) HandleWarningHeader(_ int, _, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = append(w.all, text)
}

func (w *warningsSeen) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.all)
}

// statefulSetEditor is user in namespace ns with the rights of a StatefulSet editor
// (get, update, patch StatefulSets and their scale; read checklists) and nothing more,
// with the warnings the API server sends it.
func statefulSetEditor(t *testing.T, ns, user string) (client.Client, *warningsSeen) {
	t.Helper()
	g := NewWithT(t)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "statefulset-editor", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets", "statefulsets/scale"}, Verbs: []string{"get", "list", "update", "patch"}},
		{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"}, Verbs: []string{"get", "list"}},
	}}
	g.Expect(bed.Client.Create(context.Background(), role)).To(Succeed())
	g.Expect(bed.Client.Create(context.Background(), bindingIn(ns, user, role.Name, user))).To(Succeed())
	cfg, err := bed.AddUser(user)
	g.Expect(err).NotTo(HaveOccurred())
	cfg = rest.CopyConfig(cfg)
	seen := &warningsSeen{}
	cfg.WarningHandler = seen
	c, err := client.New(cfg, client.Options{Scheme: bed.Client.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	return c, seen
}

// TestAStepMarkDroppedByAnEditorIsPutBackSoTheStatefulSetCannotBeScaledOrReleasedPastItsStep:
// db is in the first step of a release in steps (partition 2: db-2 on v2). Sam, who may
// edit StatefulSets, drops deploy.tminus.dev/step (kubectl annotate db
// deploy.tminus.dev/step-: a write of an annotation alone). The write is admitted with
// the mark put back and a warning naming the checklist and the verb it takes. Sam then
// scales db to 5 (refused: db-3 and db-4 would start on the release), and writes
// partition 0 with the mark dropped in the same write (the step's partition is kept, 0
// kept as the owner's). No pod but db-2 runs v2.
func TestAStepMarkDroppedByAnEditorIsPutBackSoTheStatefulSetCannotBeScaledOrReleasedPastItsStep(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	s, _ := inFirstStep(t, ns)
	sam, warnings := statefulSetEditor(t, ns, "sam")

	g.Expect(sam.Patch(ctx, getStatefulSet(g, s), client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+deployv1alpha1.StepAnnotation+`":null}}}`)))).To(Succeed())
	g.Expect(getStatefulSet(g, s).Annotations).To(HaveKeyWithValue(deployv1alpha1.StepAnnotation, "1 of 2"))
	g.Expect(warnings.seen()).To(ContainElement(And(ContainSubstring("tminus kept deploy.tminus.dev/step"),
		ContainSubstring("checklist db-v2"), ContainSubstring(`user "sam" may not change the mark`))))

	scale := &autoscalingv1.Scale{}
	g.Expect(sam.SubResource("scale").Get(ctx, getStatefulSet(g, s), scale)).To(Succeed())
	scale.Spec.Replicas = 5
	err := sam.SubResource("scale").Update(ctx, getStatefulSet(g, s), client.WithSubResourceBody(scale))
	g.Expect(err).To(MatchError(ContainSubstring("is released in steps by checklist db-v2 (step 1 of 2")))

	g.Expect(sam.Patch(ctx, getStatefulSet(g, s), client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+deployv1alpha1.StepAnnotation+`":null}},`+
			`"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`)))).To(Succeed())
	cur := getStatefulSet(g, s)
	g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.StepAnnotation, "1 of 2"))
	g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.OwnerPartitionAnnotation, "0"))
	g.Expect(cur.Spec.Replicas).To(HaveValue(Equal(int32(3))))
	g.Expect(cur.Spec.UpdateStrategy.RollingUpdate.Partition).To(HaveValue(Equal(int32(2))), "the step's partition")
	g.Consistently(func(g Gomega) []string { return statefulSetPodImages(g, ns, "db") }, 2*time.Second, 200*time.Millisecond).
		Should(ConsistOf("db:v1", "db:v1", "db:v2"), "no pod but the step's on the release")
}
