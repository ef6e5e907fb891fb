package plugin

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/templates"
	"github.com/tminus-dev/tminus/test/testbed"
)

func TestStatusAndWhyNameTheContactsAndRunbooksTheReleasesOwnOnCallWinningOverItsTemplates(t *testing.T) {
	g := NewWithT(t)
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()

	// A release made from a template names its own on-call engineer.
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v3", Namespace: "default"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:      &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision:    "v3",
			TemplateRef: &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"},
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Contacts: []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "Dana", Reach: "+1 555 0199"}},
			},
		},
	}
	g.Expect(bed.Client.Create(ctx, dcl)).To(Succeed())

	// The controller resolved the template: its contacts and runbooks, parameters filled in.
	dcl.Status = deployv1alpha1.DeploymentChecklistStatus{
		Phase: deployv1alpha1.PhaseRunning,
		Resolved: templates.Raw(deployv1alpha1.ChecklistBody{
			Phases: []deployv1alpha1.PhaseSpec{{Name: "T-15m", At: "-15m", Checks: []deployv1alpha1.CheckSpec{
				{Name: "security", Approval: &deployv1alpha1.ApprovalCheck{Role: "security-review"}}}}},
			Contacts: []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "unassigned", Reach: "unassigned"},
				{Role: "DevOps Lead", Name: "Sam Lee", Reach: "#devops"}},
			Runbooks: []deployv1alpha1.Runbook{{Title: "Sentry", URL: "https://sentry.io"}},
		}),
	}
	g.Expect(bed.Client.Status().Update(ctx, dcl)).To(Succeed())

	out, err := run(t, bed, "status", "checkout-v3")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(MatchRegexp(`CONTACTS\nROLE\s+NAME\s+REACH\nOn-Call Engineer\s+Dana\s+\+1 555 0199\nDevOps Lead\s+Sam Lee\s+#devops\n`))
	g.Expect(out).NotTo(ContainSubstring("unassigned"), "the release's own on-call replaces the template's")
	g.Expect(out).To(MatchRegexp(`RUNBOOKS\nSentry\s+https://sentry.io\n`))

	out, err = run(t, bed, "why", "checkout-v3")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("Contacts: On-Call Engineer Dana (+1 555 0199); DevOps Lead Sam Lee (#devops). Runbooks: Sentry https://sentry.io."))
}
