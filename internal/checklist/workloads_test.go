package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// TestADeploymentStatefulSetAndDaemonSetOfOneNameAreHeldEachByItsKindAndNamedByIt: a
// release of the Deployment web, the StatefulSet web and the DaemonSet web holds each
// with its own kind's write (the action names the kind) and its events say which one
// they mean and how it is held.
func TestADeploymentStatefulSetAndDaemonSetOfOneNameAreHeldEachByItsKindAndNamedByIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Target = nil
		c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "web"}, {Kind: "StatefulSet", Name: "web"},
			{Kind: "DaemonSet", Name: "web"}}
	})
	d := run(c, Observations{Targets: []TargetState{servingV1(), servingV1(), servingV1()}}, t0.Add(-2*time.Minute))
	var kinds []string
	for _, a := range d.Actions {
		if a.Kind == ActionHold {
			kinds = append(kinds, a.Target+"/"+a.TargetKind)
		}
	}
	g.Expect(kinds).To(Equal([]string{"web/", "web/StatefulSet", "web/DaemonSet"}), `"" is a Deployment`)
	var msgs []string
	for _, e := range d.Events {
		if e.Reason == ReasonTargetPaused {
			msgs = append(msgs, e.Message)
		}
	}
	g.Expect(msgs).To(ConsistOf(
		ContainSubstring("paused Deployment web until"),
		ContainSubstring("held (rolling update partition) StatefulSet web until"),
		ContainSubstring("held (update strategy OnDelete) DaemonSet web until"),
	))
	g.Expect(c.Status.Targets).To(HaveLen(3))
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

// TestAStatefulSetsReleaseIsSaidOfTheStatefulSet: the events and answers of a release of
// the StatefulSet db name it a StatefulSet, not a Deployment: its rollout, a blocker
// live on it, and a rollback request that cannot be acted on.
func TestAStatefulSetsReleaseIsSaidOfTheStatefulSet(t *testing.T) {
	g := NewWithT(t)
	db := func(c *deployv1alpha1.DeploymentChecklist) {
		c.Name, c.Spec.Target = "db-v2", &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	}
	c := newChecklist(db)
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
		t0.Add(-time.Minute))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead")}, t0)
	var rolledOut []string
	for _, e := range d.Events {
		if e.Reason == ReasonRolloutAvailable {
			rolledOut = append(rolledOut, e.Message)
		}
	}
	g.Expect(rolledOut).To(Equal([]string{"StatefulSet db rolled out: 3 replicas available; T-plus phases count from now"}))

	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
		t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Blocker: "db-v3", Requests: rollbackBy("carol", "CVE")}, t0.Add(time.Hour))
	g.Expect(c.Status.Request.Message).To(ContainSubstring("checklist db-v3 is live on StatefulSet db"))

	blocked := newChecklist(db)
	run(blocked, Observations{Targets: []TargetState{servingV1()}, Blocker: "db-v1", BlockedOn: "db"}, t0.Add(-2*time.Minute))
	g.Expect(blocked.Status.NextAction).To(Equal("blocked: checklist db-v1 is live on StatefulSet db; this one starts when it ends"))
}
