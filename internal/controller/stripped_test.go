package controller

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/record"
	"github.com/tminus-dev/tminus/internal/request"
	"github.com/tminus-dev/tminus/internal/slim"
)

// noConfigMaps is a client that cannot create ConfigMaps: a manager that ends a
// release without writing its record.
type noConfigMaps struct{ client.Client }

func (c noConfigMaps) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*corev1.ConfigMap); ok {
		return errors.New("no ConfigMaps for this manager")
	}
	return c.Client.Create(ctx, obj, opts...)
}

// checklistReads counts the reads of checklists that go through it: given as the
// reconciler's APIReader, the reads from the API server; as its client, its reads of
// the cache (every reconcile starts with one).
type checklistReads struct {
	client.Reader
	n atomic.Int64
}

func (c *checklistReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*deployv1alpha1.DeploymentChecklist); ok {
		c.n.Add(1)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// cacheReads wraps the reconciler's client, counting its reads of checklists.
type cacheReads struct {
	client.Client
	reads *checklistReads
}

func (c cacheReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.reads.Get(ctx, key, obj, opts...)
}

// counted starts a manager whose reads of checklists from the cache (reconciles) and
// from the API server are counted; cached is its client, to look at the cache.
func counted(t *testing.T, ns string, opts ...func(*DeploymentChecklistReconciler)) (reconciles, apiReads *checklistReads,
	cached func() client.Client) {
	reconciles, apiReads = &checklistReads{}, &checklistReads{}
	var c client.Client
	startManagerIn(t, ns, healthyMetrics(), func(inner client.Client, _ context.CancelFunc) client.Client {
		c = inner
		reconciles.Reader = inner
		return cacheReads{Client: inner, reads: reconciles}
	}, append(opts, func(r *DeploymentChecklistReconciler) {
		apiReads.Reader = r.APIReader
		r.APIReader = apiReads
	})...)
	return reconciles, apiReads, func() client.Client { return c }
}

// endSettled runs a release that fails before T-0 (a sign-off that never came) under
// a manager of its own, until it has ended, taken its hold off the Deployment and
// written its record: an ended checklist that owes nothing more.
func endSettled(t *testing.T, ns string) *deployv1alpha1.DeploymentChecklist {
	t.Helper()
	d := deployment(t, ns, "checkout:v1")
	first := startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns)
	c.Spec.Phases[0].Timeout = "1s"
	create(t, c)
	waitPhase(t, c, deployv1alpha1.PhaseFailed)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(getChecklist(g, c).Status.Record).NotTo(BeEmpty())
		cur := getDeployment(t, d)
		g.Expect(cur.Spec.Paused).To(BeFalse())
		g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.HeldByAnnotation))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	first.stop()
	return c
}

// TestASettledEndedChecklistCostsNoReadFromTheAPIServerWhenTheManagerRestarts: a
// release ended and recorded; the manager restarts. It reconciles the checklist (the
// cache's first list brings every checklist) from its stripped copy and reads nothing
// of it from the API server: an ended checklist that owes nothing is not read whole.
func TestASettledEndedChecklistCostsNoReadFromTheAPIServerWhenTheManagerRestarts(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	c := endSettled(t, ns)

	reconciles, apiReads, cached := counted(t, ns)
	g.Eventually(reconciles.n.Load, time.Minute, 50*time.Millisecond).Should(BeNumerically(">=", 1))
	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(cached().Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
	g.Expect(slim.Stripped(&cur)).To(BeTrue(), "the cache keeps it stripped")
	g.Consistently(apiReads.n.Load, 3*time.Second, 100*time.Millisecond).Should(BeZero())
}

// TestARecordOwedAtARestartIsWrittenFromTheCachedChecklist: a release ends under a
// manager that could not write its record; the next manager, stripping ended
// checklists, finds the record owed: the cache keeps that checklist whole, the
// reconciler decides on it without reading it from the API server and writes the
// record, which says what the whole status says, phases and checks included. Once
// recorded, the cache keeps it stripped.
func TestARecordOwedAtARestartIsWrittenFromTheCachedChecklist(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	first := startManagerIn(t, ns, healthyMetrics(), func(c client.Client, _ context.CancelFunc) client.Client { return noConfigMaps{c} })
	c := newChecklist(ns)
	c.Spec.Phases[0].Timeout = "1s"
	create(t, c)
	waitPhase(t, c, deployv1alpha1.PhaseFailed)
	// The first manager takes its hold off before it stops, so that the record is all
	// the checklist owes at the restart (a hold left in its name is read whole: another
	// test's case).
	g.Eventually(func(g Gomega) {
		cur := getDeployment(t, d)
		g.Expect(cur.Spec.Paused).To(BeFalse())
		g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.HeldByAnnotation))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	first.stop()
	g.Expect(getChecklist(g, c).Status.Record).To(BeEmpty(), "the first manager wrote no record")

	_, apiReads, cached := counted(t, ns)
	var done *deployv1alpha1.DeploymentChecklist
	var cm corev1.ConfigMap
	g.Eventually(func(g Gomega) {
		done = getChecklist(g, c)
		g.Expect(done.Status.Record).NotTo(BeEmpty())
		g.Expect(bed.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: done.Status.Record}, &cm)).To(Succeed())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	kept, err := record.Parse(&cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kept).To(Equal(record.Build(done)))
	g.Expect(kept.Phases).NotTo(BeEmpty())
	g.Expect(apiReads.n.Load()).To(BeZero(), "decided on the cache's whole copy")

	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(cached().Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(slim.Stripped(&cur)).To(BeTrue())
		g.Expect(cur.Status.Phases).To(BeEmpty())
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
}

// TestARollbackRequestedAfterTheReleaseSucceededRollsItBack: a release succeeds and is
// recorded (its checklist cached stripped); then a person asks for a rollback (a
// request the webhook verified). The checklist is cached whole again until the request
// is answered, and the release is rolled back to v1.
func TestARollbackRequestedAfterTheReleaseSucceededRollsItBack(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil, func(r *DeploymentChecklistReconciler) { r.VerifiedApprovals = true })
	c := newChecklist(ns)
	releaseV2(t, ns, d, c)
	waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Eventually(func(g Gomega) { g.Expect(getChecklist(g, c).Status.Record).NotTo(BeEmpty()) },
		time.Minute, 100*time.Millisecond).Should(Succeed())

	value := "carol: checkout errors since v2"
	g.Eventually(func(g Gomega) error {
		cur := getChecklist(g, c)
		cur.Annotations[deployv1alpha1.RollbackRequestedAnnotation] = value
		cur.Annotations[request.VerifiedKey(deployv1alpha1.RollbackRequestedAnnotation)] = value + " | carol"
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())

	waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, d, "checkout:v1")
	got := getChecklist(g, c)
	g.Expect(got.Status.Request).NotTo(BeNil())
	g.Expect(got.Status.Request.State).To(Equal(deployv1alpha1.RequestActed))
}

// TestASignOffGivenAfterTheReleaseEndedIsRecorded: a release ended and recorded; a
// sign-off then written on its checklist is recorded in status, as for any checklist.
func TestASignOffGivenAfterTheReleaseEndedIsRecorded(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	c := endSettled(t, ns)
	startManagerIn(t, ns, healthyMetrics(), nil)

	approve(t, c, "deployment-lead", "alice for v2")
	g.Eventually(func(g Gomega) {
		g.Expect(getChecklist(g, c).Status.Approvals).To(ContainElement(And(
			HaveField("Role", "deployment-lead"), HaveField("Approver", "alice"))))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
}

// TestTheFinalizerOfAnEarlierVersionComesOffAnEndedChecklist: a release ended and
// recorded; the finalizer earlier versions put on checklists is found on it (put back
// by a restore from backup) when the manager starts: it comes off. Put on again and
// the checklist deleted, it comes off and the checklist goes.
func TestTheFinalizerOfAnEarlierVersionComesOffAnEndedChecklist(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	c := endSettled(t, ns)
	addFinalizer := func() {
		g.Eventually(func(g Gomega) error {
			cur := getChecklist(g, c)
			controllerutil.AddFinalizer(cur, Finalizer)
			return bed.Client.Update(ctx, cur)
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	}
	addFinalizer()

	startManagerIn(t, ns, healthyMetrics(), nil)
	g.Eventually(func(g Gomega) {
		g.Expect(getChecklist(g, c).Finalizers).NotTo(ContainElement(Finalizer))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())

	addFinalizer()
	g.Expect(bed.Client.Delete(ctx, c)).To(Succeed())
	g.Eventually(func() bool {
		var cur deployv1alpha1.DeploymentChecklist
		return apierrors.IsNotFound(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur))
	}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the checklist is gone")
}

// TestAPauseLeftInAnEndedChecklistsNameIsTakenOff: a release ended and recorded (its
// checklist cached stripped); the Deployment is then found paused in its name (a
// manager stopped between holding it and seeing the end). The hold comes off.
func TestAPauseLeftInAnEndedChecklistsNameIsTakenOff(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	c := endSettled(t, ns)
	startManagerIn(t, ns, healthyMetrics(), nil)

	d := &appsv1.Deployment{}
	d.Namespace, d.Name = ns, "checkout"
	g.Eventually(func(g Gomega) error {
		cur := getDeployment(t, d)
		cur.Spec.Paused = true
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[deployv1alpha1.HeldByAnnotation] = deployv1alpha1.HeldByChecklist(c.Name)
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())

	g.Eventually(func(g Gomega) {
		cur := getDeployment(t, d)
		g.Expect(cur.Spec.Paused).To(BeFalse())
		g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.HeldByAnnotation))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
}
