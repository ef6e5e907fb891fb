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

// TestAHeldDaemonSetServesTheTemplateRecordedWhenTheHoldBeganNeverAGuess: a DaemonSet
// on v1 held with OnDelete at admission for v2, then v3 held too, its pods still on v1:
// what serves (what a rollback restores) is v1, recorded when the hold began, not v2,
// the revision before v3. Without a record nothing serves: no revision number says what
// the pods run. A pod recreated on the held template does not make it one that ran,
// and once the hold is off, the template every pod runs serves.
func TestAHeldDaemonSetServesTheTemplateRecordedWhenTheHoldBeganNeverAGuess(t *testing.T) {
	g := NewWithT(t)
	ds := testbed.DaemonSet("shop", "agent", "agent:v1")
	ds.UID, ds.Generation = "uid-agent", 3
	v1 := daemonSetRevision(t, ds, "h1", 1)
	v1Hash := gate.TemplateHash(&ds.Spec.Template)
	ds.Spec.Template.Spec.Containers[0].Image = "agent:v2"
	v2 := daemonSetRevision(t, ds, "h2", 2)
	ds.Spec.Template.Spec.Containers[0].Image = "agent:v3"
	v3 := daemonSetRevision(t, ds, "h3", 3)
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	ds.Annotations = map[string]string{deployv1alpha1.HeldByAnnotation: deployv1alpha1.HeldByAdmission,
		deployv1alpha1.OwnerStrategyAnnotation:   `{"type":"RollingUpdate"}`,
		deployv1alpha1.HeldTemplateAnnotation:    gate.TemplateHash(&ds.Spec.Template),
		deployv1alpha1.ServingTemplateAnnotation: v1Hash}
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: 3, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3,
		NumberAvailable: 3, NumberReady: 3}
	revs := []appsv1.ControllerRevision{v3, v1, v2}

	st := target.DaemonSetState(ds, revs)
	g.Expect(st.Paused).To(BeTrue())
	g.Expect(st.Settled).To(BeTrue())
	g.Expect(st.Serving).NotTo(BeNil(), "the pods run the template recorded when the hold began")
	g.Expect(gate.Images(st.Serving)).To(Equal([]string{"agent:v1"}))
	g.Expect(st.ServingRevision).To(Equal("1"))
	g.Expect(st.ServingPodTemplateHash).To(Equal("h1"))
	g.Expect(st.TemplateImages).To(Equal([]string{"agent:v3"}))
	g.Expect(st.TemplateFirstRan.IsZero()).To(BeTrue(), "no pod ran v3")

	// A node's pod recreated on the held v3: v1 still serves, and v3 did not run.
	ds.Status.UpdatedNumberScheduled = 1
	recreated := target.DaemonSetState(ds, revs)
	g.Expect(recreated.Settled).To(BeTrue(), "OnDelete keeps every pod where it is")
	g.Expect(gate.Images(recreated.Serving)).To(Equal([]string{"agent:v1"}))
	g.Expect(recreated.TemplateFirstRan.IsZero()).To(BeTrue(), "a pod started under the hold is no run of v3")
	view := target.DaemonSetGateView(ds, ds, revs)
	g.Expect(view.Ran(gate.TemplateHash(&ds.Spec.Template))).To(BeFalse())
	g.Expect(view.Ran(v1Hash)).To(BeTrue())
	g.Expect(view.Settled()).To(BeTrue())
	pods, hash := target.HeldTemplateRunning(ds, revs)
	g.Expect(pods).To(Equal(int32(1)))
	g.Expect(hash).To(Equal("h3"))

	// No record (a hold from before it was kept): nothing serves, nothing is guessed.
	delete(ds.Annotations, deployv1alpha1.ServingTemplateAnnotation)
	ds.Status.UpdatedNumberScheduled = 0
	g.Expect(target.DaemonSetState(ds, revs).Serving).To(BeNil())

	// The hold off and rolled out: the template every pod runs serves.
	ds.Annotations = nil
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}
	ds.Status.UpdatedNumberScheduled = 3
	g.Expect(gate.Images(target.DaemonSetState(ds, revs).Serving)).To(Equal([]string{"agent:v3"}))
	g.Expect(target.DaemonSetServingTemplate(ds)).To(Equal(gate.TemplateHash(&ds.Spec.Template)),
		"what a hold beginning now records")
}
