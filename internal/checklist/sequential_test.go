package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// backendThenFrontend is a release of the backend, then the frontend, one after the
// other (spec.release.order Sequential).
func backendThenFrontend(c *deployv1alpha1.DeploymentChecklist) {
	c.Spec.Target = nil
	c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "backend"}, {Kind: "Deployment", Name: "frontend"}}
	c.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: deployv1alpha1.ReleaseSequential}
}

// TestASequentialReleaseReleasesTheFrontendOnlyOnceTheBackendRolledOut: both hold a
// new template; T-0 releases the backend alone (status.releasing names it) and keeps
// the frontend held; while the backend rolls out the frontend waits; once the backend
// is available the frontend is released, and once it is available too the release
// verifies, with nothing releasing any more.
func TestASequentialReleaseReleasesTheFrontendOnlyOnceTheBackendRolledOut(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(backendThenFrontend)
	two := func(a, b TargetState) []TargetState { return []TargetState{a, b} }
	d := run(c, Observations{Targets: two(heldTarget(), heldTarget()), Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	g.Expect(actionsOn(d, ActionRelease)).To(Equal([]string{"backend"}), "the backend first")
	g.Expect(actionsOn(d, ActionResume)).To(BeEmpty(), "the frontend stays held")
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(c.Status.Releasing).To(Equal("backend"))
	g.Expect(c.TargetStatusOf("frontend").ReleasedTemplateHash).To(BeEmpty())

	rolling := heldTarget()
	rolling.Paused, rolling.HeldBy, rolling.Generation, rolling.ObservedGeneration, rolling.UpdatedReplicas = false, "", 3, 3, 1
	rolling.Settled, rolling.ReleasedRevisions = false, []string{"v2"}
	d = run(c, Observations{Targets: two(rolling, heldTarget())}, t0.Add(-30*time.Second))
	g.Expect(actionsOn(d, ActionRelease)).To(BeEmpty(), "the frontend waits for the backend's rollout")
	g.Expect(c.Status.NextAction).To(ContainSubstring("then Deployment frontend"))

	d = run(c, Observations{Targets: two(rolledOutTarget(), heldTarget())}, t0)
	g.Expect(actionsOn(d, ActionRelease)).To(Equal([]string{"frontend"}))
	g.Expect(c.Status.Releasing).To(Equal("frontend"))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))

	run(c, Observations{Targets: two(rolledOutTarget(), rolledOutTarget())}, t0.Add(time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.Releasing).To(BeEmpty())
}

// TestABackendBreachBeforeTheFrontendsTurnRestoresTheBackendOnly: the backend rolled
// out and breaches while the frontend still waits: the backend alone is restored, the
// rollback says the frontend was not released, and the frontend's new template stays
// held (in the admission's name) for a checklist of its own.
func TestABackendBreachBeforeTheFrontendsTurnRestoresTheBackendOnly(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(backendThenFrontend)
	run(c, Observations{Targets: []TargetState{heldTarget(), heldTarget()}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	rolling := rolledOutTarget()
	rolling.AvailableReplicas = 1
	obs := func() Observations {
		return Observations{Targets: []TargetState{rolling, heldTarget()}, Metrics: errorRate(0.09, "0.09")}
	}
	run(c, obs(), t0)
	d := run(c, obs(), t0.Add(2*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(actionsOn(d, ActionRestore)).To(Equal([]string{"backend"}))
	g.Expect(actionsOn(d, ActionRelease)).To(BeEmpty())
	g.Expect(actionsOn(d, ActionResume)).To(BeEmpty(), "the frontend's new template never ran: it stays held")
	g.Expect(actionsOn(d, ActionHold)).To(Equal([]string{"frontend"}))
	var note string
	for _, ev := range d.Events {
		if ev.Reason == ReasonRolledBack {
			note = ev.Message
		}
	}
	g.Expect(note).To(ContainSubstring("Deployment frontend was not released"))
	g.Expect(c.Status.Releasing).To(BeEmpty())
}

// TestASequentialReleasePassesOverATargetThatDidNotChange: only the frontend (second)
// got a new template; at T-0 the backend's pause comes off and the frontend is
// released at once.
func TestASequentialReleasePassesOverATargetThatDidNotChange(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(backendThenFrontend)
	backend := servingV1()
	backend.Paused, backend.HeldBy = true, "checklist/checkout-v2"
	d := run(c, Observations{Targets: []TargetState{backend, heldTarget()}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	g.Expect(actionsOn(d, ActionResume)).To(Equal([]string{"backend"}))
	g.Expect(actionsOn(d, ActionRelease)).To(Equal([]string{"frontend"}))
	g.Expect(c.Status.Releasing).To(Equal("frontend"))
	g.Expect(c.TargetStatusOf("backend").ReleasedTemplateHash).To(BeEmpty())
}

// TestAWaitingTargetsNewTemplateIsFollowedAndReleasedAtItsTurn: the frontend had
// nothing new at T-0; its new template arrives while the backend rolls out: it becomes
// the frontend's candidate, and a frontend found resumed is held again until its turn.
func TestAWaitingTargetsNewTemplateIsFollowedAndReleasedAtItsTurn(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(backendThenFrontend)
	frontend := servingV1()
	frontend.Paused, frontend.HeldBy = true, "checklist/checkout-v2"
	run(c, Observations{Targets: []TargetState{heldTarget(), frontend}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	g.Expect(c.Status.Releasing).To(Equal("backend"))
	rolling := rolledOutTarget()
	rolling.AvailableReplicas = 1
	arrived := heldTarget()
	arrived.Paused, arrived.HeldBy = false, ""
	d := run(c, Observations{Targets: []TargetState{rolling, arrived}}, t0)
	g.Expect(c.TargetStatusOf("frontend").CandidateTemplateHash).To(Equal("hash-v2"))
	g.Expect(actionsOn(d, ActionHold)).To(Equal([]string{"frontend"}))
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget(), heldTarget()}}, t0.Add(time.Second))
	g.Expect(actionsOn(d, ActionRelease)).To(Equal([]string{"frontend"}))
}
