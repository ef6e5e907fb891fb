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

// revision is the ControllerRevision the StatefulSet controller keeps of s's template.
func revision(t *testing.T, s *appsv1.StatefulSet, name string, number int64) appsv1.ControllerRevision {
	t.Helper()
	tmpl := s.Spec.Template.DeepCopy()
	raw, err := json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
	if err != nil {
		t.Fatal(err)
	}
	return appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: s.Name, UID: s.UID,
				Controller: new(true)}}},
		Data:     runtime.RawExtension{Raw: raw},
		Revision: number,
	}
}

// TestAHeldStatefulSetIsSettledOnTheRevisionItsPodsRunAndItsNewTemplateNeverRan: a
// StatefulSet held at the partition with a new template: what serves is its current
// revision's template (what a rollback restores), the new template has not run (its
// revision exists, no pod took it), and the gate sees it held.
func TestAHeldStatefulSetIsSettledOnTheRevisionItsPodsRunAndItsNewTemplateNeverRan(t *testing.T) {
	g := NewWithT(t)
	s := testbed.StatefulSet("shop", "db", "db:v1", 3)
	s.UID, s.Generation = "uid-db", 2
	v1 := revision(t, s, "db-v1", 1)
	s.Spec.Template.Spec.Containers[0].Image = "db:v2"
	v2 := revision(t, s, "db-v2", 2)
	s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(deployv1alpha1.HoldPartition)}
	s.Annotations = map[string]string{deployv1alpha1.HeldByAnnotation: "admission"}
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 3, CurrentReplicas: 3, AvailableReplicas: 3,
		CurrentRevision: "db-v1", UpdateRevision: "db-v2"}

	st := target.StatefulSetState(s, []appsv1.ControllerRevision{v1, v2})
	g.Expect(st.Paused).To(BeTrue())
	g.Expect(st.Settled).To(BeTrue())
	g.Expect(st.Serving).NotTo(BeNil())
	g.Expect(gate.Images(st.Serving)).To(Equal([]string{"db:v1"}))
	g.Expect(st.TemplateImages).To(Equal([]string{"db:v2"}))
	g.Expect(st.TemplateFirstRan.IsZero()).To(BeTrue(), "no pod ran v2")
	g.Expect(st.NotGateable).To(BeEmpty())

	view := target.StatefulSetGateView(s, []appsv1.ControllerRevision{v1, v2})
	g.Expect(view.Paused).To(BeTrue())
	g.Expect(view.Ran(view.TemplateHash)).To(BeFalse())
	g.Expect(view.Ran(st.ServingHash)).To(BeTrue())
	g.Expect(view.Settled()).To(BeTrue())

	// Half rolled: not settled, and the gate says so too.
	s.Status.UpdatedReplicas, s.Status.CurrentReplicas = 1, 2
	g.Expect(target.StatefulSetState(s, []appsv1.ControllerRevision{v1, v2}).Settled).To(BeFalse())
	mid := target.StatefulSetGateView(s, []appsv1.ControllerRevision{v1, v2})
	g.Expect(mid.Settled()).To(BeFalse())

	s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	g.Expect(target.StatefulSetState(s, nil).NotGateable).To(ContainSubstring("OnDelete"))
}
