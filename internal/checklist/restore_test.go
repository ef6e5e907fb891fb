package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// TestARolledBackChecklistNeverFightsALaterRelease: the restore did not land (held, or
// the manager was down); a later checklist is created and goes live on the target. The
// ended checklist writes nothing while it lives, and nothing once it released another
// template either: the rolled-back release no longer serves.
func TestARolledBackChecklistNeverFightsALaterRelease(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))

	// checkout-v3 is live on the target now: it holds it until its own T-0.
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Blocker: "checkout-v3"}, t0.Add(2*time.Minute))
	g.Expect(d.Actions).To(BeEmpty(), "a terminal checklist with a live blocker issues nothing")
	g.Expect(c.Status.NextAction).To(ContainSubstring("checklist checkout-v3 is live on Deployment checkout"))

	// checkout-v3 released v3 and ended: v3 serves.
	v3 := rolledOutTarget()
	v3.Template, v3.TemplateHash, v3.TemplateImages = template("checkout:v3"), "hash-v3", []string{"checkout:v3"}
	v3.Serving, v3.ServingHash = template("checkout:v3"), "hash-v3"
	d = run(c, Observations{Targets: []TargetState{v3}}, t0.Add(time.Hour))
	g.Expect(d.Actions).To(BeEmpty(), "v3 is not rolled back to v1 by a checklist that ended before it")
	g.Expect(c.Status.NextAction).To(ContainSubstring("moved on to checkout:v3"))
	g.Expect(c.Status.Targets[0].RestoredAt).To(BeNil(), "never reported restored")
}

// TestAChangeHeldOverTheRolledBackReleaseDoesNotStopTheRestore: v3 was pushed during
// verification and held (never ran); the release is rolled back: v2 still serves, so
// the restore goes on.
func TestAChangeHeldOverTheRolledBackReleaseDoesNotStopTheRestore(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	held := rolledOutTarget()
	held.Paused, held.HeldBy = true, deployv1alpha1.HeldByAdmission
	held.Template, held.TemplateHash, held.TemplateImages = template("checkout:v3"), "hash-v3", []string{"checkout:v3"}
	d := run(c, Observations{Targets: []TargetState{held}}, t0.Add(2*time.Minute))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
}
