package plugin

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// TestRollbackAndAbortWriteTheRequestAsTheCurrentUserWithTheReason: the plugin writes
// the annotation the webhook verifies (internal/webhook's request tests judge it);
// status shows what tminus made of it.
func TestRollbackAndAbortWriteTheRequestAsTheCurrentUserWithTheReason(t *testing.T) {
	g := NewWithT(t)
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: "default"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{Phases: []deployv1alpha1.PhaseSpec{{Name: "T-15m", At: "-15m",
				Checks: []deployv1alpha1.CheckSpec{{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}}}}}},
		},
	}
	g.Expect(bed.Client.Create(ctx, dcl)).To(Succeed())
	get := func() *deployv1alpha1.DeploymentChecklist {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(dcl), &cur)).To(Succeed())
		return &cur
	}

	_, err := run(t, bed, "rollback", "checkout-v2")
	g.Expect(err).To(MatchError(ContainSubstring(`required flag(s) "reason" not set`)))
	_, err = run(t, bed, "rollback", "checkout-v2", "--reason", "  ")
	g.Expect(err).To(MatchError(ContainSubstring("--reason is required")))

	out, err := run(t, bed, "rollback", "checkout-v2", "--reason", "CVE-2026-1234 in the new image")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("deploymentchecklist/checkout-v2: rollback requested by testbed-admin"))
	g.Expect(get().Annotations).To(HaveKeyWithValue(deployv1alpha1.RollbackRequestedAnnotation,
		"testbed-admin: CVE-2026-1234 in the new image"))

	_, err = run(t, bed, "abort", "checkout-v2", "--reason", "wrong build", "--as-requester", "carol")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(get().Annotations).To(HaveKeyWithValue(deployv1alpha1.AbortRequestedAnnotation, "carol: wrong build"))

	// status and why say what tminus made of it.
	cur := get()
	cur.Status = deployv1alpha1.DeploymentChecklistStatus{Phase: deployv1alpha1.PhaseRunning, NextAction: "waiting for T-15m",
		Request: &deployv1alpha1.RequestRecord{Kind: deployv1alpha1.RequestRollback, By: "testbed-admin",
			Reason: "CVE-2026-1234 in the new image", WrittenBy: "testbed-admin", State: deployv1alpha1.RequestNotApplicable,
			At:      metav1.Now(),
			Message: "rollback requested by testbed-admin (CVE-2026-1234 in the new image) is not acted on: T-0 has not passed"}}
	g.Expect(bed.Client.Status().Update(ctx, cur)).To(Succeed())
	out, err = run(t, bed, "status", "checkout-v2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(MatchRegexp(`REQUEST  Rollback by testbed-admin at \S+: CVE-2026-1234 in the new image; NotApplicable: .*T-0 has not passed`))
	out, err = run(t, bed, "why", "checkout-v2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("Rollback requested by testbed-admin (CVE-2026-1234 in the new image) is not acted on: T-0 has not passed."))
}
