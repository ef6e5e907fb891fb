package record

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func at(min int) metav1.Time {
	return metav1.NewTime(time.Date(2026, 11, 27, 14, min, 0, 0, time.UTC))
}

// rolledBack is a checklist as tminus leaves one whose trigger fired after release.
func rolledBack() *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout-v2.4.1", UID: "7d1c", CreationTimestamp: at(0)},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v2.4.1",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Contacts: []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "Dana", Reach: "+1 555 0199 | #checkout-oncall"}},
				Runbooks: []deployv1alpha1.Runbook{{Title: "Sentry", URL: "https://sentry.io/checkout"}},
			},
		},
		Status: deployv1alpha1.DeploymentChecklistStatus{
			Phase: deployv1alpha1.PhaseRolledBack,
			Phases: []deployv1alpha1.PhaseStatus{
				{Name: "T-10m", State: "Passed", OpenedAt: new(at(1)), CompletedAt: new(at(3)), Checks: []deployv1alpha1.CheckStatus{
					{Name: "deployment-lead", Kind: "Approval", Outcome: "Passed", Message: "alice (verified)"},
					{Name: "smoke", Kind: "Job", Outcome: "Passed", Message: "Job checkout-v2.4.1-t-10m-smoke succeeded"},
				}},
				{Name: "T+5m", State: "Failed", OpenedAt: new(at(4)), Checks: []deployv1alpha1.CheckStatus{
					{Name: "error-rate", Kind: "Metric", Outcome: "Failed", Value: "0.083", Threshold: "< 0.01",
						Query:         `sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))`,
						LastEvaluated: new(at(6))},
				}},
			},
			Triggers: []deployv1alpha1.TriggerStatus{{Name: "error-rate-5pct", Outcome: "Failed", Value: "0.083",
				Threshold: "> 0.05", BreachingSince: new(at(6))}},
			Approvals: []deployv1alpha1.ApprovalRecord{
				{Role: "deployment-lead", Approver: "alice", Revision: "v2.4.1", FirstSeen: at(2), Verified: true,
					CandidateImages: []string{"shop/checkout:v2.4.1"}},
				{Role: "qa", Approver: "bob", Revision: "v2.4.1", FirstSeen: at(2), NotCounted: "not verified"},
			},
			Target: &deployv1alpha1.TargetStatus{PreDeployImages: []string{"shop/checkout:v2.4.0"}, PreDeployTemplateHash: "a1",
				CandidateTemplateHash: "b2", CandidateImages: []string{"shop/checkout:v2.4.1"}, ReleasedTemplateHash: "b2",
				T0At: new(at(3)), ReleasedAt: new(at(3)), AvailableAt: new(at(4)), RestoredAt: new(at(7))},
			Rollback: &deployv1alpha1.RollbackRecord{Reason: "error-rate-5pct", Value: "0.083", FiredAt: at(6),
				CompletedAt: new(at(7)), Message: "error-rate-5pct fired: 0.083 > 0.05"},
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "RolledBack",
				Message: "rolled back: error-rate-5pct fired", LastTransitionTime: at(7)}},
		},
	}
}

func TestARecordSaysWhatTheStatusSaidWhenTheReleaseEnded(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	cm, err := ConfigMap(dcl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*cm.Immutable).To(BeTrue())
	g.Expect(cm.OwnerReferences).To(BeEmpty(), "the record outlives its checklist")
	g.Expect(cm.Labels).To(Equal(map[string]string{KindLabel: KindValue, ChecklistLabel: "checkout-v2.4.1",
		TargetLabel: "checkout", ResultLabel: "RolledBack"}))

	r, err := Parse(cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Schema).To(Equal(Schema))
	g.Expect(r.Result).To(Equal("RolledBack"))
	g.Expect(r.Target.ReleasedImages).To(Equal([]string{"shop/checkout:v2.4.1"}))
	g.Expect(r.Phases[1].Checks[0].Query).To(ContainSubstring("http_requests_total"))
	g.Expect(r.SignOffs).To(HaveLen(2))
	g.Expect(r.SignOffs[0].Counted).To(BeTrue())
	g.Expect(r.SignOffs[1].Counted).To(BeFalse())
	g.Expect(r.Rollback.Reason).To(Equal("error-rate-5pct"))
	g.Expect(r.Timings.Ended.Equal(at(7).Time)).To(BeTrue())

	golden := filepath.Join("testdata", "rolled-back.md")
	md := Markdown(r)
	if *update {
		g.Expect(os.WriteFile(golden, []byte(md), 0o644)).To(Succeed())
	}
	want, err := os.ReadFile(golden)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(md).To(Equal(string(want)))
}

func TestARecordIsDueOnlyOnceTheReleaseHasEnded(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	g.Expect(Due(dcl)).To(BeTrue())
	dcl.Status.Rollback.CompletedAt = nil
	g.Expect(Due(dcl)).To(BeFalse(), "rolled back, but not seen restored yet")
	dcl.Status.Rollback.DryRun = true
	g.Expect(Due(dcl)).To(BeTrue(), "a dry run touches nothing")
	dcl.Status.Phase = deployv1alpha1.PhaseVerifying
	g.Expect(Due(dcl)).To(BeFalse())
	dcl.Status.Phase = deployv1alpha1.PhaseSucceeded
	g.Expect(Due(dcl)).To(BeTrue())
}

func TestARecordNameIsUniquePerChecklistAndValid(t *testing.T) {
	g := NewWithT(t)
	a, b := rolledBack(), rolledBack()
	b.UID = "other"
	g.Expect(Name(a)).NotTo(Equal(Name(b)), "the same name made again gets a record of its own")
	long := rolledBack()
	long.Name = strings.Repeat("a", 250)
	g.Expect(len(Name(long))).To(BeNumerically("<=", 253))
}

func TestARecordSaysAChangeFreezeWasBrokenByWhomAndWhy(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	dcl.Status.BreakGlass = &deployv1alpha1.BreakGlassRecord{Freezes: []string{"ClusterChangeFreeze holidays (holiday freeze)"},
		Reason: "INC-4211", Approvers: []string{"carol", "dave"}, At: at(3)}
	r := Build(dcl)
	g.Expect(r.BreakGlass).To(Equal(&BreakGlass{Freezes: []string{"ClusterChangeFreeze holidays (holiday freeze)"},
		Reason: "INC-4211", Approvers: []string{"carol", "dave"}, At: at(3).UTC()}))
	g.Expect(Markdown(r)).To(ContainSubstring("## Change freeze broken\n\n- **Freezes:** ClusterChangeFreeze holidays " +
		"(holiday freeze)\n- **By:** carol, dave\n- **Why:** INC-4211\n- **At:** 2026-11-27T14:03:00Z\n"))
}

func TestARecordListsTheContactsAndRunbooksOfTheTemplateWithTheChecklistsOwnWinning(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	dcl.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"}
	dcl.Status.Resolved = templates.Raw(deployv1alpha1.ChecklistBody{
		Contacts: []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "unassigned", Reach: "unassigned"},
			{Role: "Security Team", Name: "secops", Reach: "security@shop.example"}},
		Runbooks: []deployv1alpha1.Runbook{{Title: "Sentry", URL: "https://sentry.io"},
			{Title: "Health Check", URL: "http://checkout.shop.svc/health"}},
	})
	cm, err := ConfigMap(dcl)
	g.Expect(err).NotTo(HaveOccurred())
	r, err := Parse(cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Contacts).To(Equal([]Contact{{Role: "On-Call Engineer", Name: "Dana", Reach: "+1 555 0199 | #checkout-oncall"},
		{Role: "Security Team", Name: "secops", Reach: "security@shop.example"}}))
	g.Expect(r.Runbooks).To(Equal([]Runbook{{Title: "Sentry", URL: "https://sentry.io/checkout"},
		{Title: "Health Check", URL: "http://checkout.shop.svc/health"}}))
	md := Markdown(r)
	g.Expect(md).To(ContainSubstring("| Security Team | secops | security@shop.example |"))
	g.Expect(md).To(ContainSubstring("- [Health Check](http://checkout.shop.svc/health)"))
}

// TestARecordOfAReleaseInStepsSaysTheStepItReached: the StatefulSet rolled back at the
// first of two steps (one pod, then every pod).
func TestARecordOfAReleaseInStepsSaysTheStepItReached(t *testing.T) {
	g := NewWithT(t)
	dcl := rolledBack()
	dcl.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	dcl.Spec.Release = &deployv1alpha1.ReleaseSpec{Steps: []deployv1alpha1.ReleaseStep{{Pods: intstr.FromInt32(1), Phase: "T+5m"}}}
	dcl.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{{Kind: deployv1alpha1.KindStatefulSet, Name: "db",
		TargetStatus: deployv1alpha1.TargetStatus{Step: 1, ReleasedAt: new(at(3)), RestoredAt: new(at(7))}}}
	dcl.Status.Target = nil
	r := Build(dcl)
	g.Expect([]int32{r.Target.Step, r.Target.Steps}).To(Equal([]int32{1, 2}))
	g.Expect(Markdown(r)).To(ContainSubstring("- **Steps:** reached step 1 of 2\n"))
}
