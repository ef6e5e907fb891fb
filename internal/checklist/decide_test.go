package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func condition(c *deployv1alpha1.DeploymentChecklist, typ string) metav1.Condition {
	if cond := meta.FindStatusCondition(c.Status.Conditions, typ); cond != nil {
		return *cond
	}
	return metav1.Condition{}
}

func check(c *deployv1alpha1.DeploymentChecklist, phase, name string) deployv1alpha1.CheckStatus {
	for _, p := range c.Status.Phases {
		if p.Name == phase {
			for _, ch := range p.Checks {
				if ch.Name == name {
					return ch
				}
			}
		}
	}
	return deployv1alpha1.CheckStatus{}
}

func phaseState(c *deployv1alpha1.DeploymentChecklist, phase string) deployv1alpha1.PhaseState {
	for _, p := range c.Status.Phases {
		if p.Name == phase {
			return p.State
		}
	}
	return ""
}

func TestFirstReconcilePausesTheTargetRecordsItsTemplateAndOpensTheFirstPhase(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	target := heldTarget()
	target.Paused = false
	d := run(c, Observations{Targets: []TargetState{target}}, t0)

	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}))
	g.Expect(d.Actions[0].Reason).To(Equal("held by checklist checkout-v2 until T-0"))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(c.Status.CurrentPhase).To(Equal("T-10m"))
	g.Expect(phaseState(c, "T-10m")).To(Equal(deployv1alpha1.PhaseStateOpen))
	g.Expect(phaseState(c, "T+5m")).To(Equal(deployv1alpha1.PhaseStatePending))
	g.Expect(c.Status.Targets[0].PreDeployTemplateHash).To(Equal("hash-v1"))
	g.Expect(string(c.Status.Targets[0].PreDeployTemplate.Raw)).To(ContainSubstring("checkout:v1"))
	g.Expect(c.Status.Targets[0].PreDeployImages).To(Equal([]string{"checkout:v1"}))
	g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(Equal("hash-v2"), "the new template is what it releases")
	g.Expect(reasons(d.Events)).To(Equal([]string{ReasonTargetPaused, ReasonCandidateSeen, ReasonPhaseOpened}))
	g.Expect(condition(c, CondAwaitingApproval).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(c, CondAwaitingApproval).Message).To(ContainSubstring("T-10m/lead"))
	g.Expect(condition(c, CondReconciling).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(c, CondReady).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(condition(c, CondReady).ObservedGeneration).To(BeEquivalentTo(1))
	g.Expect(d.RequeueAfter).To(Equal(30 * time.Second))
}

func TestAHeldTargetIsNotPausedAgain(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	d := run(c, Observations{Targets: []TargetState{heldTarget()}}, t0)
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonTargetPaused))
}

func TestReleaseWithoutDeployAtHappensWhenEveryTMinusPhasePassed(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))

	d := run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.004, "0.004")}, t0.Add(time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(d.Actions).To(Equal([]Action{{Kind: ActionRelease, Target: "checkout", Revision: "v2", TemplateHash: "hash-v2"}}))
	g.Expect(phaseState(c, "T-10m")).To(Equal(deployv1alpha1.PhaseStatePassed))
	g.Expect(c.Status.Targets[0].ReleasedAt.Time).To(Equal(t0.Add(time.Second)))
	g.Expect(c.Status.Targets[0].ReleasedTemplateHash).To(Equal("hash-v2"))
	g.Expect(reasons(d.Events)).To(ContainElements(ReasonApproved, ReasonPhasePassed, ReasonReleased))
	g.Expect(c.Status.Approvals).To(HaveLen(1))
	g.Expect(c.Status.Approvals[0].Approver).To(Equal("alice"))
	g.Expect(condition(c, CondHealthy).Status).To(Equal(metav1.ConditionTrue))
}

func TestAFailingMetricHoldsTheRelease(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	d := run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.02, "0.02")}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(d.Actions).To(BeEmpty())
	cr := check(c, "T-10m", "errors")
	g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomeFail))
	g.Expect(cr.Value).To(Equal("0.02"))
	g.Expect(cr.Threshold).To(Equal("< 0.01"))
	g.Expect(cr.History).To(HaveLen(1))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonCheckFailed))
	g.Expect(c.Status.NextAction).To(ContainSubstring("errors Fail (needs < 0.01)"))

	// Re-evaluated until the phase passes: once the value recovers, it releases.
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.002, "0.002")}, t0.Add(30*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
}

func TestNoDataFollowsOnNoData(t *testing.T) {
	cases := []struct {
		policy  deployv1alpha1.NoDataPolicy
		outcome deployv1alpha1.Outcome
		phase   deployv1alpha1.ChecklistPhase
	}{
		{deployv1alpha1.NoDataHold, deployv1alpha1.OutcomeNoData, deployv1alpha1.PhaseRunning},
		{deployv1alpha1.NoDataPass, deployv1alpha1.OutcomePass, deployv1alpha1.PhaseDeploying},
		{deployv1alpha1.NoDataFail, deployv1alpha1.OutcomeFail, deployv1alpha1.PhaseRunning},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy), func(t *testing.T) {
			g := NewWithT(t)
			c := newChecklist(withOnNoData(tc.policy))
			run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: noData}, t0)
			g.Expect(check(c, "T-10m", "errors").Outcome).To(Equal(tc.outcome))
			g.Expect(check(c, "T-10m", "errors").Value).To(Equal("NaN"))
			g.Expect(c.Status.Phase).To(Equal(tc.phase))
		})
	}
}

func TestPrometheusErrorsNeverPassAndMarkDegradedAfterTheLimit(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: promDown}
	var degradedEvents int
	for i := range 6 {
		d := run(c, obs, t0.Add(time.Duration(i)*30*time.Second))
		g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning), "an error must never pass a gate")
		g.Expect(d.Actions).To(BeEmpty())
		for _, e := range d.Events {
			if e.Reason == ReasonDegraded {
				degradedEvents++
			}
		}
		wantDegraded := metav1.ConditionFalse
		if i >= 3 {
			wantDegraded = metav1.ConditionTrue
		}
		g.Expect(condition(c, CondDegraded).Status).To(Equal(wantDegraded), "after %d errors", i+1)
	}
	cr := check(c, "T-10m", "errors")
	g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomeError))
	g.Expect(cr.ConsecutiveErrors).To(BeEquivalentTo(6))
	g.Expect(cr.Message).To(ContainSubstring("connection refused"))
	g.Expect(degradedEvents).To(Equal(1), "the Degraded event is emitted on the transition only")
	g.Expect(condition(c, CondDegraded).Message).To(ContainSubstring("connection refused"))

	// One good answer clears the streak.
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.02, "0.02")}, t0.Add(4*time.Minute))
	g.Expect(condition(c, CondDegraded).Status).To(Equal(metav1.ConditionFalse))
}

func TestDeployAtInTheFutureHoldsUntilTheClockReachesIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withDeployAt(t0, "30m"))
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}

	// T-10m opens at deployAt-10m, not before.
	d := run(c, obs, t0.Add(-20*time.Minute))
	g.Expect(phaseState(c, "T-10m")).To(Equal(deployv1alpha1.PhaseStatePending))
	g.Expect(c.Status.NextAction).To(Equal("T-10m opens at 2026-11-26T19:50:00Z"))
	g.Expect(d.RequeueAfter).To(Equal(10 * time.Minute))

	d = run(c, obs, t0.Add(-10*time.Minute))
	g.Expect(phaseState(c, "T-10m")).To(Equal(deployv1alpha1.PhaseStatePassed))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(d.RequeueAfter).To(Equal(10 * time.Minute))
	g.Expect(c.Status.NextAction).To(Equal("release at 2026-11-26T20:00:00Z"))

	d = run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRelease}))
}

func TestMissedDeployWindowFailsAndKeepsTheUnreleasedTemplateHeld(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withDeployAt(t0, "30m"))
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0.Add(-10*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))

	d := run(c, Observations{Targets: []TargetState{heldTarget()}}, t0.Add(30*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonMissedDeployWindow))
	g.Expect(condition(c, CondReady).Message).To(ContainSubstring("missed the deploy window"))
	g.Expect(condition(c, CondStalled).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(meta.FindStatusCondition(c.Status.Conditions, CondReconciling)).To(BeNil())
	// The workload keeps serving v1; v2, released by no checklist, stays held, now in
	// the admission's name, saying how to go on. Git still says v2: restoring v1 into
	// the template would only make a GitOps tool push v2 again.
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}))
	g.Expect(d.Actions[0].HeldBy).To(Equal(deployv1alpha1.HeldByAdmission))
	g.Expect(d.Actions[0].Reason).To(ContainSubstring("checkout:v2) is released by no checklist"))

	// Seen so held, nothing more is written.
	held := heldTarget()
	held.HeldBy = deployv1alpha1.HeldByAdmission
	d = run(c, Observations{Targets: []TargetState{held}}, t0.Add(31*time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(d.Events).To(BeEmpty())
	g.Expect(d.RequeueAfter).To(BeZero())
}

func TestAFailureWithNothingNewInTheTemplateTakesTminussPauseOff(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withDeployAt(t0, "30m"))
	held := servingV1()
	held.Paused, held.HeldBy = true, "checklist/checkout-v2"
	run(c, Observations{Targets: []TargetState{held}}, t0.Add(-10*time.Minute))
	d := run(c, Observations{Targets: []TargetState{held}}, t0.Add(30*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionResume}))

	// Paused by someone else: not tminus's to take off.
	c = newChecklist(withDeployAt(t0, "30m"))
	held.HeldBy = ""
	run(c, Observations{Targets: []TargetState{held}}, t0.Add(-10*time.Minute))
	d = run(c, Observations{Targets: []TargetState{held}}, t0.Add(30*time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
}

func TestAPhaseTimeoutBeforeT0FailsTheChecklist(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withPhaseTimeout(0, "15m"))
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0)
	d := run(c, Observations{Targets: []TargetState{heldTarget()}}, t0.Add(14*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(d.RequeueAfter).To(Equal(30 * time.Second))

	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0.Add(15*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed))
	g.Expect(phaseState(c, "T-10m")).To(Equal(deployv1alpha1.PhaseStateFailed))
	g.Expect(condition(c, CondReady).Reason).To(Equal(ReasonPhaseTimedOut))
	g.Expect(condition(c, CondReady).Message).To(ContainSubstring("lead Pending"))
}

func TestAT0PhaseWithoutTimeoutWaitsAsLongAsItTakes(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0)
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0.Add(72*time.Hour))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
}

func TestRevokingAnApprovalBeforeT0BlocksTheRelease(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withDeployAt(t0, "30m"))
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}
	run(c, obs, t0.Add(-10*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))

	obs.Approvals = nil
	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).NotTo(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.NextAction).To(ContainSubstring("revoked"))
}

func TestTheRolloutBecomingAvailableStartsVerification(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))

	rolling := rolledOutTarget()
	rolling.UpdatedReplicas, rolling.AvailableReplicas, rolling.TotalReplicas = 1, 3, 4
	rolling.Settled, rolling.Serving, rolling.ServingHash = false, nil, ""
	run(c, Observations{Targets: []TargetState{rolling}}, t0.Add(-30*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(c.Status.NextAction).To(ContainSubstring("1 of 3 replicas updated"))

	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.Targets[0].AvailableAt.Time).To(Equal(t0))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonRolloutAvailable))
}

func TestTPlusPhasesCountFromAvailabilityAndSucceed(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(4*time.Minute))
	g.Expect(phaseState(c, "T+5m")).To(Equal(deployv1alpha1.PhaseStatePending))
	g.Expect(d.RequeueAfter).To(Equal(30*time.Second), "triggers are measured every interval")

	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
	g.Expect(condition(c, CondReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(meta.FindStatusCondition(c.Status.Conditions, CondReconciling)).To(BeNil())
	g.Expect(meta.FindStatusCondition(c.Status.Conditions, CondStalled)).To(BeNil())
	g.Expect(reasons(d.Events)).To(ContainElements(ReasonPhasePassed, ReasonSucceeded))
	g.Expect(d.RequeueAfter).To(BeZero())

	// Terminal: nothing more happens, whatever is observed.
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.9, "0.9")}, t0.Add(time.Hour))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(d.Events).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
}

func TestALastTPlusPhaseThatNeverPassesRollsBackAfterItsTimeout(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	obs := Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.02, "0.02")}
	run(c, obs, t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	d := run(c, obs, t0.Add(14*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(d.RequeueAfter).To(Equal(30 * time.Second))

	d = run(c, obs, t0.Add(15*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Reason).To(Equal(ReasonVerificationFailed))
	g.Expect(c.Status.Rollback.Message).To(ContainSubstring("T+5m did not pass"))
	g.Expect(c.Status.Rollback.Message).To(ContainSubstring("errors Fail 0.02 (needs < 0.01)"))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
	g.Expect(d.Actions[0].Template.Spec.Containers[0].Image).To(Equal("checkout:v1"))
}

func TestATPlusPhaseMustPassBeforeTheNextOneOpens(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Phases = append(c.Spec.Phases, deployv1alpha1.PhaseSpec{
			Name: "T+15m", At: "15m", Checks: c.Spec.Phases[1].Checks,
		})
	})
	obs := Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.02, "0.02")}
	run(c, obs, t0.Add(5*time.Minute))
	run(c, obs, t0.Add(15*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(phaseState(c, "T+5m")).To(Equal(deployv1alpha1.PhaseStateFailed))
	g.Expect(phaseState(c, "T+15m")).To(Equal(deployv1alpha1.PhaseStatePending))
}

func TestTriggerWithoutForFiresOnTheFirstBreach(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Reason).To(Equal(ReasonTriggerFired))
	g.Expect(c.Status.Rollback.Message).To(Equal("rollback trigger errors-5pct fired: 0.07 > 0.05"))
	g.Expect(c.Status.Rollback.Value).To(Equal("0.07"))
	g.Expect(c.Status.Rollback.DryRun).To(BeFalse())
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
	g.Expect(d.Actions[0].Template.Spec.Containers[0].Image).To(Equal("checkout:v1"))
	g.Expect(reasons(d.Events)).To(ContainElements(ReasonTriggerBreaching, ReasonRolledBack))
	g.Expect(condition(c, CondRolledBack).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(c, CondHealthy).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(condition(c, CondStalled).Reason).To(Equal(ReasonTriggerFired))
}

func TestTriggerWithForFiresOnlyWhenTheBreachHoldsThatLong(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	breach := Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}

	d := run(c, breach, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Triggers[0].BreachingSince.Time).To(Equal(t0.Add(time.Minute)))
	g.Expect(condition(c, CondHealthy).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(condition(c, CondHealthy).Message).To(ContainSubstring("errors-5pct (0.07 > 0.05)"))

	d = run(c, breach, t0.Add(2*time.Minute+59*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(d.RequeueAfter).To(Equal(time.Second), "wake when for elapses")

	d = run(c, breach, t0.Add(3*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
}

func TestTriggerThatRecoversBeforeForElapsesDoesNotFire(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.01, "0.01")}, t0.Add(2*time.Minute))
	g.Expect(c.Status.Triggers[0].BreachingSince).To(BeNil())
	g.Expect(condition(c, CondHealthy).Status).To(Equal(metav1.ConditionTrue))

	// A new breach starts a new count.
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(3*time.Minute))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(4*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(d.Actions).To(BeEmpty())
}

func TestPrometheusErrorsNeverFireATrigger(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""))
	for i := range 10 {
		d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: promDown}, t0.Add(time.Duration(i)*30*time.Second))
		g.Expect(d.Actions).To(BeEmpty())
	}
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(condition(c, CondDegraded).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(c.Status.Triggers[0].Outcome).To(Equal(deployv1alpha1.OutcomeError))
}

func TestAnErrorDuringABreachNeitherFiresNorClearsIt(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: promDown}, t0.Add(3*time.Minute+30*time.Second))
	g.Expect(d.Actions).To(BeEmpty(), "an error is not a breach")
	g.Expect(c.Status.Triggers[0].BreachingSince.Time).To(Equal(t0.Add(time.Minute)))
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.08, "0.08")}, t0.Add(4*time.Minute))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
}

func TestNoDataOnATriggerFollowsOnNoData(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""), withOnNoData(deployv1alpha1.NoDataHold))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: noData}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))

	c = releasedChecklist(withTriggerFor(""), withOnNoData(deployv1alpha1.NoDataFail))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: noData}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
}

func TestRollbackIsRecordedWithoutASecondWriteWhenTheTargetIsAlreadyRestored(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
	g.Expect(c.Status.Rollback.CompletedAt).To(BeNil())

	// The manager restarted after the patch: the target already runs v1 again.
	d = run(c, Observations{Targets: []TargetState{restoredTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(2*time.Minute))
	g.Expect(d.Actions).To(BeEmpty(), "a rollback happens exactly once")
	g.Expect(c.Status.Rollback.CompletedAt.Time).To(Equal(t0.Add(2 * time.Minute)))
	g.Expect(c.Status.Targets[0].RestoredAt).NotTo(BeNil())
	g.Expect(reasons(d.Events)).To(Equal([]string{ReasonRestored}))

	// Later reconciles, whatever they see, write nothing.
	later := restoredTarget()
	later.Template, later.TemplateHash = template("checkout:v3"), "hash-v3"
	d = run(c, Observations{Targets: []TargetState{later}}, t0.Add(time.Hour))
	g.Expect(d.Actions).To(BeEmpty(), "a later deploy by a person is not undone")
	g.Expect(d.Events).To(BeEmpty())
}

func TestRollbackRepeatsTheRestoreUntilItIsSeenDone(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	// The manager died before the patch: the target still runs v2.
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}}, t0.Add(2*time.Minute))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
	g.Expect(c.Status.Rollback.FiredAt.Time).To(Equal(t0.Add(time.Minute)), "fired once, at the first breach")
}

func TestRollbackActionNoneIsADryRun(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""), withRollbackAction(deployv1alpha1.RollbackNone))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.DryRun).To(BeTrue())
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonRollbackDryRun))
	g.Expect(condition(c, CondRolledBack).Reason).To(Equal(ReasonRollbackDryRun))
}

func TestGateObserveNeverTouchesTheTarget(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withGate(deployv1alpha1.GateObserve), withTriggerFor(""))
	target := heldTarget()
	target.Paused = false
	d := run(c, Observations{Targets: []TargetState{target}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0)
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}}, t0.Add(time.Minute))
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.07, "0.07")}, t0.Add(2*time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Rollback.DryRun).To(BeTrue())
}

func TestAMissingTargetIsReportedAndNothingIsWritten(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	d := run(c, Observations{Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0)
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(c.Status.NextAction).To(Equal("waiting for Deployment checkout to exist"))
	g.Expect(condition(c, CondReady).Message).To(Equal("waiting for Deployment checkout to exist"))
}

func TestARolloutPastItsProgressDeadlineRollsBack(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0)
	stuck := rolledOutTarget()
	stuck.UpdatedReplicas, stuck.ProgressDeadlineExceeded, stuck.ProgressingSince = 1, true, t0.Add(10*time.Minute)
	stuck.Settled, stuck.Serving, stuck.ServingHash = false, nil, ""
	d := run(c, Observations{Targets: []TargetState{stuck}}, t0.Add(10*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Reason).To(Equal(ReasonRolloutStalled))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
}

func TestJobChecksCreateTheirJobOnceAndPassWhenItSucceeds(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withJobCheck(0))
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}
	d := run(c, obs, t0)
	g.Expect(d.Actions).To(ConsistOf(Action{Kind: ActionCreateJob, Phase: "T-10m", Check: "smoke"}))
	g.Expect(check(c, "T-10m", "smoke").Message).To(Equal("creating Job checkout-v2-tm10m-smoke"))

	obs.Jobs = map[string]JobState{"T-10m/smoke": {Exists: true}}
	d = run(c, obs, t0.Add(time.Second))
	g.Expect(d.Actions).To(BeEmpty(), "a running Job is not created again")
	g.Expect(check(c, "T-10m", "smoke").Outcome).To(Equal(deployv1alpha1.OutcomePending))

	obs.Jobs = map[string]JobState{"T-10m/smoke": {Exists: true, Succeeded: true}}
	d = run(c, obs, t0.Add(2*time.Second))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
	g.Expect(check(c, "T-10m", "smoke").Outcome).To(Equal(deployv1alpha1.OutcomePass))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRelease}))
}

func TestAFailedJobHoldsBeforeT0AndRollsBackAfterIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withJobCheck(0))
	obs := Observations{Targets: []TargetState{heldTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001"),
		Jobs: map[string]JobState{"T-10m/smoke": {Exists: true, Failed: true, Message: "BackoffLimitExceeded"}}}
	d := run(c, obs, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(check(c, "T-10m", "smoke").Message).To(ContainSubstring("BackoffLimitExceeded; delete the Job to run it again"))

	c = releasedChecklist(withJobCheck(1))
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0.001, "0.001"),
		Jobs: map[string]JobState{"T+5m/smoke": {Exists: true, Failed: true, Message: "BackoffLimitExceeded"}}}, t0.Add(5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Message).To(ContainSubstring("T+5m failed: Job checkout-v2-tp5m-smoke failed"))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
}

func TestFourEyesNeedsTwoDistinctApprovers(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Phases[0].Checks[0].Approval.Count = 2 })
	twice := map[string][]Approval{"deployment-lead": {
		{Role: "deployment-lead", Approver: "alice", Revision: "v2"},
		{Role: "deployment-lead", Approver: "alice", Revision: "v2"},
	}}
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: twice, Metrics: errorRate(0.001, "0.001")}, t0)
	g.Expect(check(c, "T-10m", "lead").Message).To(Equal("waiting for deployment-lead sign-off (1 of 2)"))
	twice["deployment-lead"][1].Approver = "bob"
	run(c, Observations{Targets: []TargetState{heldTarget()}, Approvals: twice, Metrics: errorRate(0.001, "0.001")}, t0.Add(time.Second))
	g.Expect(check(c, "T-10m", "lead").Value).To(Equal("alice, bob"))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
}

func TestMetricHistoryIsBounded(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	for i := range 10000 {
		run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.02, "0.02")}, t0.Add(time.Duration(i)*30*time.Second))
	}
	g.Expect(check(c, "T-10m", "errors").History).To(HaveLen(deployv1alpha1.MaxHistory))
	g.Expect(check(c, "T-10m", "errors").History[9].Time.Time).To(Equal(t0.Add(9999 * 30 * time.Second)))
}

func TestMalformedApprovalsAreReportedOnceInStatusAndEvents(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	bad := []string{`annotation approve.tminus.dev/deployment-lead: "alice" is not "<approver> for <revision>"`}
	d := run(c, Observations{Targets: []TargetState{heldTarget()}, ApprovalProblems: bad}, t0)
	g.Expect(c.Status.ApprovalErrors).To(Equal(bad))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonInvalidApproval))
	d = run(c, Observations{Targets: []TargetState{heldTarget()}, ApprovalProblems: bad}, t0.Add(time.Second))
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonInvalidApproval), "reported on the change only")
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0.Add(2*time.Second))
	g.Expect(c.Status.ApprovalErrors).To(BeEmpty())
}

func TestATargetThatDisappearsDuringVerificationHoldsWithoutRollingBack(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist(withTriggerFor(""))
	d := run(c, Observations{Metrics: errorRate(0.07, "0.07")}, t0.Add(time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.NextAction).To(Equal("Deployment checkout is gone; cannot verify the release"))
}

func TestATargetScaledToZeroDuringVerificationNeverPassesAndSaysWhy(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	zero := rolledOutTarget()
	zero.Replicas, zero.UpdatedReplicas, zero.AvailableReplicas, zero.TotalReplicas = 0, 0, 0, 0
	// T+5m opens at t0+5m; an error rate of 0 would pass it, but nothing serves.
	d := run(c, Observations{Targets: []TargetState{zero}, Metrics: errorRate(0, "0")}, t0.Add(5*time.Minute))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(phaseState(c, "T+5m")).To(Equal(deployv1alpha1.PhaseStateOpen))
	g.Expect(c.Status.NextAction).To(Equal("Deployment checkout is scaled to zero: nothing serves the release, so T+5m cannot pass; scale it up to go on"))
	g.Expect(condition(c, CondReady).Message).To(Equal(c.Status.NextAction))

	// Scaled up again, the same measurement passes.
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Metrics: errorRate(0, "0")}, t0.Add(6*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
}

func TestATargetLeftAtZeroPastTheDeadlineRollsBackSayingSo(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	zero := rolledOutTarget()
	zero.Replicas, zero.UpdatedReplicas, zero.AvailableReplicas, zero.TotalReplicas = 0, 0, 0, 0
	run(c, Observations{Targets: []TargetState{zero}, Metrics: errorRate(0, "0")}, t0.Add(5*time.Minute))
	d := run(c, Observations{Targets: []TargetState{zero}, Metrics: errorRate(0, "0")}, t0.Add(5*time.Minute+DefaultLastPhaseTimeout))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
	g.Expect(c.Status.Rollback.Message).To(ContainSubstring("Deployment checkout was scaled to zero"))
}
