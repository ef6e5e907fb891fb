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
