package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// TestAStatusWrittenBeforeStatusTargetsIsReadAndMovedIntoTheList: a checklist an
// earlier manager walked recorded its one target in status.target. It still reads (the
// release goes on from what was recorded), and the next decision records it in
// status.targets under the target's kind and name, and no longer in status.target.
func TestAStatusWrittenBeforeStatusTargetsIsReadAndMovedIntoTheList(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist()
	obs := Observations{Targets: []TargetState{heldTarget()}}
	run(c, obs, t0)
	old := c.Status.Targets[0].TargetStatus
	c.Status.Targets, c.Status.Target = nil, old.DeepCopy() // as an earlier manager stored it

	g.Expect(c.TargetStatusOf("checkout").PreDeployTemplateHash).To(Equal("hash-v1"), "read before any reconcile")
	d := run(c, obs, t0.Add(1))
	g.Expect(d.Events).To(BeEmpty(), "nothing new happened: the candidate is the one recorded")
	g.Expect(c.Status.Target).To(BeNil())
	g.Expect(c.Status.Targets).To(HaveLen(1))
	g.Expect(c.Status.Targets[0].Kind).To(Equal("Deployment"))
	g.Expect(c.Status.Targets[0].Name).To(Equal("checkout"))
	g.Expect(c.Status.Targets[0].TargetStatus).To(Equal(old))
	g.Expect(c.Status.TargetNames).To(Equal("checkout"))
}

// twoTier is a release of the frontend and its backend (in that order).
func twoTier(c *deployv1alpha1.DeploymentChecklist) {
	c.Spec.Target = nil
	c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "frontend"}, {Kind: "Deployment", Name: "backend"}}
}

func actionsOn(d Decision, kind ActionKind) []string {
	var out []string
	for _, a := range d.Actions {
		if a.Kind == kind {
			out = append(out, a.Target)
		}
	}
	return out
}

// TestBothTargetsNewAreReleasedTogetherAndABreachRestoresBothInReverseOrder: the
// frontend and the backend both hold a new template; T-0 releases both at once, the
// error rate breaches at T+, and one rollback restores the backend, then the frontend,
// each to its own pre-deploy template; it completes once both are seen restored.
func TestBothTargetsNewAreReleasedTogetherAndABreachRestoresBothInReverseOrder(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	two := func(ts TargetState) []TargetState { return []TargetState{ts, ts} }
	d := run(c, Observations{Targets: two(heldTarget()), Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")},
		t0.Add(-time.Minute))
	g.Expect(c.Status.Targets).To(HaveLen(2))
	g.Expect(c.Status.Targets[0].Name).To(Equal("frontend"))
	g.Expect(c.Status.Targets[1].CandidateTemplateHash).To(Equal("hash-v2"))
	g.Expect(actionsOn(d, ActionRelease)).To(Equal([]string{"frontend", "backend"}), "released at once, in the order given")
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonReleased))

	run(c, Observations{Targets: two(rolledOutTarget()), Approvals: approved("deployment-lead")}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(c.Status.Targets[0].AvailableAt).To(Equal(c.Status.Targets[1].AvailableAt))

	run(c, Observations{Targets: two(rolledOutTarget()), Metrics: errorRate(0.09, "0.09")}, t0.Add(time.Minute))
	d = run(c, Observations{Targets: two(rolledOutTarget()), Metrics: errorRate(0.09, "0.09")}, t0.Add(3*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(actionsOn(d, ActionRestore)).To(Equal([]string{"backend", "frontend"}), "in reverse order of release")
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonRolledBack))
	rolledBack := 0
	for _, ev := range d.Events {
		if ev.Reason == ReasonRolledBack {
			rolledBack++
			g.Expect(ev.Message).To(ContainSubstring("restoring Deployment backend, frontend, in reverse order of release"))
		}
	}
	g.Expect(rolledBack).To(Equal(1))

	// The backend is back; the frontend not yet: the rollback is not complete.
	d = run(c, Observations{Targets: []TargetState{rolledOutTarget(), restoredTarget()}}, t0.Add(4*time.Minute))
	g.Expect(actionsOn(d, ActionRestore)).To(Equal([]string{"frontend"}))
	g.Expect(c.Status.Targets[1].RestoredAt).NotTo(BeNil())
	g.Expect(c.Status.Rollback.CompletedAt).To(BeNil())
	run(c, Observations{Targets: two(restoredTarget())}, t0.Add(5*time.Minute))
	g.Expect(c.Status.Targets[0].RestoredAt).NotTo(BeNil())
	g.Expect(c.Status.Rollback.CompletedAt).NotTo(BeNil())
}

// TestOnlyTheBackendChangedSoTheFrontendIsNeitherReleasedNorRestored: the frontend
// serves what it served; at T-0 tminus's pause comes off it and only the backend is
// released; the rollback restores the backend alone.
func TestOnlyTheBackendChangedSoTheFrontendIsNeitherReleasedNorRestored(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	frontend := servingV1()
	frontend.Paused, frontend.HeldBy = true, "checklist/checkout-v2" // tminus held it at capture
	d := run(c, Observations{Targets: []TargetState{frontend, heldTarget()}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	g.Expect(actionsOn(d, ActionRelease)).To(Equal([]string{"backend"}))
	g.Expect(actionsOn(d, ActionResume)).To(Equal([]string{"frontend"}), "nothing to release on it: its pause comes off")
	g.Expect(c.Status.Targets[0].ReleasedTemplateHash).To(BeEmpty())

	run(c, Observations{Targets: []TargetState{servingV1(), rolledOutTarget()}}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	run(c, Observations{Targets: []TargetState{servingV1(), rolledOutTarget()}, Metrics: errorRate(0.09, "0.09")}, t0.Add(time.Minute))
	d = run(c, Observations{Targets: []TargetState{servingV1(), rolledOutTarget()}, Metrics: errorRate(0.09, "0.09")}, t0.Add(3*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(actionsOn(d, ActionRestore)).To(Equal([]string{"backend"}))
	run(c, Observations{Targets: []TargetState{servingV1(), restoredTarget()}}, t0.Add(4*time.Minute))
	g.Expect(c.Status.Rollback.CompletedAt).NotTo(BeNil())
	g.Expect(c.Status.Targets[0].RestoredAt).To(BeNil(), "the frontend was never touched")
}

// TestASignOffBindsToTheWholeSetOnceEveryTargetIsCaptured: a sign-off the approval
// webhook did not record binds to the candidates held when the controller first judges
// it; while one target is not settled yet (its rollout controller has not seen its new
// template) the set is not whole, and the sign-off waits for it instead of binding to
// the frontend alone and then asking to be signed again.
func TestASignOffBindsToTheWholeSetOnceEveryTargetIsCaptured(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	unsettled := heldTarget()
	unsettled.Settled, unsettled.ObservedGeneration = false, 1
	obs := Observations{Targets: []TargetState{heldTarget(), unsettled}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}
	run(c, obs, t0.Add(-2*time.Minute))
	g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(Equal("hash-v2"))
	g.Expect(c.Status.Approvals).To(HaveLen(1))
	g.Expect(c.Status.Approvals[0].CandidateTemplateHash).To(BeEmpty(), "not bound to a set missing the backend")
	g.Expect(c.Status.Approvals[0].NotCounted).To(BeEmpty())

	obs.Targets = []TargetState{heldTarget(), heldTarget()}
	d := run(c, obs, t0.Add(-time.Minute))
	g.Expect(c.Status.Approvals[0].CandidateTemplateHash).To(Equal(CandidateSetOf(c)))
	g.Expect(c.Status.Approvals[0].NotCounted).To(BeEmpty())
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonApprovalNotCounted))
	g.Expect(actionsOn(d, ActionRelease)).To(Equal([]string{"frontend", "backend"}))
}

// TestASignOffStopsCountingWhenTheFrontendsImageChanges: the sign-off is for the set of
// candidates; a new frontend image is another set.
func TestASignOffStopsCountingWhenTheFrontendsImageChanges(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier, withDeployAt(t0, "30m"))
	obs := Observations{Targets: []TargetState{heldTarget(), heldTarget()}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}
	run(c, obs, t0.Add(-10*time.Minute))
	g.Expect(c.Status.Approvals).To(HaveLen(1))
	g.Expect(c.Status.Approvals[0].NotCounted).To(BeEmpty())

	v3 := heldTarget()
	v3.Template, v3.TemplateHash, v3.TemplateImages = template("frontend:v3"), "hash-v3", []string{"frontend:v3"}
	obs.Targets = []TargetState{v3, heldTarget()}
	d := run(c, obs, t0.Add(-5*time.Minute))
	g.Expect(c.Status.Approvals[0].NotCounted).To(ContainSubstring("sign again"))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonApprovalNotCounted))
	d = run(c, obs, t0)
	g.Expect(actionsOn(d, ActionRelease)).To(BeEmpty(), "not released on a sign-off for another set")
}

// TestATargetDeletedDuringTheReleaseFailsItNamingItAndRestoresTheOthers.
func TestATargetDeletedDuringTheReleaseFailsItNamingItAndRestoresTheOthers(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	run(c, Observations{Targets: []TargetState{heldTarget(), heldTarget()}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget(), {}}}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(c.Status.Rollback.Reason).To(Equal(ReasonTargetGone))
	g.Expect(c.Status.Rollback.Message).To(ContainSubstring("Deployment backend, released by this checklist, was deleted"))
	g.Expect(actionsOn(d, ActionRestore)).To(Equal([]string{"frontend"}))
}

// TestNothingToRestoreOnOneTargetIsReportedWhileTheOtherIsRestored: the backend served
// nothing when the checklist started (a new Deployment); the frontend is restored, and
// the rollback names the backend as having nothing to restore.
func TestNothingToRestoreOnOneTargetIsReportedWhileTheOtherIsRestored(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	fresh := heldTarget()
	fresh.Serving, fresh.ServingHash, fresh.ServingRevision, fresh.ServingPodTemplateHash = nil, "", "", ""
	run(c, Observations{Targets: []TargetState{heldTarget(), fresh}, Approvals: approved("deployment-lead"),
		Metrics: errorRate(0.001, "0.001")}, t0.Add(-time.Minute))
	run(c, Observations{Targets: []TargetState{rolledOutTarget(), rolledOutTarget()}}, t0)
	run(c, Observations{Targets: []TargetState{rolledOutTarget(), rolledOutTarget()}, Metrics: errorRate(0.09, "0.09")}, t0.Add(time.Minute))
	d := run(c, Observations{Targets: []TargetState{rolledOutTarget(), rolledOutTarget()}, Metrics: errorRate(0.09, "0.09")},
		t0.Add(3*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack))
	g.Expect(actionsOn(d, ActionRestore)).To(Equal([]string{"frontend"}))
	g.Expect(reasons(d.Events)).To(ContainElement(ReasonNothingToRestore))
	var note string
	for _, ev := range d.Events {
		if ev.Reason == ReasonRolledBack {
			note = ev.Message
		}
	}
	g.Expect(note).To(ContainSubstring("nothing to restore on Deployment backend (Deployment backend served nothing"))
}

// TestTheSetOfCandidatesOfOneTargetIsItsCandidate: sign-offs stored by earlier versions
// are bound to the one target's candidate hash; for one target the set is that hash,
// for several any change to one candidate is another set.
func TestTheSetOfCandidatesOfOneTargetIsItsCandidate(t *testing.T) {
	g := NewWithT(t)
	g.Expect(CandidateSet([]string{"checkout"}, []string{"hash-v2"})).To(Equal("hash-v2"))
	both := CandidateSet([]string{"frontend", "backend"}, []string{"f2", "b2"})
	g.Expect(both).To(HavePrefix("set-"))
	g.Expect(CandidateSet([]string{"frontend", "backend"}, []string{"f3", "b2"})).NotTo(Equal(both))
	g.Expect(CandidateSet([]string{"frontend", "backend"}, []string{"", "b2"})).NotTo(Equal(both))
	g.Expect(CandidateSet([]string{"frontend", "backend"}, []string{"f2", "b2"})).To(Equal(both))
}

// TestTargetInAQueryOfSeveralTargetsMatchesEachOfThem: {{target}} in a query that judges
// the whole release stands for every target, as an alternation of their names spelled
// literally.
func TestTargetInAQueryOfSeveralTargetsMatchesEachOfThem(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	c.Spec.Targets[1].Name = "back.end"
	g.Expect(ResolveQuery(c, `sum(rate(errors{deployment=~"{{target}}"}[5m]))`)).To(
		Equal(`sum(rate(errors{deployment=~"(frontend|back\\.end)"}[5m]))`))
	g.Expect(ResolveQuery(newChecklist(), `errors{deployment=~"{{target}}"}`)).To(Equal(`errors{deployment=~"checkout"}`))
}

// TestAReleaseSharingTheBackendWithALiveChecklistIsBlockedNamingIt: without the
// webhook, a two-tier release whose backend another live checklist holds waits,
// touches neither target, and names the Deployment they share.
func TestAReleaseSharingTheBackendWithALiveChecklistIsBlockedNamingIt(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(twoTier)
	d := run(c, Observations{Targets: []TargetState{servingV1(), servingV1()}, Blocker: "backend-v7", BlockedOn: "backend"}, t0)
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseBlocked))
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(c.Status.NextAction).To(Equal("blocked: checklist backend-v7 is live on Deployment backend; this one starts when it ends"))
}

// TestASignOffCommittedWithAReleaseOfTwoCountsForTheTemplatesItWasGivenFor: the
// sign-off is written with the checklist, before anything is captured, so the approval
// webhook records the set of both targets' templates as they were (the frontend on its
// pre-deploy one, the backend on v2). Once captured, that is the release's set of
// candidates, and the sign-off counts; one recorded for another frontend template does
// not.
func TestASignOffCommittedWithAReleaseOfTwoCountsForTheTemplatesItWasGivenFor(t *testing.T) {
	for _, tc := range []struct {
		name, frontend string
		counts         bool
	}{
		{"given for the templates held", "hash-v1", true},
		{"given for another frontend template", "hash-v3", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := newChecklist(twoTier)
			a := approved("deployment-lead")
			a["deployment-lead"][0].AdmittedTemplate = CandidateSet([]string{"frontend", "backend"}, []string{tc.frontend, "hash-v2"})
			a["deployment-lead"][0].Verified = true
			obs := Observations{Targets: []TargetState{servingV1(), heldTarget()}, Approvals: a, Metrics: errorRate(0.001, "0.001")}
			run(c, obs, t0.Add(-time.Minute))
			run(c, obs, t0)
			g.Expect(c.Status.Approvals).To(HaveLen(1))
			if tc.counts {
				g.Expect(c.Status.Approvals[0].NotCounted).To(BeEmpty())
				g.Expect(c.TargetStatusOf("backend").ReleasedTemplateHash).To(Equal("hash-v2"))
			} else {
				g.Expect(c.Status.Approvals[0].NotCounted).To(ContainSubstring("sign again"))
				g.Expect(c.TargetStatusOf("backend").ReleasedTemplateHash).To(BeEmpty())
			}
		})
	}
}
