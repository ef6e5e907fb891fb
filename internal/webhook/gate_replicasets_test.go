package webhook_test

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/target"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/testbed"
)

// replicaSetLists reads from the API server and counts its lists of ReplicaSets.
type replicaSetLists struct {
	client.Reader
	lists atomic.Int64
}

func (r *replicaSetLists) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*appsv1.ReplicaSetList); ok {
		r.lists.Add(1)
	}
	return r.Reader.List(ctx, list, opts...)
}

// cacheWithoutNewestReplicaSet is a webhook replica's cache that has not seen the
// newest ReplicaSet of the namespace yet (by the Deployment controller's revision):
// an informer a moment behind holds every ReplicaSet but the last one made.
type cacheWithoutNewestReplicaSet struct {
	client.Reader
}

func (r *cacheWithoutNewestReplicaSet) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := r.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	if l, ok := list.(*appsv1.ReplicaSetList); ok && len(l.Items) > 0 {
		revision := func(rs appsv1.ReplicaSet) int {
			n, _ := strconv.Atoi(rs.Annotations[target.RevisionAnnotation])
			return n
		}
		newest := slices.MaxFunc(l.Items, func(a, b appsv1.ReplicaSet) int { return cmp.Compare(revision(a), revision(b)) })
		l.Items = slices.DeleteFunc(slices.Clone(l.Items), func(rs appsv1.ReplicaSet) bool { return rs.UID == newest.UID })
	}
	return nil
}

// cachedReplicaSetsMatch waits until the manager's cache holds d's ReplicaSets as its
// stored status counts them.
func cachedReplicaSetsMatch(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	var stored *appsv1.Deployment
	NewWithT(t).Eventually(func(g Gomega) {
		stored = get(t, d)
		rss, err := target.ReplicaSets(context.Background(), cached, stored)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(target.ReplicaSetsMatchStatus(stored, rss)).To(BeTrue())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	return stored
}

// TestAHeldWriteToASettledDeploymentListsNoReplicaSetFromTheAPIServer: checkout runs
// v1, settled; a pipeline writes v2, which nothing released. The gate holds it. The
// ReplicaSets it decides on are its cache's, which match what the stored Deployment's
// status counts: no LIST, which the API server would answer only once its watch cache
// caught up with etcd (tens of milliseconds on a quiet cluster, every held write).
func TestAHeldWriteToASettledDeploymentListsNoReplicaSetFromTheAPIServer(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	stored := cachedReplicaSetsMatch(t, gated(t, ns, "checkout:v1"))

	api := &replicaSetLists{Reader: fresh}
	h := &webhook.DeploymentGate{Reader: cached, Fresh: api, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	write := stored.DeepCopy()
	write.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
	for range 5 {
		resp := h.Handle(ctx, updateRequest(t, stored, write))
		g.Expect(resp.Allowed).To(BeTrue())
		g.Expect(resp.Patches).NotTo(BeEmpty(), "held")
	}
	g.Expect(api.lists.Load()).To(BeZero(), "decided on the cache's ReplicaSets, which match the stored status")
}

// TestAnUndoReachingAReplicaWhoseCacheMissesTheNewestReplicaSetIsDecidedOnTheAPIServers:
// checkout rolled v1 then v2 before it was gated; a pipeline writes v3, held. The
// on-call undoes it to v2, which runs. The write reaches a webhook replica whose cache
// has not seen v2's ReplicaSet yet: on its cache alone v2 never ran and the undo would
// be held. The stored Deployment records revision 2, which the cache lacks, so the
// gate lists the ReplicaSets from the API server and lets the undo through.
func TestAnUndoReachingAReplicaWhoseCacheMissesTheNewestReplicaSetIsDecidedOnTheAPIServers(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 3)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	setImage(t, d, "checkout:v2")
	waitRolledOut(t, d, "checkout:v2")
	label(t, d)
	held := setImage(t, d, "checkout:v3")
	g.Expect(held.Spec.Paused).To(BeTrue(), "v3 held at admission")
	g.Expect(held.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
	stored := cachedReplicaSetsMatch(t, d)
	g.Expect(stored.Annotations).To(HaveKeyWithValue(target.RevisionAnnotation, "2"))

	undo := stored.DeepCopy()
	undo.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
	undo.Spec.Paused = false
	lagging := &cacheWithoutNewestReplicaSet{Reader: cached}

	// On the lagging cache alone, v2 never ran: the undo would be held.
	alone := &webhook.DeploymentGate{Reader: lagging, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	resp := alone.Handle(ctx, updateRequest(t, stored, undo))
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Patches).NotTo(BeEmpty(), "held on the lagging cache alone")

	api := &replicaSetLists{Reader: fresh}
	h := &webhook.DeploymentGate{Reader: lagging, Fresh: api, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	resp = h.Handle(ctx, updateRequest(t, stored, undo))
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Patches).To(BeEmpty(), "the undo to a template that ran goes through untouched")
	g.Expect(api.lists.Load()).To(Equal(int64(1)), "the ReplicaSets listed from the API server once")
}

// cacheAt is a webhook replica's cache that holds the namespace's ReplicaSets as the
// API server stored them at resourceVersion rv (a LIST of that exact version): an
// informer a moment behind holds exactly such a past state.
type cacheAt struct {
	client.Reader
	ns, rv string
}

func (r *cacheAt) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*appsv1.ReplicaSetList); ok {
		return fresh.List(ctx, list, &client.ListOptions{Namespace: r.ns,
			Raw: &metav1.ListOptions{ResourceVersion: r.rv, ResourceVersionMatch: metav1.ResourceVersionMatchExact}})
	}
	return r.Reader.List(ctx, list, opts...)
}

// TestANewTemplateWrittenWhileAnUndoScalesItsOldReplicaSetUpIsRefusedOnAReplicaWhoseCacheMissedTheScale:
// checkout rolled v1 then v2, then was gated. The namespace's pod quota is full. The
// on-call undoes to v1: the Deployment controller marks v1's ReplicaSet revision 3,
// then scales it up by one (the surge pod, which the quota refuses), then records the
// generation observed; the Deployment's status counts pods, not the ReplicaSets'
// desired counts, so it reads as before. A pipeline writes v3, nothing released, and
// the write reaches a webhook replica whose cache holds v1's ReplicaSet as marked but
// not yet scaled. The Deployment is between two versions (two ReplicaSets want pods):
// the write must be refused, as a LIST from the API server decides, not held (a pause
// would freeze both versions side by side).
func TestANewTemplateWrittenWhileAnUndoScalesItsOldReplicaSetUpIsRefusedOnAReplicaWhoseCacheMissedTheScale(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 3)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	setImage(t, d, "checkout:v2")
	waitRolledOut(t, d, "checkout:v2")
	label(t, d)

	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}}}
	g.Expect(bed.Client.Create(ctx, quota)).To(Succeed())
	quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("3")}}
	g.Expect(bed.Client.Status().Update(ctx, quota)).To(Succeed())

	wc, err := client.NewWithWatch(bed.Config, client.Options{Scheme: bed.Client.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &appsv1.ReplicaSetList{}, client.InNamespace(ns))
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()

	undone := setImage(t, d, "checkout:v1")
	g.Expect(undone.Spec.Paused).To(BeFalse(), "the undo to a template that ran is admitted")

	// The version of v1's ReplicaSet marked revision 3 and not yet scaled up.
	var marked string
	deadline := time.After(time.Minute)
	for marked == "" {
		select {
		case ev := <-w.ResultChan():
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if ok && rs.Spec.Template.Spec.Containers[0].Image == "checkout:v1" &&
				rs.Annotations[target.RevisionAnnotation] == "3" && rs.Spec.Replicas != nil && *rs.Spec.Replicas == 0 {
				marked = rs.ResourceVersion
			}
		case <-deadline:
			t.Fatal("v1's ReplicaSet was never marked revision 3 at 0 replicas")
		}
	}
	lagging := &cacheAt{Reader: cached, ns: ns, rv: marked}

	var stored *appsv1.Deployment
	g.Eventually(func(g Gomega) {
		stored = get(t, d)
		g.Expect(stored.Status.ObservedGeneration).To(Equal(stored.Generation))
		g.Expect(stored.Annotations).To(HaveKeyWithValue(target.RevisionAnnotation, "3"))
		var now appsv1.ReplicaSetList
		g.Expect(fresh.List(ctx, &now, client.InNamespace(ns))).To(Succeed())
		wanting := 0
		for _, rs := range now.Items {
			if rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0 {
				wanting++
			}
		}
		g.Expect(wanting).To(Equal(2), "v1's ReplicaSet scaled up beside v2's: the Deployment is rolling out")
		rss, err := target.ReplicaSets(ctx, lagging, stored)
		g.Expect(err).NotTo(HaveOccurred())
		// The lagging cache agrees with the stored status: the revision's ReplicaSet is
		// cached, and it counts the pods the status counts, in all and for v1.
		var pods, updated int32
		revised := false
		for _, rs := range rss {
			pods += rs.Status.Replicas
			if rs.Spec.Template.Spec.Containers[0].Image == "checkout:v1" {
				updated += rs.Status.Replicas
				revised = rs.Annotations[target.RevisionAnnotation] == "3"
			}
		}
		g.Expect([]any{revised, pods, updated}).To(Equal([]any{true, stored.Status.Replicas, stored.Status.UpdatedReplicas}))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	write := stored.DeepCopy()
	write.Spec.Template.Spec.Containers[0].Image = "checkout:v3"
	h := &webhook.DeploymentGate{Reader: lagging, Fresh: fresh, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	resp := h.Handle(ctx, updateRequest(t, stored, write))
	g.Expect(resp.Allowed).To(BeFalse(), "refused, not held: a pause now would freeze v1 and v2 side by side")
	g.Expect(resp.Result.Message).To(ContainSubstring("is rolling out"))
}
