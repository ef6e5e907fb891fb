package webhook_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/webhook"
)

// laggingCache is a webhook replica's cache that has not seen the latest checklist
// writes: it answers the checklists as they were when it froze, everything else from
// the package manager's cache.
type laggingCache struct {
	client.Reader
	checklists []deployv1alpha1.DeploymentChecklist
}

func (r *laggingCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*deployv1alpha1.DeploymentChecklistList); ok {
		l.Items = nil
		for i := range r.checklists {
			l.Items = append(l.Items, *r.checklists[i].DeepCopy())
		}
		return nil
	}
	return r.Reader.List(ctx, list, opts...)
}

// updateRequest is the admission request of a write of cur over old, as the API server
// sends it.
func updateRequest(t testing.TB, old, cur *appsv1.Deployment) admission.Request {
	t.Helper()
	raw := func(o runtime.Object) runtime.RawExtension {
		j, err := json.Marshal(o)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		return runtime.RawExtension{Raw: j}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("write"), Operation: admissionv1.Update, Namespace: cur.Namespace, Name: cur.Name,
		Object: raw(cur), OldObject: raw(old),
	}}
}

// TestAReplicaWhoseCacheStillShowsTheReleaseVerifyingRefusesTheTemplateJustRolledBack:
// v2 is released and verifying; one webhook replica's cache stops there. tminus rolls
// v2 back (status written, v1 restored). Argo CD's self-heal writes v2 again and the
// write reaches the lagging replica, whose cache still shows v2 as the verifying
// checklist's release: the Deployment's own mark, written with the restore, refuses it.
func TestAReplicaWhoseCacheStillShowsTheReleaseVerifyingRefusesTheTemplateJustRolledBack(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	verifying := waitFor(t, c, deployv1alpha1.PhaseVerifying)
	lagging := &webhook.DeploymentGate{
		Reader:  &laggingCache{Reader: cached, checklists: []deployv1alpha1.DeploymentChecklist{*verifying}},
		Fresh:   fresh,
		Decoder: admission.NewDecoder(bed.Client.Scheme()),
	}

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	var restored *appsv1.Deployment
	g.Eventually(func(g Gomega) []string {
		restored = get(t, d)
		return []string{restored.Spec.Template.Spec.Containers[0].Image}
	}, time.Minute, 100*time.Millisecond).Should(Equal([]string{"checkout:v1"}))

	selfHeal := restored.DeepCopy()
	selfHeal.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
	resp := lagging.Handle(ctx, updateRequest(t, restored, selfHeal))
	g.Expect(resp.Allowed).To(BeFalse(), "the rolled-back template is refused on the lagging replica too")
	g.Expect(resp.Result.Message).To(ContainSubstring("rolled back by checklist checkout-v2"))
}
