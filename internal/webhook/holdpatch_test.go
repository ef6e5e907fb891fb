package webhook_test

import (
	"context"
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/testbed"
)

// TestAHoldKeepsPodSpecFieldsThisBuildDoesNotKnow: an API server newer than this
// build's k8s.io/api sends a Deployment whose pod spec holds fields our types do not
// have. The hold is a patch of spec.paused and tminus's annotations on the object as
// sent, so those fields are stored as the user wrote them. (This build's k8s.io/api
// matches the test bed's API server, which drops fields it does not know: so the
// request is the API server's as a newer one would send it, and the webhook answers
// it as the API server would call it, on the package's real caches.)
func TestAHoldKeepsPodSpecFieldsThisBuildDoesNotKnow(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := testbed.Deployment(ns, "checkout", "checkout:v2", 3)
	d.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	raw, err := json.Marshal(d)
	g.Expect(err).NotTo(HaveOccurred())
	var obj map[string]any
	g.Expect(json.Unmarshal(raw, &obj)).To(Succeed())
	podSpec := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	podSpec["workloadRef"] = map[string]any{"name": "checkout-gang", "podGroup": "workers"}
	podSpec["containers"].([]any)[0].(map[string]any)["futureProbe"] = map[string]any{"grpc": "ready"}
	raw, err = json.Marshal(obj)
	g.Expect(err).NotTo(HaveOccurred())

	h := &webhook.DeploymentGate{Reader: cached, Fresh: fresh, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("future"), Operation: admissionv1.Create, Namespace: ns, Name: "checkout",
		Object: runtime.RawExtension{Raw: raw},
	}})
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Patches).NotTo(BeEmpty(), "a new Deployment no checklist released is held")
	for _, op := range resp.Patches {
		g.Expect(op.Path).To(Or(Equal("/spec/paused"), HavePrefix("/metadata/annotations")), "the hold touches only what it sets")
	}

	ops, err := json.Marshal(resp.Patches)
	g.Expect(err).NotTo(HaveOccurred())
	patch, err := jsonpatch.DecodePatch(ops)
	g.Expect(err).NotTo(HaveOccurred())
	held, err := patch.Apply(raw)
	g.Expect(err).NotTo(HaveOccurred())
	var stored map[string]any
	g.Expect(json.Unmarshal(held, &stored)).To(Succeed())
	storedSpec := stored["spec"].(map[string]any)
	g.Expect(storedSpec["paused"]).To(BeTrue())
	g.Expect(storedSpec["template"].(map[string]any)["spec"]).To(HaveKeyWithValue("workloadRef",
		map[string]any{"name": "checkout-gang", "podGroup": "workers"}))
	g.Expect(storedSpec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0]).
		To(HaveKeyWithValue("futureProbe", map[string]any{"grpc": "ready"}))
	g.Expect(stored["metadata"].(map[string]any)["annotations"]).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
	g.Expect(stored["metadata"].(map[string]any)["labels"]).To(HaveKeyWithValue(deployv1alpha1.GatedLabel, deployv1alpha1.GatedByUser))
}
