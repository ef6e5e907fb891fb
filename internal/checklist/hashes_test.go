package checklist

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
)

// realHashes gives the target its templates' real hashes (the fixtures use names).
func realHashes(t TargetState) TargetState {
	t.TemplateHash = gate.TemplateHash(t.Template)
	t.ServingHash = gate.TemplateHash(t.Serving)
	t.PodTemplateHashes = map[string]string{gate.TemplateHash(t.Serving): t.ServingPodTemplateHash}
	return t
}

// TestAReleaseInFlightAcrossTheUpgradeKeepsItsTemplatesAndSignOffs: the previous
// version recorded 16-hex-digit template hashes and a sign-off for the candidate; this
// version hashes with the whole digest. The sign-off still counts for the same
// template, the release goes out, and status now holds the whole digests.
func TestAReleaseInFlightAcrossTheUpgradeKeepsItsTemplatesAndSignOffs(t *testing.T) {
	g := NewWithT(t)
	c := newChecklist(withDeployAt(t0, "30m"))
	obs := Observations{Targets: []TargetState{realHashes(heldTarget())}, Approvals: approved("deployment-lead"), Metrics: errorRate(0.001, "0.001")}
	run(c, obs, t0.Add(-10*time.Minute))
	g.Expect(c.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	v1, v2 := c.Status.Targets[0].PreDeployTemplateHash, c.Status.Targets[0].CandidateTemplateHash
	g.Expect(v2).To(HaveLen(64))
	g.Expect(c.Status.Approvals).To(HaveLen(1))

	// What the previous version stored: status.target, short hashes.
	ts := c.Status.Targets[0].TargetStatus.DeepCopy()
	c.Status.Targets, c.Status.Target = nil, ts
	ts.PreDeployTemplateHash, ts.CandidateTemplateHash = v1[:16], v2[:16]
	c.Status.Approvals[0].CandidateTemplateHash = v2[:16]

	d := run(c, obs, t0.Add(-5*time.Minute))
	g.Expect(c.Status.Approvals[0].NotCounted).To(BeEmpty(), "the sign-off was given for this very template")
	g.Expect(reasons(d.Events)).NotTo(ContainElement(ReasonApprovalNotCounted))
	g.Expect(c.Status.Targets[0].CandidateTemplateHash).To(Equal(v2))
	g.Expect(c.Status.Targets[0].PreDeployTemplateHash).To(Equal(v1))
	g.Expect(c.Status.Approvals[0].CandidateTemplateHash).To(Equal(v2))

	d = run(c, obs, t0)
	g.Expect(kinds(d.Actions)).To(Equal([]ActionKind{ActionRelease}))
	g.Expect(c.Status.Targets[0].ReleasedTemplateHash).To(Equal(v2))
}
