package checklist

import (
	"testing"

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

// TestAReleaseOfSeveralTargetsIsStalledAndNothingIsTouched: until the engine walks a
// release of several targets, such a checklist says so and writes to none of them
// rather than release part of the release.
func TestAReleaseOfSeveralTargetsIsStalledAndNothingIsTouched(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Target = nil
		c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "frontend"}, {Kind: "Deployment", Name: "backend"}}
	})
	d := run(c, Observations{Targets: []TargetState{servingV1(), servingV1()}}, t0)
	g.Expect(d.Actions).To(BeEmpty())
	g.Expect(condition(c, CondStalled).Reason).To(Equal(ReasonInvalidSpec))
	g.Expect(condition(c, CondStalled).Message).To(ContainSubstring("spec.targets: a release of 2 targets"))
	g.Expect(c.Status.TargetNames).To(Equal("frontend,backend"))
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
