package target_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
	"github.com/tminus-dev/tminus/test/testbed"
)

// bed is an API server for the package; each test works in a namespace of its own.
var bed *testbed.Bed

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{}, func(b *testbed.Bed) error { bed = b; return nil }))
}

var nsCounter atomic.Int32

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t" + strconv.Itoa(int(nsCounter.Add(1)))}}
	NewWithT(t).Expect(bed.Client.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// pushFirst is tminus's client, with a pipeline's push of image landing on the
// Deployment just before tminus's first write reaches the API server: that write,
// built on the Deployment read before the push, conflicts and is retried on the
// Deployment read afresh.
type pushFirst struct {
	client.Client
	image string
	once  sync.Once
	err   error
}

func (p *pushFirst) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	p.once.Do(func() {
		p.err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var d appsv1.Deployment
			if err := bed.Client.Get(ctx, client.ObjectKeyFromObject(obj), &d); err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Image = p.image
			return bed.Client.Update(ctx, &d)
		})
	})
	return p.Client.Patch(ctx, obj, patch, opts...)
}

func TestAReleaseOrResumeDecidedOnOneTemplateWritesNothingWhenAnotherIsPushedBeforeItsRetry(t *testing.T) {
	ctx := context.Background()
	for name, write := range map[string]func(c client.Client, key types.NamespacedName, hash string) error{
		"release": func(c client.Client, key types.NamespacedName, hash string) error {
			return target.Release(ctx, c, bed.Client, key, "v2", hash)
		},
		"resume": func(c client.Client, key types.NamespacedName, hash string) error {
			return target.Resume(ctx, c, bed.Client, key, hash)
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			// v2 is held for checklist checkout-v2, which signed it off and decides to
			// write; v3 is pushed as it writes.
			d := testbed.Deployment(newNamespace(t), "checkout", "checkout:v2", 3)
			d.Spec.Paused = true
			d.Annotations = map[string]string{deployv1alpha1.HeldByAnnotation: deployv1alpha1.HeldByChecklist("checkout-v2")}
			g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
			decided := gate.TemplateHash(&d.Spec.Template)
			push := &pushFirst{Client: bed.Client, image: "checkout:v3"}

			err := write(push, client.ObjectKeyFromObject(d), decided)
			g.Expect(push.err).NotTo(HaveOccurred())
			g.Expect(errors.Is(err, target.ErrTemplateChanged)).To(BeTrue(), "got %v", err)
			g.Expect(err.Error()).To(ContainSubstring("now holds checkout:v3"))

			var cur appsv1.Deployment
			g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur)).To(Succeed())
			g.Expect(cur.Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v3"))
			g.Expect(cur.Spec.Paused).To(BeTrue(), "v3 stays paused")
			g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, "checklist/checkout-v2"))
			g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.ReleasedRevisionsAnnotation))

			// Decided again on v3, it is written.
			g.Expect(write(bed.Client, client.ObjectKeyFromObject(d), gate.TemplateHash(&cur.Spec.Template))).To(Succeed())
			g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur)).To(Succeed())
			g.Expect(cur.Spec.Paused).To(BeFalse())
		})
	}
}

// TestARestoreDecidedOverOneTemplateDoesNotOverwriteOnePushedBeforeItsRetry: checklist
// checkout-v2 rolls v2 back to v1; v3 (a new release, with a checklist of its own) is
// pushed as the restore writes. The restore's retry finds v3 and writes nothing: the
// next reconcile decides on what the Deployment holds now.
func TestARestoreDecidedOverOneTemplateDoesNotOverwriteOnePushedBeforeItsRetry(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	d := testbed.Deployment(newNamespace(t), "checkout", "checkout:v2", 3)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	decided := gate.TemplateHash(&d.Spec.Template)
	preDeploy := d.Spec.Template.DeepCopy()
	preDeploy.Spec.Containers[0].Image = "checkout:v1"
	push := &pushFirst{Client: bed.Client, image: "checkout:v3"}

	err := target.Restore(ctx, push, bed.Client, client.ObjectKeyFromObject(d), preDeploy, decided, "")
	g.Expect(push.err).NotTo(HaveOccurred())
	g.Expect(errors.Is(err, target.ErrTemplateChanged)).To(BeTrue(), "got %v", err)
	var cur appsv1.Deployment
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur)).To(Succeed())
	g.Expect(cur.Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v3"), "the push is not overwritten")

	// Over the template it was decided on, or over its own (written before, still
	// paused), the restore is written.
	cur.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
	cur.Spec.Paused = true
	g.Expect(bed.Client.Update(ctx, &cur)).To(Succeed())
	g.Expect(target.Restore(ctx, bed.Client, bed.Client, client.ObjectKeyFromObject(d), preDeploy, decided, "")).To(Succeed())
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur)).To(Succeed())
	g.Expect(cur.Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v1"))
	g.Expect(cur.Spec.Paused).To(BeFalse())
	cur.Spec.Paused = true
	g.Expect(bed.Client.Update(ctx, &cur)).To(Succeed())
	g.Expect(target.Restore(ctx, bed.Client, bed.Client, client.ObjectKeyFromObject(d), preDeploy, decided, "")).To(Succeed())
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur)).To(Succeed())
	g.Expect(cur.Spec.Paused).To(BeFalse())
}

// TestReplicaSetsMatchTheStoredStatusOnlyWhenEveryCountAndTheNewestRevisionAgree: the
// gate decides on its cache's ReplicaSets of a Deployment only when they are what the
// Deployment controller counted at its last sync of the stored generation; any one
// difference sends it to the API server.
func TestReplicaSetsMatchTheStoredStatusOnlyWhenEveryCountAndTheNewestRevisionAgree(t *testing.T) {
	rs := func(image, revision string, pods int32) appsv1.ReplicaSet {
		d := testbed.Deployment("ns", "checkout", image, pods)
		return appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout-" + revision, Annotations: map[string]string{target.RevisionAnnotation: revision}},
			Spec:       appsv1.ReplicaSetSpec{Replicas: new(pods), Template: d.Spec.Template},
			Status:     appsv1.ReplicaSetStatus{Replicas: pods},
		}
	}
	// v2 rolled out over v1; v3 held, never rolled.
	stored := func() *appsv1.Deployment {
		d := testbed.Deployment("ns", "checkout", "checkout:v3", 3)
		d.Generation, d.Annotations = 4, map[string]string{target.RevisionAnnotation: "2"}
		d.Spec.Paused = true
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 3, UpdatedReplicas: 0}
		return d
	}
	cache := []appsv1.ReplicaSet{rs("checkout:v1", "1", 0), rs("checkout:v2", "2", 3)}
	for _, tc := range []struct {
		name     string
		noStored bool
		stored   func(*appsv1.Deployment)
		cache    []appsv1.ReplicaSet
		match    bool
	}{
		{name: "everything agrees", cache: cache, match: true},
		{name: "no stored object (a create)", noStored: true},
		{name: "the stored generation not observed yet",
			stored: func(d *appsv1.Deployment) { d.Status.ObservedGeneration = 3 }, cache: cache},
		{name: "the newest revision not in the cache, with no pods yet",
			stored: func(d *appsv1.Deployment) { d.Annotations[target.RevisionAnnotation] = "3" },
			cache:  cache},
		{name: "pods counted differently in all",
			stored: func(d *appsv1.Deployment) { d.Status.Replicas = 4 }, cache: cache},
		{name: "pods of the stored template counted differently",
			stored: func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "checkout:v2" }, cache: cache},
		{name: "the stored template rolled out as the cache counts it",
			stored: func(d *appsv1.Deployment) {
				d.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
				d.Status.UpdatedReplicas = 3
			}, cache: cache, match: true},
		{name: "never rolled, nothing cached",
			stored: func(d *appsv1.Deployment) { delete(d.Annotations, target.RevisionAnnotation); d.Status.Replicas = 0 },
			match:  true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d *appsv1.Deployment
			if !tc.noStored {
				d = stored()
				if tc.stored != nil {
					tc.stored(d)
				}
			}
			NewWithT(t).Expect(target.ReplicaSetsMatchStatus(d, tc.cache)).To(Equal(tc.match))
		})
	}
}
