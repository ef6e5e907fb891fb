package target_test

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
	"github.com/tminus-dev/tminus/test/testbed"
)

// daemonSetRevision is the ControllerRevision the DaemonSet controller keeps of ds's
// template, with the hash its pods are labelled with.
func daemonSetRevision(t *testing.T, ds *appsv1.DaemonSet, hash string, number int64) appsv1.ControllerRevision {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"spec": map[string]any{"template": ds.Spec.Template.DeepCopy()}})
	if err != nil {
		t.Fatal(err)
	}
	return appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: ds.Name + "-" + hash, Namespace: ds.Namespace,
			Labels: map[string]string{appsv1.DefaultDaemonSetUniqueLabelKey: hash},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID,
				Controller: new(true)}}},
		Data:     runtime.RawExtension{Raw: raw},
		Revision: number,
	}
}

// TestAHeldDaemonSetServesTheRevisionBeforeItsNewTemplate: a DaemonSet held with
// OnDelete at admission, its new template on no node: what serves (what a rollback
// restores) is the revision before the template's, not nothing; one created held has
// no revision before its template and serves nothing.
func TestAHeldDaemonSetServesTheRevisionBeforeItsNewTemplate(t *testing.T) {
	g := NewWithT(t)
	ds := testbed.DaemonSet("shop", "agent", "agent:v0")
	ds.UID, ds.Generation = "uid-agent", 3
	v0 := daemonSetRevision(t, ds, "h0", 1)
	ds.Spec.Template.Spec.Containers[0].Image = "agent:v1"
	v1 := daemonSetRevision(t, ds, "h1", 2)
	ds.Spec.Template.Spec.Containers[0].Image = "agent:v2"
	v2 := daemonSetRevision(t, ds, "h2", 3)
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	ds.Annotations = map[string]string{deployv1alpha1.HeldByAnnotation: deployv1alpha1.HeldByAdmission,
		deployv1alpha1.OwnerStrategyAnnotation: `{"type":"RollingUpdate"}`}
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: 3, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3,
		NumberAvailable: 3, NumberReady: 3}

	st := target.DaemonSetState(ds, []appsv1.ControllerRevision{v2, v0, v1})
	g.Expect(st.Paused).To(BeTrue())
	g.Expect(st.Settled).To(BeTrue())
	g.Expect(st.Serving).NotTo(BeNil(), "the pods run the revision before the held template")
	g.Expect(gate.Images(st.Serving)).To(Equal([]string{"agent:v1"}))
	g.Expect(st.ServingRevision).To(Equal("2"))
	g.Expect(st.ServingPodTemplateHash).To(Equal("h1"))
	g.Expect(st.TemplateImages).To(Equal([]string{"agent:v2"}))
	g.Expect(st.TemplateFirstRan.IsZero()).To(BeTrue(), "no pod ran v2")

	// A node's pod down: the others still run v1, which is what a rollback restores.
	ds.Status.NumberAvailable, ds.Status.NumberUnavailable = 2, 1
	g.Expect(gate.Images(target.DaemonSetState(ds, []appsv1.ControllerRevision{v0, v1, v2}).Serving)).To(Equal([]string{"agent:v1"}))
	ds.Status.NumberAvailable, ds.Status.NumberUnavailable = 3, 0

	// Rolled out: the template serves.
	ds.Status.UpdatedNumberScheduled = 3
	g.Expect(gate.Images(target.DaemonSetState(ds, []appsv1.ControllerRevision{v0, v1, v2}).Serving)).To(Equal([]string{"agent:v2"}))

	// Created held: its only revision is its template's, and nothing served before it.
	ds.Status.UpdatedNumberScheduled = 0
	created := target.DaemonSetState(ds, []appsv1.ControllerRevision{v2})
	g.Expect(created.Settled).To(BeTrue())
	g.Expect(created.Serving).To(BeNil())
}
