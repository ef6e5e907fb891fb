package webhook_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/testbed"
)

// countingReader reads from the API server and counts the requests it sends and the
// objects they return.
type countingReader struct {
	client.Reader
	requests, objects atomic.Int64
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.requests.Add(1)
	err := r.Reader.Get(ctx, key, obj, opts...)
	if err == nil {
		r.objects.Add(1)
	}
	return err
}

func (r *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.requests.Add(1)
	err := r.Reader.List(ctx, list, opts...)
	if err == nil {
		r.objects.Add(int64(meta.LenList(list)))
	}
	return err
}

func (r *countingReader) reset() { r.requests.Store(0); r.objects.Store(0) }

// finishedChecklists creates n checklists of checkout that ended (Failed, as a
// checklist whose sign-off never came), one after the other: a Deployment has one live
// checklist at a time.
func finishedChecklists(tb testing.TB, ns string, n int) {
	tb.Helper()
	ctx := context.Background()
	for i := range n {
		c := release(ns, "h"+strconv.Itoa(i), time.Hour)
		NewWithT(tb).Eventually(func() error { return client.IgnoreAlreadyExists(bed.Client.Create(ctx, c)) },
			time.Minute, 50*time.Millisecond).Should(Succeed())
		NewWithT(tb).Eventually(func() error {
			var cur deployv1alpha1.DeploymentChecklist
			if err := bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
				return err
			}
			if cur.Status.Phase == deployv1alpha1.PhaseFailed {
				return nil
			}
			before := cur.DeepCopy()
			cur.Status.Phase = deployv1alpha1.PhaseFailed
			return bed.Client.Status().Patch(ctx, &cur, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		}, time.Minute, 50*time.Millisecond).Should(Succeed())
	}
}

// otherReplicaSets creates n ReplicaSets of other Deployments of the namespace (scaled
// to zero, as a Deployment keeps its history), concurrently.
func otherReplicaSets(tb testing.TB, ns string, n int) {
	tb.Helper()
	ctx := context.Background()
	cfg := rest.CopyConfig(bed.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: bed.Client.Scheme()})
	NewWithT(tb).Expect(err).NotTo(HaveOccurred())
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				app := "other-" + strconv.Itoa(i/10)
				rs := &appsv1.ReplicaSet{
					ObjectMeta: metav1.ObjectMeta{Name: app + "-" + strconv.Itoa(i), Namespace: ns, Labels: map[string]string{"app": app}},
					Spec: appsv1.ReplicaSetSpec{Replicas: new(int32(0)),
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
						Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
							Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: app + ":v" + strconv.Itoa(i)}}}},
					},
				}
				NewWithT(tb).Eventually(func() error { return client.IgnoreAlreadyExists(c.Create(ctx, rs)) },
					time.Minute, 50*time.Millisecond).Should(Succeed())
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// rolledBack makes checkout in ns release v2 and roll it back, and returns the
// Deployment as the rollback left it (v1 restored and rolled out).
func rolledBack(tb testing.TB, ns string) *appsv1.Deployment {
	tb.Helper()
	g := NewWithT(tb)
	ctx := context.Background()
	c := release(ns, "v2", time.Hour)
	g.Eventually(func() error { return bed.Client.Create(ctx, c) }, time.Minute, 100*time.Millisecond).Should(Succeed())
	key := client.ObjectKey{Namespace: ns, Name: "checkout"}
	var d appsv1.Deployment
	g.Eventually(func() error {
		if err := bed.Client.Get(ctx, key, &d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
		return bed.Client.Update(ctx, &d)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func() error {
		return annotateIn(bed.Client, c, map[string]string{"approve.tminus.dev/deployment-lead": "testbed-admin for v2"})
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	waitFor(tb, c, deployv1alpha1.PhaseVerifying)
	metrics.set(errorsIn(ns), 0.07)
	waitFor(tb, c, deployv1alpha1.PhaseRolledBack)
	g.Eventually(func() error {
		if err := bed.Client.Get(ctx, key, &d); err != nil {
			return err
		}
		return testbed.RolledOut(&d, "checkout:v1")
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	return &d
}

// TestARefusedSelfHealWriteReadsTwoSmallThingsFromTheAPIServer: a namespace with a
// history (finished checklists of checkout, other Deployments' ReplicaSets); checkout
// rolled v2 back; a self-heal storm writes v2 again and again. Each refused write is
// decided again on the API server's view, reading what can change the decision: the
// checklist that refuses it and checkout's own ReplicaSets, not the namespace.
func TestARefusedSelfHealWriteReadsTwoSmallThingsFromTheAPIServer(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	gated(t, ns, "checkout:v1")
	finishedChecklists(t, ns, 15)
	otherReplicaSets(t, ns, 100)
	restored := rolledBack(t, ns)
	g.Eventually(func(g Gomega) {
		var rss appsv1.ReplicaSetList
		g.Expect(cached.List(ctx, &rss, client.InNamespace(ns))).To(Succeed())
		g.Expect(len(rss.Items)).To(BeNumerically(">=", 102))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	api := &countingReader{Reader: fresh}
	h := &webhook.DeploymentGate{Reader: cached, Fresh: api, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	selfHeal := restored.DeepCopy()
	selfHeal.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
	for range 20 {
		resp := h.Handle(ctx, updateRequest(t, restored, selfHeal))
		g.Expect(resp.Allowed).To(BeFalse())
		g.Expect(resp.Result.Message).To(ContainSubstring("rolled back by checklist checkout-v2"))
	}
	t.Logf("20 refused writes: %d API requests, %d objects read", api.requests.Load(), api.objects.Load())
	g.Expect(api.requests.Load()).To(BeNumerically("<=", 2*20), "at most two requests per refused write")
	g.Expect(api.objects.Load()).To(BeNumerically("<=", 4*20),
		"the refusing checklist and checkout's ReplicaSets (v1, v2), not the namespace's history")

	// A new template nothing released is held, after the same two small reads.
	api.reset()
	held := restored.DeepCopy()
	held.Spec.Template.Spec.Containers[0].Image = "checkout:v3"
	resp := h.Handle(ctx, updateRequest(t, restored, held))
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Patches).NotTo(BeEmpty(), "held")
	g.Expect(api.requests.Load()).To(BeNumerically("<=", 2))
	g.Expect(api.objects.Load()).To(BeNumerically("<=", 4))
}
