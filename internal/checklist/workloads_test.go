package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// TestADeploymentAndAStatefulSetOfOneNameAreHeldEachByItsKindAndNamedByIt: a release of
// the Deployment web and the StatefulSet web holds each with its own kind's write
// (the action names the kind) and its events say which one they mean.
func TestADeploymentAndAStatefulSetOfOneNameAreHeldEachByItsKindAndNamedByIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Target = nil
		c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "web"}, {Kind: "StatefulSet", Name: "web"}}
	})
	d := run(c, Observations{Targets: []TargetState{servingV1(), servingV1()}}, t0.Add(-2*time.Minute))
	var kinds []string
	for _, a := range d.Actions {
		if a.Kind == ActionHold {
			kinds = append(kinds, a.Target+"/"+a.TargetKind)
		}
	}
	g.Expect(kinds).To(Equal([]string{"web/", "web/StatefulSet"}), `"" is a Deployment`)
	var msgs []string
	for _, e := range d.Events {
		if e.Reason == ReasonTargetPaused {
			msgs = append(msgs, e.Message)
		}
	}
	g.Expect(msgs).To(ConsistOf(
		ContainSubstring("paused Deployment web until"),
		ContainSubstring("held (rolling update partition) StatefulSet web until"),
	))
	g.Expect(c.Status.Targets).To(HaveLen(2))
	g.Expect(c.Status.Targets[1].Kind).To(Equal("StatefulSet"))
}

// TestATargetThatCannotBeGatedIsReportedAndNeverWrittenTo: a StatefulSet with the
// OnDelete strategy: the Ready condition says why, with a Warning event once, and the
// checklist neither captures nor holds anything.
func TestATargetThatCannotBeGatedIsReportedAndNeverWrittenTo(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Target = &deployv1alpha1.TargetRef{Kind: "StatefulSet", Name: "db"}
	})
	db := servingV1()
	db.NotGateable = "StatefulSet db uses the update strategy OnDelete"
	d := run(c, Observations{Targets: []TargetState{db}, Approvals: approved("deployment-lead")}, t0.Add(-2*time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(reasons(d.Events)).To(Equal([]string{ReasonTargetNotGateable}))
	g.Expect(c.Status.Targets).To(BeEmpty())
	ready := meta.FindStatusCondition(c.Status.Conditions, CondReady)
	g.Expect(ready).NotTo(BeNil())
	g.Expect(ready.Reason).To(Equal(ReasonTargetNotGateable))
	g.Expect(ready.Message).To(ContainSubstring("OnDelete"))

	d = run(c, Observations{Targets: []TargetState{db}, Approvals: approved("deployment-lead")}, t0.Add(-time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(d.Events).To(BeEmpty(), "reported once")
}
