package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func rollbackBy(by, reason string) []Request {
	return []Request{{Kind: deployv1alpha1.RequestRollback, By: by, Reason: reason, WrittenBy: by, Verified: true}}
}

func abortBy(by, reason string) []Request {
	return []Request{{Kind: deployv1alpha1.RequestAbort, By: by, Reason: reason, WrittenBy: by, Verified: true}}
}

// succeededChecklist walks releasedChecklist through T+5m: Succeeded at t0+5m.
func succeededChecklist() *deployv1alpha1.DeploymentChecklist {
	c := releasedChecklist()
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0.Add(5*time.Minute))
	return c
}

func TestARollbackRequestedDuringVerificationRestoresInTheSameReconcileAndSaysWhoAndWhy(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))

	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"),
		Requests: rollbackBy("carol", "CVE-2026-1234 in the new image")}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}), "restored in the reconcile that read the request")
	g.Expect(d.Actions[0].Template.Spec.Containers[0].Image).To(Equal("checkout:v1"))
	g.Expect(c.Status.Rollback.Reason).To(Equal(ReasonRollbackRequested))
	g.Expect(c.Status.Rollback.Message).To(Equal("rolled back by carol: CVE-2026-1234 in the new image"))
	g.Expect(meta.FindStatusCondition(c.Status.Conditions, CondReady).Reason).To(Equal(ReasonRollbackRequested))
	g.Expect(c.Status.Request).To(PointTo(MatchFields(IgnoreExtras, Fields{
		"Kind": Equal(deployv1alpha1.RequestRollback), "By": Equal("carol"), "WrittenBy": Equal("carol"),
		"State": Equal(deployv1alpha1.RequestActed), "After": Equal(deployv1alpha1.PhaseVerifying),
	})))
	g.Expect(d.Events).To(ContainElement(Event{Type: corev1.EventTypeWarning, Reason: ReasonRolledBack,
		Message: "rolling back: rolled back by carol: CVE-2026-1234 in the new image"}))

	// Read again (the annotation stays): acted on once.
	firedAt := c.Status.Rollback.FiredAt
	d = run(c, Observations{Targets: []TargetState{restoredTarget()}, Requests: rollbackBy("carol", "CVE-2026-1234 in the new image")}, t0.Add(2*time.Minute))
	g.Expect(c.Status.Rollback.FiredAt).To(Equal(firedAt))
	g.Expect(reasons(d.Events)).To(Equal([]string{ReasonRestored}))
}

func TestAnUnverifiedRollbackRequestIsReportedAndNotActedOn(t *testing.T) {
	g := NewWithT(t)
	c := releasedChecklist()
	req := rollbackBy("mallory", "I say so")
	req[0].Verified, req[0].WrittenBy = false, ""
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"), Requests: req}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.Request.State).To(Equal(deployv1alpha1.RequestUnverified))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonRequestNotActed))

	d = run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"), Requests: req}, t0.Add(2*time.Minute))
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonRequestNotActed), "reported once")
}

// TestARollbackRequestedAnHourAfterTheReleaseSucceededRestoresIt: the vulnerability
// found after the release ended is the common case.
func TestARollbackRequestedAnHourAfterTheReleaseSucceededRestoresIt(t *testing.T) {
	g := NewWithT(t)
	c := succeededChecklist()
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))

	d := run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Requests: rollbackBy("carol", "CVE-2026-1234")}, t0.Add(time.Hour+5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRestore}))
	g.Expect(d.Actions[0].RolledBack).To(Equal("hash-v2"), "the rolled-back template stays refused")
	g.Expect(c.Status.Request.After).To(Equal(deployv1alpha1.PhaseSucceeded))
	g.Expect(meta.FindStatusCondition(c.Status.Conditions, CondRecorded).Status).To(BeEquivalentTo("False"),
		"a new record is owed: the release ended again, rolled back")

	run(c, Observations{Targets: []TargetState{restoredTarget()}, Requests: rollbackBy("carol", "CVE-2026-1234")}, t0.Add(time.Hour+6*time.Minute))
	g.Expect(c.Status.Targets[0].RestoredAt).NotTo(BeNil())
}

func TestARollbackOfASucceededReleaseThatNoLongerServesIsNotActedOn(t *testing.T) {
	for name, tc := range map[string]struct {
		target  func() TargetState
		blocker string
		why     string
	}{
		"replaced": {target: func() TargetState {
			t := rolledOutTarget()
			t.Template, t.TemplateHash, t.TemplateImages = template("checkout:v3"), "hash-v3", []string{"checkout:v3"}
			t.Serving, t.ServingHash = template("checkout:v3"), "hash-v3"
			return t
		}, why: "the released template (checkout:v2) no longer serves on Deployment checkout, which runs checkout:v3"},
		"newer released": {target: func() TargetState {
			t := rolledOutTarget()
			t.ReleasedRevisions = []string{"v3", "v2"}
			return t
		}, why: "revision v3 was released on Deployment checkout after v2"},
		"newer under way": {target: rolledOutTarget, blocker: "checkout-v3",
			why: "checklist checkout-v3 is live on Deployment checkout"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			c := succeededChecklist()
			d := run(c, Observations{Targets: []TargetState{tc.target()}, Blocker: tc.blocker, Requests: rollbackBy("carol", "CVE")}, t0.Add(time.Hour))
			g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
			g.Expect(kinds(d.Actions)).NotTo(ContainElement(ActionRestore))
			g.Expect(c.Status.Request.State).To(Equal(deployv1alpha1.RequestNotApplicable))
			g.Expect(c.Status.Request.Message).To(ContainSubstring(tc.why))
		})
	}
}

func TestAnAbortBeforeT0EndsFailedAndTheHeldChangeStaysHeld(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}, Metrics: errorRate(0.001, "0.001")}, t0.Add(-5*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))

	d := run(c, Observations{Targets: []TargetState{heldTarget()}, Requests: abortBy("carol", "wrong build")}, t0.Add(-4*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseFailed))
	ready := meta.FindStatusCondition(c.Status.Conditions, CondReady)
	g.Expect(ready.Reason).To(Equal(ReasonAborted))
	g.Expect(ready.Message).To(ContainSubstring("aborted by carol: wrong build; the release will not start"))
	g.Expect(ready.Message).To(ContainSubstring("new template (checkout:v2) stays held: `kubectl checklist retry checkout-v2`"))
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionHold}), "nothing rolls: the change stays held")
	g.Expect(d.Actions[0].HeldBy).To(Equal(deployv1alpha1.HeldByAdmission))
	g.Expect(d.Actions[0].HeldTemplate).To(Equal("hash-v2"))
	g.Expect(c.Status.Request.State).To(Equal(deployv1alpha1.RequestActed))
}

func TestRequestsTheChecklistCannotActOnSayWhy(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	run(c, Observations{Targets: []TargetState{heldTarget()}}, t0.Add(-5*time.Minute))
	run(c, Observations{Targets: []TargetState{heldTarget()}, Requests: rollbackBy("carol", "CVE")}, t0.Add(-4*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(c.Status.Request.Message).To(ContainSubstring("T-0 has not passed"))

	c = releasedChecklist()
	run(c, Observations{Targets: []TargetState{rolledOutTarget()}, Approvals: approved("deployment-lead"), Requests: abortBy("carol", "late")}, t0.Add(time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.Request.Message).To(ContainSubstring("T-0 has passed"))
}

// TestARetryReleasesARevisionReleasedBefore: a checklist re-applied from Git after its
// revision was released has nothing to release; a retry (deploy.tminus.dev/retry-of,
// verified by the webhook) releases it again after its own sign-offs.
func TestARetryReleasesARevisionReleasedBefore(t *testing.T) {
	g := NewWithT(t)
	target := heldTarget()
	target.ReleasedRevisions = []string{"v2"}
	reapplied := newChecklist()
	run(reapplied, Observations{Targets: []TargetState{target}}, t0.Add(-5*time.Minute))
	g.Expect(meta.FindStatusCondition(reapplied.Status.Conditions, CondReady).Reason).To(Equal(ReasonAlreadyReleased))

	retry := newChecklist()
	retry.Name, retry.Annotations = "checkout-v2-retry-1", map[string]string{deployv1alpha1.RetryOfAnnotation: "checkout-v2"}
	target.HeldBy = "checklist/checkout-v2-retry-1"
	run(retry, Observations{Targets: []TargetState{target}}, t0.Add(-5*time.Minute))
	g.Expect(retry.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
	run(retry, Observations{Targets: []TargetState{target}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	g.Expect(retry.Status.Phase).To(Equal(deployv1alpha1.PhaseDeploying))
}
