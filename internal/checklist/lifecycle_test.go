package checklist

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// The orders of events GitOps produces, one test each (docs/decisions.md, "The target's
// lifecycle").

func TestSignOffsCommittedUpFrontWaitForTheNewTemplateThenReleaseIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	obs := Observations{Targets: []TargetState{servingV1()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}

	// Everything passes at once, but the Deployment still holds v1: T-0 waits for the
	// new template instead of "releasing" the old one.
	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(c.Status.Targets[0].T0At).NotTo(BeNil())
	g.Expect(c.Status.Targets[0].ReleasedAt).To(BeNil())
	g.Expect(c.Status.NextAction).To(Equal("T-0 passed: waiting for the new template (Deployment checkout serves checkout:v1)"))
	g.Expect(condition(c, CondReconciling).Reason).To(Equal(ReasonWaitingForTemplate))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonWaitingForTemplate))
	// It paused the target on this same reconcile (hold before T-0): that pause comes
	// off at once, there being nothing to hold.
	held := servingV1()
	held.Paused, held.HeldBy = true, "checklist/checkout-v2"
	obs.Targets = []TargetState{held}
	d = run(c, obs, t0.Add(time.Second))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionResume}))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))

	// The pipeline pushes v2: released at once.
	pushed := servingV1()
	pushed.Template, pushed.TemplateHash, pushed.TemplateImages = template("checkout:v2"), "hash-v2", []string{"checkout:v2"}
	pushed.TemplateFirstRan = t0.Add(time.Minute)
	obs.Targets = []TargetState{pushed}
	d = run(c, obs, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(c.Status.Targets[0].ReleasedTemplateHash).To(Equal("hash-v2"))
	g.Expect(d.Actions).To(Equal([]Action{{Kind: ActionRelease, Target: "checkout", Revision: "v2", TemplateHash: "hash-v2"}}))
	g.Expect(reasons(d.Events)).To(ContainElements(ReasonCandidateSeen, ReasonReleased))

	// v2 rolls out and is verified: never v1.
	rolled := rolledOutTarget()
	rolled.TemplateFirstRan = t0.Add(time.Minute)
	run(c, Observations{Targets: []TargetState{rolled}}, t0.Add(2*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	run(c, Observations{Targets: []TargetState{rolled}, Metrics: errorRate(0.001, "0.001")}, t0.Add(7*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
}

func TestTheServingTemplateIsCapturedOnceWhenSettledAndNeverReplaced(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	rolling := servingV1()
	rolling.Settled, rolling.Serving, rolling.ServingHash = false, nil, ""
	rolling.UpdatedReplicas = 1

	// Between two ReplicaSets: reported and waited for, never guessed, never paused (a
	// pause would freeze both versions).
	d := run(c, Observations{Targets: []TargetState{rolling}}, t0)
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Targets).To(BeEmpty())
	g.Expect(condition(c, CondReconciling).Reason).To(Equal(ReasonTargetNotSettled))
	g.Expect(c.Status.NextAction).To(ContainSubstring("waiting for Deployment checkout to settle"))

	// Settled on v1: captured, and held.
	d = run(c, Observations{Targets: []TargetState{servingV1()}}, t0.Add(time.Second))
	g.Expect(c.Status.Targets[0].PreDeployTemplateHash).To(Equal("hash-v1"))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}))

	// v2 lands before the pause did (no admission gate) and rolls out completely: the
	// template to restore is still v1, and v2 is what the checklist releases.
	landed := rolledOutTarget()
	landed.TemplateFirstRan = t0.Add(2 * time.Second)
	run(c, Observations{Targets: []TargetState{landed}}, t0.Add(3*time.Second))
	g.Expect(c.Status.Targets[0].PreDeployTemplateHash).To(Equal("hash-v1"))
	g.Expect(string(c.Status.Targets[0].PreDeployTemplate.Raw)).To(ContainSubstring("checkout:v1"))
	g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(Equal("hash-v2"))
}

func TestANewPushBeforeT0ReplacesTheCandidateAndARevertWithdrawsIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0)
	g.Expect(c.Status.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2"}))

	v3 := heldTarget()
	v3.Template, v3.TemplateHash, v3.TemplateImages = template("checkout:v3"), "hash-v3", []string{"checkout:v3"}
	d := run(c, Observations{Targets: []TargetState{v3}}, t0.Add(time.Second))
	g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(Equal("hash-v3"))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonCandidateChanged))
	g.Expect(d.Events[0].Message).To(ContainSubstring("from checkout:v2 to checkout:v3"))

	reverted := servingV1()
	reverted.Paused, reverted.HeldBy = true, "checklist/checkout-v2"
	d = run(c, Observations{Targets: []TargetState{reverted}}, t0.Add(2*time.Second))
	g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(BeEmpty())
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonCandidateWithdrawn))
}

func TestAChangeHeldDuringVerificationIsReportedAndVerificationGoesOn(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	// v3 is pushed while v2 verifies; the admission gate held it: paused, no
	// ReplicaSet of it.
	held := rolledOutTarget()
	held.Paused, held.HeldBy = true, deployv1alpha1.HeldByAdmission
	held.Template, held.TemplateHash, held.TemplateImages = template("checkout:v3"), "hash-v3", []string{"checkout:v3"}
	held.TemplateFirstRan = time.Time{}

	d := run(c, Observations{Targets: []TargetState{held}, Metrics: errorRate(0.001, "0.001")}, t0.Add(time.Minute))
	g.Expect(d.Actions).To(BeEmpty(), "already held at admission")
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.Targets[0].HeldImages).To(Equal([]string{"checkout:v3"}))
	g.Expect(condition(c, CondHeldChange).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(c, CondHeldChange).Message).To(ContainSubstring("checkout:v3"))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonHeldChange))
	g.Expect(d.Events[0].Message).To(ContainSubstring("verification of the released template goes on"))

	// Verification of v2 goes on, on its own pods, to the end; v3 stays held.
	d = run(c, Observations{Targets: []TargetState{held}, Metrics: errorRate(0.001, "0.001")}, t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
	g.Expect(d.Actions).To(BeEmpty(), "the held change stays held")
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonHeldChange), "reported once")
}

func TestAChangeThatRollsDuringVerificationWithoutTheGateIsPausedAtOnce(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	moved := rolledOutTarget()
	moved.Template, moved.TemplateHash, moved.TemplateImages = template("checkout:v3"), "hash-v3", []string{"checkout:v3"}
	moved.TemplateFirstRan = t0.Add(time.Minute)
	d := run(c, Observations{Targets: []TargetState{moved}}, t0.Add(time.Minute))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}))
	g.Expect(d.Actions[0].Reason).To(ContainSubstring("checkout:v3) changed while checklist checkout-v2 verifies"))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))

	// Labelled gated=off (the break-glass): reported, not paused.
	c = releasedChecklist()
	moved.GateLabel = "off"
	d = run(c, Observations{Targets: []TargetState{moved}, AdmissionServed: true}, t0.Add(time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(condition(c, CondAdmissionGate).Reason).To(Equal(ReasonGateDisabled))
}

func TestAReleaseTakenBackOutsideTminusEndsTheChecklistWithoutVerifyingIt(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	d := run(c, Observations{Targets: []TargetState{restoredTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonReleaseWithdrawn))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonSucceeded))
}

func TestARollbackWithNothingToRestoreSaysSo(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withTriggerFor(""))
	// A brand-new Deployment, created held: nothing served when the checklist started.
	fresh := heldTarget()
	fresh.Serving, fresh.ServingHash, fresh.ServingRevision, fresh.AvailableReplicas, fresh.TotalReplicas = nil, "", "", 0, 0
	fresh.HeldBy = deployv1alpha1.HeldByAdmission
	run(c, Observations{Targets: []TargetState{fresh}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	g.Expect(c.Status.Targets[0].CapturedAt).NotTo(BeNil())
	g.Expect(c.Status.Targets[0].PreDeployTemplate).To(BeNil())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}}, t0)

	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed), "never RolledBack while the release serves")
	g.Expect(c.Status.Rollback.NothingToRestore).To(BeTrue())
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonNothingToRestore))
	g.Expect(condition(c, CondReady).Message).To(ContainSubstring("checkout:v2 still runs"))
	g.Expect(condition(c, CondRolledBack).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonNothingToRestore))
}

func TestAStaleProgressDeadlineDoesNotRollBackAtT0(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	stale := heldTarget()
	stale.ProgressDeadlineExceeded, stale.ProgressingSince = true, t0.Add(-time.Hour)
	run(c, Observations{Targets: []TargetState{stale}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))

	// Resumed: the Deployment controller has not seen the new generation yet, and the
	// condition is from before the release.
	resumed := stale
	resumed.Paused, resumed.Generation = false, 3
	run(c, Observations{Targets: []TargetState{resumed}}, t0.Add(time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	resumed.ObservedGeneration = 3
	run(c, Observations{Targets: []TargetState{resumed}}, t0.Add(2*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying), "a condition older than the release says nothing about it")

	// One that turned after the release does.
	resumed.ProgressingSince = t0.Add(10 * time.Minute)
	run(c, Observations{Targets: []TargetState{resumed}}, t0.Add(10*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Reason).To(Equal(ReasonRolloutStalled))
}

func TestASecondChecklistIsBlockedUntilTheFirstEndsAndTouchesNothing(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	obs := Observations{Targets: []TargetState{servingV1()}, Blocker: "checkout-v1", Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}
	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseBlocked))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Targets).To(BeEmpty(), "nothing captured")
	g.Expect(c.Status.NextAction).To(ContainSubstring("checklist checkout-v1 is live on Deployment checkout"))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonBlocked))
	g.Expect(reasons(d.Events)).To(Equal([]string{ReasonBlocked}))
	d = run(c, obs, t0.Add(time.Second))
	g.Expect(d.Events).To(BeEmpty(), "reported once")

	obs.Blocker = ""
	d = run(c, obs, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(c.Status.Targets[0].PreDeployTemplateHash).To(Equal("hash-v1"))
}

func TestARevisionAlreadyReleasedNeverTouchesTheTarget(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	// checkout-v2 was released, then the Deployment moved on to v3; Git re-applies the
	// old checklist with an empty status.
	moved := servingV1()
	moved.ReleasedRevisions = []string{"v3", "v2"}
	d := run(c, Observations{Targets: []TargetState{moved}, Approvals: approved("deployment-lead")}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonAlreadyReleased))
	g.Expect(d.Actions).To(BeEmpty(), "never pauses it again")
	g.Expect(c.Status.Targets).To(BeEmpty())
}

func TestAnOutageAcrossAPhaseDeadlineHoldsAndMovesTheDeadline(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	up := Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.02, "0.02")}
	down := Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: promDown}
	run(c, up, t0.Add(5*time.Minute)) // T+5m opens, fails its check for now
	// Prometheus goes down at +10m and stays down past the deadline (+15m).
	run(c, down, t0.Add(10*time.Minute))
	g.Expect(c.Status.Phases[1].UnavailableSince.Time).To(Equal(t0.Add(10 * time.Minute)))
	for _, at := range []time.Duration{15 * time.Minute, 20 * time.Minute, 30 * time.Minute} {
		d := run(c, down, t0.Add(at))
		g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying), "an outage is not a failure (at +%s)", at)
		g.Expect(d.Actions).To(BeEmpty())
	}
	g.Expect(condition(c, CondDegraded).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(c, CondDegraded).Reason).To(Equal(ReasonMeasurementsDown))

	// Back at +30m: the deadline moved by the 20m without answers, to +35m.
	run(c, up, t0.Add(30*time.Minute))
	g.Expect(c.Status.Phases[1].DeadlineExtendedBy).To(Equal("20m0s"))
	g.Expect(c.Status.Phases[1].UnavailableSince).To(BeNil())
	run(c, up, t0.Add(34*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	// A Fail at the moved deadline still rolls back.
	run(c, up, t0.Add(35*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
}

func TestARecoveredOutagePassesThePhase(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: noData}, t0.Add(5*time.Minute))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: promDown}, t0.Add(16*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(17*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
}

func TestARefusedJobIsReportedOnItsCheckAndTriedAgain(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withJobCheck(0))
	obs := Observations{Targets: []TargetState{heldTarget()}, Jobs: map[string]JobState{
		"T-10m/smoke": {Refused: `Job.batch "checkout-v2-tm10m-smoke" is invalid: spec.template.spec.containers: Required value`},
	}}
	d := run(c, obs, t0)
	cr := check(c, "T-10m", "smoke")
	g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomeError))
	g.Expect(cr.Message).To(ContainSubstring("the API server refused Job checkout-v2-tm10m-smoke: "))
	g.Expect(cr.Message).To(ContainSubstring("containers: Required value"))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonJobRefused))
	g.Expect(kinds(d.Actions)).To(ContainElement(ActionCreateJob))
	d = run(c, obs, t0.Add(30*time.Second))
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonJobRefused), "reported once")
}

func TestEventNotesFitWhatTheAPIServerKeeps(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		for i := range 15 {
			c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks, deployv1alpha1.CheckSpec{
				Name: "errors-" + strings.Repeat("x", 50) + string(rune('a'+i)), Metric: "error-rate", Below: new("0.01"),
			})
		}
	})
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.02, "0.02")}, t0.Add(5*time.Minute))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.02, "0.02")}, t0.Add(15*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(len(c.Status.Rollback.Message)).To(BeNumerically(">", MaxEventNote), "the message itself is whole in status")
	for _, e := range d.Events {
		g.Expect(len(e.Message)).To(BeNumerically("<=", MaxEventNote), e.Reason)
	}
	g.Expect(EventNote(strings.Repeat("é", 600))).To(HaveLen(MaxEventNote - 1))
}

func TestTheAdmissionGateConditionSaysWhetherChangesAreHeldAtAdmission(t *testing.T) {
	cases := []struct {
		served bool
		label  string
		gate   deployv1alpha1.GateMode
		status metav1.ConditionStatus
		reason string
	}{
		{true, "true", deployv1alpha1.GatePause, metav1.ConditionTrue, ReasonAdmitted},
		{true, "checklist", deployv1alpha1.GatePause, metav1.ConditionTrue, ReasonAdmitted},
		{true, "", deployv1alpha1.GatePause, metav1.ConditionFalse, ReasonNotGated},
		{true, "off", deployv1alpha1.GatePause, metav1.ConditionFalse, ReasonGateDisabled},
		{false, "true", deployv1alpha1.GatePause, metav1.ConditionFalse, ReasonWebhookNotServed},
		{true, "true", deployv1alpha1.GateObserve, metav1.ConditionFalse, ReasonGateObserve},
	}
	for _, tc := range cases {
		t.Run(tc.reason+"/"+tc.label, func(t *testing.T) {
			g := NewWithT(t)
			c := newChecklist(withGate(tc.gate))
			target := heldTarget()
			target.GateLabel = tc.label
			run(c, Observations{Targets: []TargetState{target}, AdmissionServed: tc.served}, t0)
			g.Expect(condition(c, CondAdmissionGate).Status).To(Equal(tc.status))
			g.Expect(condition(c, CondAdmissionGate).Reason).To(Equal(tc.reason))
		})
	}
}

func TestASignOffIsForTheTemplateItWasGivenFor(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withDeployAt(t0, "30m"))
	alice := approved("deployment-lead")
	alice["deployment-lead"][0].Key = "deployment-lead"
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: alice, Metrics: errorRate(0.001, "0.001")}
	run(c, obs, t0.Add(-10*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(c.Status.Approvals[0].CandidateImages).To(Equal([]string{"checkout:v2"}))

	// The held image is swapped after the sign-off: it no longer counts.
	swapped := heldTarget()
	swapped.Template, swapped.TemplateHash, swapped.TemplateImages = template("checkout:v2-evil"), "hash-evil", []string{"checkout:v2-evil"}
	obs.Targets = []TargetState{swapped}
	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).NotTo(Equal(deployv1alpha1.PhaseDeploying), "never released on a sign-off for another template")
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Approvals[0].NotCounted).To(ContainSubstring("given for checkout:v2, but the Deployment now holds checkout:v2-evil"))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonApprovalNotCounted))
	g.Expect(check(c, "T-10m", "lead").Message).To(ContainSubstring("no longer counts"))

	// Signed again, under a new annotation: it counts for the new template.
	alice["deployment-lead"][0].Key = "deployment-lead.alice-2"
	run(c, obs, t0.Add(time.Second))
	g.Expect(c.Status.Approvals[0].CandidateImages).To(Equal([]string{"checkout:v2-evil"}))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
}

func TestASignOffGivenBeforeTheImageIsForTheFirstImageThatArrives(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	obs := Observations{Targets: []TargetState{servingV1()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}
	run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(c.Status.Approvals[0].CandidateTemplateHash).To(BeEmpty())
	pushed := servingV1()
	pushed.Template, pushed.TemplateHash, pushed.TemplateImages = template("checkout:v2"), "hash-v2", []string{"checkout:v2"}
	obs.Targets = []TargetState{pushed}
	run(c, obs, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(c.Status.Approvals[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
}

func TestRequiredVerificationCountsOnlyVerifiedSignOffs(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	unverified := approved("deployment-lead")
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: unverified, Metrics: errorRate(0.001, "0.001"), RequireVerified: true}
	run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(c.Status.Approvals[0].NotCounted).To(ContainSubstring("not verified by the approval webhook"))
	g.Expect(check(c, "T-10m", "lead").Message).To(ContainSubstring("waiting for deployment-lead sign-off (0 of 1)"))

	unverified["deployment-lead"][0].Verified = true
	run(c, obs, t0.Add(time.Second))
	g.Expect(c.Status.Approvals[0].NotCounted).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
}

func TestAReleaseWhoseWriteWasLostIsWrittenAgainWhileItRollsOut(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	d := run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0)
	g.Expect(d.Actions).To(ContainElement(Action{Kind: ActionRelease, Target: "checkout", Revision: "v2", TemplateHash: "hash-v2"}))
	// The status was written, the Deployment's patch was not (it conflicted): the
	// Deployment rolls v2 (the fallback let it go) without the revision recorded.
	rolling := rolledOutTarget()
	rolling.UpdatedReplicas, rolling.ReleasedRevisions = 1, nil
	d = run(c, Observations{Targets: []TargetState{rolling}}, t0.Add(time.Second))
	g.Expect(d.Actions).To(Equal([]Action{{Kind: ActionRelease, Target: "checkout", Revision: "v2", TemplateHash: "hash-v2"}}))
	// Once recorded, never again.
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}}, t0.Add(2*time.Second))
	g.Expect(kinds(d.Actions)).NotTo(ContainElement(ActionRelease))
}

func TestAChecklistThatStartedWithoutSeeingTheOneThatComesFirstStopsAndTouchesNothing(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	// checkout-v2 starts alone: it captures v1 and holds the Deployment.
	obs := Observations{Targets: []TargetState{servingV1()}, Metrics: errorRate(0.001, "0.001")}
	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}))

	// checkout-v1, created in the same instant, comes first: its creation was seen
	// late. checkout-v2 stops, forgets what it captured and touches nothing.
	held := landed()
	obs.Targets, obs.Approvals, obs.Blocker = []TargetState{held}, approved("deployment-lead"), "checkout-v1"
	d = run(c, obs, t0.Add(time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseBlocked))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Targets).To(BeEmpty())
	g.Expect(c.Status.NextAction).To(ContainSubstring("checklist checkout-v1 is live on Deployment checkout"))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonBlocked))
	g.Expect(reasons(d.Events)).To(Equal([]string{ReasonBlocked}))
	for _, ph := range c.Status.Phases {
		g.Expect(ph.State).To(Equal(deployv1alpha1.PhaseStatePending), ph.Name)
	}
	// Also with every T-minus phase passed and the image there: it releases nothing.
	d = run(c, obs, t0.Add(time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(d.Events).To(BeEmpty(), "reported once")

	// checkout-v1 released the template it held and ended: checkout-v2 starts over
	// from what serves now.
	rolled := rolledOutTarget()
	rolled.ReleasedRevisions = []string{"v1"}
	obs.Targets, obs.Blocker = []TargetState{rolled}, ""
	run(c, obs, t0.Add(time.Hour))
	g.Expect(c.Status.Phase).NotTo(Equal(deployv1alpha1.PhaseBlocked))
	g.Expect(c.Status.Targets[0].PreDeployTemplateHash).To(Equal("hash-v2"))
}

func TestASignOffIsForTheTemplateHeldWhenTheWebhookAdmittedIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	obs := Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.001, "0.001"), RequireVerified: true}
	run(c, obs, t0.Add(-time.Minute))
	g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(Equal("hash-v2"))

	swapped := heldTarget()
	swapped.Template, swapped.TemplateHash, swapped.TemplateImages = template("checkout:v2-evil"), "hash-evil", []string{"checkout:v2-evil"}
	obs.Targets = []TargetState{swapped}
	obs.Approvals = map[string][]Approval{"deployment-lead": {{Key: "deployment-lead", Role: "deployment-lead", Approver: "alice",
		Revision: "v2", Verified: true, AdmittedTemplate: "hash-v2"}}}
	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).NotTo(Equal(deployv1alpha1.PhaseDeploying), "never released on a sign-off for another template")
	g.Expect(kinds(d.Actions)).NotTo(ContainElement(ActionRelease))
	g.Expect(c.Status.Approvals[0].CandidateTemplateHash).To(Equal("hash-v2"))
	g.Expect(c.Status.Approvals[0].NotCounted).To(Equal("given for the template Deployment checkout held when it was given (template hash-v2), " +
		"but the Deployment now holds checkout:v2-evil for release: sign again"))
	g.Expect(check(c, "T-10m", "lead").Outcome).To(Equal(deployv1alpha1.OutcomePending))

	// Given again with v2-evil held, it counts for v2-evil.
	obs.Approvals["deployment-lead"][0].Key, obs.Approvals["deployment-lead"][0].AdmittedTemplate = "deployment-lead.alice-2", "hash-evil"
	run(c, obs, t0.Add(time.Second))
	g.Expect(c.Status.Approvals[0].NotCounted).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
}

func TestASignOffAdmittedBeforeTheImageIsForTheFirstImageThatArrives(t *testing.T) {
	for _, admitted := range []string{"hash-v1", NoTemplate} {
		t.Run(admitted, func(t *testing.T) {
			g := NewWithT(t)
			c := newChecklist()
			obs := Observations{Targets: []TargetState{servingV1()}, Metrics: errorRate(0.001, "0.001"), RequireVerified: true}
			run(c, obs, t0.Add(-time.Minute))
			g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(BeEmpty())

			obs.Targets = []TargetState{heldTarget()}
			obs.Approvals = map[string][]Approval{"deployment-lead": {{Key: "deployment-lead", Role: "deployment-lead", Approver: "alice",
				Revision: "v2", Verified: true, AdmittedTemplate: admitted}}}
			run(c, obs, t0)
			g.Expect(c.Status.Approvals[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
			g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
		})
	}
}

// TestAChecklistThatReleasedGoesOnVerifyingWhateverAppearsBesideIt: a blocker reported
// for a checklist verifying its release (another checklist created in the same instant,
// seen late) must not make it forget its release: it keeps its target, its triggers
// and its verification, and rolls back on a breach as before.
func TestAChecklistThatReleasedGoesOnVerifyingWhateverAppearsBesideIt(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001"),
		Blocker: "checkout-v1"}, t0.Add(time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.Targets).NotTo(BeEmpty())
	g.Expect(c.Status.Targets[0].ReleasedTemplateHash).To(Equal("hash-v2"))
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonBlocked))
}
