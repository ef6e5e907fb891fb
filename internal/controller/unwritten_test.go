package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func storedChecklist(uid types.UID, phase deployv1alpha1.ChecklistPhase) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-v2", UID: uid},
		Status:     deployv1alpha1.DeploymentChecklistStatus{Phase: phase, NextAction: "evaluating"},
	}
}

func TestAnUnwrittenStatusIsUsedOnlyWhileTheStoredOneIsUnchanged(t *testing.T) {
	g := NewWithT(t)
	var u unwrittenStatuses
	latest := &deployv1alpha1.DeploymentChecklistStatus{Phase: deployv1alpha1.PhaseRunning, NextAction: "measured again"}

	u.keep(storedChecklist("a", deployv1alpha1.PhaseRunning), latest)
	got, ok := u.take(storedChecklist("a", deployv1alpha1.PhaseRunning))
	g.Expect(ok).To(BeTrue())
	g.Expect(got).To(Equal(latest))
	got.NextAction = "changed by the caller"
	again, _ := u.take(storedChecklist("a", deployv1alpha1.PhaseRunning))
	g.Expect(again.NextAction).To(Equal("measured again"), "take hands out a copy")

	// Another writer changed the stored status: what was remembered is dropped.
	_, ok = u.take(storedChecklist("a", deployv1alpha1.PhaseRolledBack))
	g.Expect(ok).To(BeFalse())
	_, ok = u.take(storedChecklist("a", deployv1alpha1.PhaseRunning))
	g.Expect(ok).To(BeFalse(), "dropped for good")

	// A checklist deleted and created again under the same name is another one.
	u.keep(storedChecklist("a", deployv1alpha1.PhaseRunning), latest)
	_, ok = u.take(storedChecklist("b", deployv1alpha1.PhaseRunning))
	g.Expect(ok).To(BeFalse())

	u.keep(storedChecklist("a", deployv1alpha1.PhaseRunning), latest)
	u.forget(types.NamespacedName{Namespace: "shop", Name: "checkout-v2"})
	_, ok = u.take(storedChecklist("a", deployv1alpha1.PhaseRunning))
	g.Expect(ok).To(BeFalse())
	g.Expect(u.m).To(BeEmpty())
}
