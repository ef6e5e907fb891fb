package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

var at = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

func rolledBack(dry bool) *deployv1alpha1.DeploymentChecklist {
	fired, restored := metav1.NewTime(at), metav1.NewTime(at.Add(5*time.Second))
	c := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: "shop"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Name: "checkout"},
			Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Phases: []deployv1alpha1.PhaseSpec{{Name: "T+5m", At: "5m", Checks: []deployv1alpha1.CheckSpec{{Name: "errors", Metric: "error-rate"}}}},
			},
		},
		Status: deployv1alpha1.DeploymentChecklistStatus{
			Phase: deployv1alpha1.PhaseRolledBack,
			Rollback: &deployv1alpha1.RollbackRecord{Reason: "TriggerFired", FiredAt: fired, DryRun: dry,
				Message: "rollback trigger errors-5pct fired: 0.07 > 0.05", Value: "0.07"},
			Target: &deployv1alpha1.TargetStatus{PreDeployRevision: "4", RestoredAt: &restored},
		},
	}
	if !dry {
		c.Status.Rollback.CompletedAt = &restored
	}
	return c
}

func TestWhySaysWhatFiredAndWhatWasRestored(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Why(rolledBack(false), at)).To(Equal("shop/checkout-v2 rolled back at 2026-11-26T20:00:00Z because rollback trigger errors-5pct fired: " +
		"0.07 > 0.05. Deployment checkout runs its pre-deploy template again (revision 4) since 2026-11-26T20:00:05Z."))
	g.Expect(Why(rolledBack(true), at)).To(ContainSubstring("would have rolled back"))
	g.Expect(Why(&deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "y"}}, at)).
		To(ContainSubstring("is the tminus manager running?"))
}

func TestTheTimelineShowsTheRollback(t *testing.T) {
	g := NewWithT(t)
	var b bytes.Buffer
	g.Expect(Timeline(&b, rolledBack(false), at)).To(Succeed())
	g.Expect(b.String()).To(ContainSubstring("ROLLBACK  TriggerFired at 2026-11-26T20:00:00Z: rollback trigger errors-5pct fired"))
	g.Expect(b.String()).To(ContainSubstring("restored at 2026-11-26T20:00:05Z"))
	g.Expect(b.String()).To(MatchRegexp(`T\+5m \(5m\)\s+Pending\s+-\s+errors`))
}

func TestWhyAFailedChecklistSaysWhatTheDeploymentIsLeftWith(t *testing.T) {
	g := NewWithT(t)
	c := rolledBack(false)
	c.Status.Phase, c.Status.Rollback = deployv1alpha1.PhaseFailed, nil
	c.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "MissedDeployWindow",
		Message: "missed the deploy window: T-0 was 2026-11-26T20:00:00Z"}}
	why := Why(c, at)
	g.Expect(why).To(ContainSubstring("ended without a verified release (MissedDeployWindow): missed the deploy window"))
	g.Expect(why).To(ContainSubstring("deploy.tminus.dev/hold-reason"))
}

func TestTheTimelineShowsEachBaselineWhereItWasMeasured(t *testing.T) {
	g := NewWithT(t)
	c := rolledBack(false)
	c.Status.Baselines = []deployv1alpha1.BaselineStatus{{Metric: "p95", Result: "Value", Value: "0.0975", At: metav1.NewTime(at.Add(-time.Hour))}}
	var b bytes.Buffer
	g.Expect(Timeline(&b, c, at)).To(Succeed())
	g.Expect(b.String()).To(ContainSubstring("BASELINES (each metric at T-0, as the version that served before)"))
	g.Expect(b.String()).To(MatchRegexp(`p95\s+Value\s+0\.0975\s+2026-11-26T19:00:00Z`))
}

// TestStatusAndWhyShowEachTargetOfASequentialRelease: the backend is released and
// rolling out, the frontend waits its turn; status shows a row per target with the
// values judged for it, and why says where each stands.
func TestStatusAndWhyShowEachTargetOfASequentialRelease(t *testing.T) {
	g := NewWithT(t)
	at := metav1.NewTime(time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC))
	dcl := &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Name: "orders-v3", Namespace: "shop"}}
	dcl.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "orders-api"}, {Kind: "Deployment", Name: "orders-web"}}
	dcl.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: deployv1alpha1.ReleaseSequential}
	dcl.Spec.RollbackTriggers = []deployv1alpha1.RollbackTrigger{{Name: "api-errors", Metric: "error-rate", Target: "orders-api"}}
	dcl.Status.Phase = deployv1alpha1.PhaseDeploying
	dcl.Status.Releasing = "orders-api"
	dcl.Status.NextAction = "waiting for the rollout: orders-api 1 of 2 replicas updated"
	dcl.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{
		{Kind: "Deployment", Name: "orders-api", TargetStatus: deployv1alpha1.TargetStatus{CapturedAt: &at, T0At: &at, ReleasedAt: &at,
			PreDeployImages: []string{"api:v3.0"}, CandidateImages: []string{"api:v3.1"}, CandidateTemplateHash: "a2", ReleasedTemplateHash: "a2"}},
		{Kind: "Deployment", Name: "orders-web", TargetStatus: deployv1alpha1.TargetStatus{CapturedAt: &at, T0At: &at,
			PreDeployImages: []string{"web:v3.0"}, CandidateImages: []string{"web:v3.1"}, CandidateTemplateHash: "w2"}},
	}
	dcl.Status.Triggers = []deployv1alpha1.TriggerStatus{{Name: "api-errors", Target: "orders-api", Outcome: deployv1alpha1.OutcomePass, Value: "0.004"}}

	var out strings.Builder
	g.Expect(Timeline(&out, dcl, at.Time)).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("TARGETS (released Sequential)"))
	g.Expect(out.String()).To(MatchRegexp(`orders-api\s+released, rolling out\s+api:v3.0\s+api:v3.1\s+17:00:00\s+trigger api-errors=0.004`))
	g.Expect(out.String()).To(MatchRegexp(`orders-web\s+held, waiting for orders-api to roll out\s+web:v3.0\s+web:v3.1\s+-\s+-`))
	g.Expect(Why(dcl, at.Time)).To(ContainSubstring("Targets: orders-api released, rolling out; orders-web held, waiting for orders-api to roll out."))
}

// TestWhyNamesAStatefulSetTargetByItsKind: what a rollback restored and what a failed
// release leaves a StatefulSet with are said of the StatefulSet, with the kubectl
// command that describes it, not of a Deployment.
func TestWhyNamesAStatefulSetTargetByItsKind(t *testing.T) {
	g := NewWithT(t)
	c := rolledBack(false)
	c.Name, c.Spec.Target = "db-v2", &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	g.Expect(Why(c, at)).To(Equal("shop/db-v2 rolled back at 2026-11-26T20:00:00Z because rollback trigger errors-5pct fired: " +
		"0.07 > 0.05. StatefulSet db runs its pre-deploy template again (revision 4) since 2026-11-26T20:00:05Z."))

	c.Status.Phase, c.Status.Rollback = deployv1alpha1.PhaseFailed, nil
	c.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "MissedDeployWindow",
		Message: "missed the deploy window"}}
	why := Why(c, at)
	g.Expect(why).To(ContainSubstring("StatefulSet db keeps serving what it served"))
	g.Expect(why).To(ContainSubstring("kubectl describe statefulset db shows deploy.tminus.dev/hold-reason"))
	g.Expect(why).NotTo(ContainSubstring("Deployment"))
}
