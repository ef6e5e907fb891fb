package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/freeze"
)

// holidays is a freeze from an hour before t0 to 30 minutes after it.
func holidays(exceptionRole string) []freeze.Freeze {
	return []freeze.Freeze{{Kind: "ClusterChangeFreeze", Name: "holidays", Spec: deployv1alpha1.ChangeFreezeSpec{
		Reason: "holiday freeze", ExceptionRole: exceptionRole, ExceptionCount: 2,
		Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(t0.Add(-time.Hour))),
			End: new(metav1.NewTime(t0.Add(30 * time.Minute)))}}}}}
}

func TestAReleaseHeldByAFreezeStartsWhenTheFreezeEnds(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001"),
		Freezes: holidays("")}

	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(c.Status.Targets[0].T0At).To(BeNil(), "T-0 never happens inside a freeze")
	g.Expect(kinds(d.Actions)).NotTo(ContainElement(ActionRelease))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonFrozen))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonFrozen))
	frozen := condition(c, CondFrozen)
	g.Expect(frozen.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(frozen.Message).To(Equal("T-0 held: ClusterChangeFreeze holidays (holiday freeze) is in force until " +
		"2026-11-26T20:30:00Z; it has no break-glass"))
	g.Expect(c.Status.NextActionAt.Time).To(Equal(t0.Add(30 * time.Minute)))

	// Held again a minute later: the same story, no new event.
	d = run(c, obs, t0.Add(time.Minute))
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonFrozen))

	d = run(c, obs, t0.Add(30*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(d.Actions).To(ContainElement(Action{Kind: ActionRelease, Target: "checkout", Revision: "v2", TemplateHash: "hash-v2"}))
	g.Expect(condition(c, CondFrozen).Reason).To(Equal(ReasonNotFrozen))
	g.Expect(c.Status.BreakGlass).To(BeNil())
}

func TestABreakGlassNeedsTwoCountedSignOffsOfTheExceptionRoleAndAReason(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	approvals := approved("deployment-lead")
	approvals["release-manager"] = []Approval{
		{Role: "release-manager", Approver: "carol", Revision: "v2", Verified: true},
		{Role: "release-manager", Approver: "dave", Revision: "v2", Verified: false},
	}
	approvals["deployment-lead"][0].Verified = true
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approvals, Metrics: errorRate(0.001, "0.001"),
		Freezes: holidays("release-manager"), RequireVerified: true}

	// dave's sign-off was not verified by the webhook: one of two.
	run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(condition(c, CondFrozen).Message).To(ContainSubstring(
		"break-glass: 1 of 2 sign-offs of release-manager, and the annotation deploy.tminus.dev/break-glass-reason"))

	// Two verified, but nobody said why.
	approvals["release-manager"][1].Verified = true
	run(c, obs, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(condition(c, CondFrozen).Message).To(ContainSubstring("the checklist has no annotation " +
		"deploy.tminus.dev/break-glass-reason saying why"))

	c.Annotations = map[string]string{deployv1alpha1.BreakGlassReasonAnnotation: "INC-4211: fix for checkout outage"}
	d := run(c, obs, t0.Add(2*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(c.Status.BreakGlass).To(Equal(&deployv1alpha1.BreakGlassRecord{
		Freezes: []string{"ClusterChangeFreeze holidays (holiday freeze)"}, Reason: "INC-4211: fix for checkout outage",
		Approvers: []string{"carol", "dave"}, At: metav1.NewTime(t0.Add(2 * time.Minute))}))
	g.Expect(d.Events).To(ContainElement(Event{Type: corev1.EventTypeWarning, Reason: ReasonFreezeBroken,
		Message: "T-0 during ClusterChangeFreeze holidays (holiday freeze): break-glass by carol, dave: " +
			"INC-4211: fix for checkout outage"}))
	g.Expect(condition(c, CondFrozen).Reason).To(Equal(ReasonFreezeBroken))
}

func TestADeployAtInsideAFreezeIsReportedWhenTheChecklistIsCreated(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withDeployAt(t0.Add(10*time.Minute), "2h"))
	obs := Observations{Targets: []TargetState{heldTarget()}, Freezes: holidays("")}
	d := run(c, obs, t0.Add(-2*time.Hour))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonDeployAtInFreeze))
	frozen := condition(c, CondFrozen)
	g.Expect(frozen.Reason).To(Equal(ReasonDeployAtInFreeze))
	g.Expect(frozen.Message).To(Equal("deployAt 2026-11-26T20:10:00Z falls in a change freeze: ClusterChangeFreeze " +
		"holidays (holiday freeze) is in force until 2026-11-26T20:30:00Z; T-0 waits for it to end, or a break-glass"))
}

func TestAReleaseOutsideItsAllowedWindowWaitsForTheWindowToOpen(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	// t0 is Thursday 26 November 2026, 21:00 in Berlin: after hours.
	allow := []freeze.Freeze{{Kind: "ChangeFreeze", Name: "shop/business-hours", Spec: deployv1alpha1.ChangeFreezeSpec{
		Mode: deployv1alpha1.FreezeModeAllow, Reason: "releases Mon-Thu 09:00-16:00",
		Windows: []deployv1alpha1.FreezeWindow{{Cron: "0 9 * * 1-4", Duration: "7h", TimeZone: "Europe/Berlin"}}}}}
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001"),
		Freezes: allow}
	run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(condition(c, CondFrozen).Message).To(ContainSubstring("the next opens at 2026-11-30T08:00:00Z"))
	g.Expect(c.Status.NextActionAt.Time).To(Equal(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)))
	run(c, obs, time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
}

func TestAFreezeNeverStopsVerificationNorARollback(t *testing.T) {
	g := NewWithT(t)
	// An incident freeze declared while the release verifies: verification goes on.
	c := releasedChecklist()
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001"), Freezes: holidays("")},
		t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))

	// A breach during a freeze rolls back.
	c = releasedChecklist()
	obs := Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07"), Freezes: holidays("")}
	run(c, obs, t0.Add(time.Minute))
	d := run(c, obs, t0.Add(3*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(kinds(d.Actions)).To(ContainElement(ActionRestore))
}

// landed is the Deployment serving v1 with v2 pushed while tminus holds it paused: v2
// never ran.
func landed() TargetState {
	t := servingV1()
	t.Paused, t.HeldBy = true, "checklist/checkout-v2"
	t.Template, t.TemplateHash, t.TemplateImages = template("checkout:v2"), "hash-v2", []string{"checkout:v2"}
	t.TemplateFirstRan = time.Time{}
	return t
}

func TestAFreezeThatStartsWhileT0WaitsForTheImageHoldsTheImageThatLandsInIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	// A freeze declared ahead, from 10 to 40 minutes after T-0.
	later := []freeze.Freeze{{Kind: "ChangeFreeze", Name: "shop/incident", Spec: deployv1alpha1.ChangeFreezeSpec{
		Reason: "INC-4211", Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(t0.Add(10 * time.Minute))),
			End: new(metav1.NewTime(t0.Add(40 * time.Minute)))}}}}}
	obs := Observations{Targets: []TargetState{servingV1()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001"),
		Freezes: later}

	// T-0 passes while the image is still being built: nothing to release yet. It looks
	// again when the freeze starts.
	run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(condition(c, CondReconciling).Reason).To(Equal(ReasonWaitingForTemplate))
	g.Expect(c.Status.NextActionAt.Time).To(Equal(t0.Add(10 * time.Minute)))

	// The freeze starts: T-0 is taken back and the Deployment held again, so the image
	// cannot land unpaused.
	d := run(c, obs, t0.Add(10*time.Minute))
	g.Expect(c.Status.Targets[0].T0At).To(BeNil())
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonFrozen))
	g.Expect(condition(c, CondReconciling).Reason).To(Equal(ReasonFrozen))
	g.Expect(condition(c, CondFrozen).Status).To(Equal(metav1.ConditionTrue))

	// The image lands in the freeze: it is the candidate, held, not released.
	obs.Targets = []TargetState{landed()}
	d = run(c, obs, t0.Add(15*time.Minute))
	g.Expect(c.Status.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
	g.Expect(kinds(d.Actions)).NotTo(ContainElement(ActionRelease))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonFrozen))
	g.Expect(condition(c, CondFrozen).Message).To(ContainSubstring("ChangeFreeze shop/incident (INC-4211)"))
	g.Expect(c.Status.NextActionAt.Time).To(Equal(t0.Add(40 * time.Minute)))

	// The freeze ends: released.
	d = run(c, obs, t0.Add(40*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(d.Actions).To(ContainElement(Action{Kind: ActionRelease, Target: "checkout", Revision: "v2", TemplateHash: "hash-v2"}))
	g.Expect(condition(c, CondFrozen).Reason).To(Equal(ReasonNotFrozen))
}

func TestAnImageThatLandsAfterItsAllowedWindowClosedWaitsForTheNextOne(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	allow := []freeze.Freeze{{Kind: "ChangeFreeze", Name: "shop/business-hours", Spec: deployv1alpha1.ChangeFreezeSpec{
		Mode: deployv1alpha1.FreezeModeAllow, Reason: "releases Mon-Thu 09:00-16:00",
		Windows: []deployv1alpha1.FreezeWindow{{Cron: "0 9 * * 1-4", Duration: "7h", TimeZone: "Europe/Berlin"}}}}}
	obs := Observations{Targets: []TargetState{servingV1()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001"),
		Freezes: allow}
	// Thursday 10:00 in Berlin: T-0, inside the window, without the image.
	thursday := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	run(c, obs, thursday)
	g.Expect(condition(c, CondReconciling).Reason).To(Equal(ReasonWaitingForTemplate))
	closes := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	g.Expect(c.Status.NextActionAt.Time).To(Equal(closes))

	// The window closes; the image lands at 17:00 in Berlin.
	d := run(c, obs, closes)
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}))
	obs.Targets = []TargetState{landed()}
	d = run(c, obs, closes.Add(time.Hour))
	g.Expect(kinds(d.Actions)).NotTo(ContainElement(ActionRelease))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonFrozen))

	// Monday 09:00 in Berlin: released.
	d = run(c, obs, time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	g.Expect(d.Actions).To(ContainElement(Action{Kind: ActionRelease, Target: "checkout", Revision: "v2", TemplateHash: "hash-v2"}))
}
