package slim_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/history"
	"github.com/tminus-dev/tminus/internal/request"
	"github.com/tminus-dev/tminus/internal/slim"
	"github.com/tminus-dev/tminus/internal/target"
	"github.com/tminus-dev/tminus/test/testbed"
)

// endedSeed is the seed checklist (config/samples), decided once and ended rolled back,
// with the status tminus writes for its target and the resolved body of a template.
func endedSeed(t testing.TB) *deployv1alpha1.DeploymentChecklist {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "config", "samples", "deploy_v1alpha1_deploymentchecklist.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dcl deployv1alpha1.DeploymentChecklist
	if err := yaml.Unmarshal(raw, &dcl); err != nil {
		t.Fatal(err)
	}
	dcl.Namespace, dcl.UID, dcl.ResourceVersion = "shop", "uid-1", "7"
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	dcl.CreationTimestamp = metav1.NewTime(now.Add(-2 * time.Hour))
	dcl.Annotations = map[string]string{
		deployv1alpha1.ApprovalAnnotationPrefix + "deployment-lead": "alice for v2.7.0",
		deployv1alpha1.RetryOfAnnotation:                            "checkout-v2-6-9",
	}
	dcl.Status = checklist.Decide(checklist.MustWhole(&dcl), checklist.Observations{}, now).Status
	at := metav1.NewTime(now.Add(-time.Hour))
	tmpl := testbed.Deployment("shop", "checkout", "checkout:v2.6.9", 3).Spec.Template
	tmplRaw, _ := json.Marshal(tmpl)
	dcl.Status.Phase = deployv1alpha1.PhaseRolledBack
	dcl.Status.Rollback = &deployv1alpha1.RollbackRecord{Reason: "errors-5pct", Message: "error rate 0.07 above 0.05", FiredAt: at, CompletedAt: &at}
	dcl.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{{Kind: "Deployment", Name: "checkout", TargetStatus: deployv1alpha1.TargetStatus{
		PreDeployTemplate: &k8sruntime.RawExtension{Raw: tmplRaw}, PreDeployTemplateHash: gate.TemplateHash(&tmpl),
		PreDeployImages: []string{"checkout:v2.6.9"}, CapturedAt: &at, CandidateTemplateHash: "c0ffee" + gate.TemplateHash(&tmpl)[6:],
		CandidateImages: []string{"checkout:v2.7.0"}, T0At: &at, ReleasedAt: &at, ReleasedTemplateHash: "c0ffee" + gate.TemplateHash(&tmpl)[6:],
	}}}
	// Settled: the sign-off recorded as a manager without the webhook reads it, the
	// record written.
	dcl.Status.Approvals = []deployv1alpha1.ApprovalRecord{{Key: "deployment-lead", Role: "deployment-lead", Approver: "alice",
		Revision: "v2.7.0", FirstSeen: at}}
	meta.SetStatusCondition(&dcl.Status.Conditions, metav1.Condition{Type: checklist.CondRecorded, Status: metav1.ConditionTrue,
		Reason: "RecordKept", Message: "release record kept in ConfigMap tminus-record-checkout-v2-7-0-1x2y3z"})
	dcl.Status.Record, dcl.Status.RecordUID = "tminus-record-checkout-v2-7-0-1x2y3z", "uid-record"
	body, _ := json.Marshal(map[string]any{"gate": "Pause", "historyLimit": 20, "phases": dcl.Spec.Phases, "metrics": dcl.Spec.Metrics})
	dcl.Status.Resolved = &k8sruntime.RawExtension{Raw: body}
	dcl.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"}
	return &dcl
}

// readOfEnded is what the gate's readers read of an ended checklist: the rest of
// gate.Checklist (whether its target was captured, T-0 passed, the pre-deploy images,
// the candidate's hash, the checklist it retries, its turn) is read of live ones only.
func readOfEnded(c gate.Checklist) gate.Checklist {
	c.Captured, c.T0, c.WaitingTurn = false, false, false
	c.PreDeployImages, c.CandidateHash, c.RetryOf = nil, "", ""
	return c
}

// TestAStrippedChecklistNeverReachesTheEngineAndKeepsWhatTheGateReads: the cache's copy
// of a settled ended checklist gives the gate, the decision index, the history limit
// and the watches what the whole one gives, is smaller, and is refused by the engine:
// it cannot be turned into the checklist.Whole that Decide takes.
func TestAStrippedChecklistNeverReachesTheEngineAndKeepsWhatTheGateReads(t *testing.T) {
	g := NewWithT(t)
	whole := endedSeed(t)
	rule := &slim.Rule{}
	g.Expect(rule.Owed(whole)).To(BeEmpty())
	out, err := rule.Transform(whole.DeepCopy())
	g.Expect(err).NotTo(HaveOccurred())
	stripped := out.(*deployv1alpha1.DeploymentChecklist)
	g.Expect(slim.Stripped(stripped)).To(BeTrue())

	_, err = checklist.WholeOf(stripped)
	g.Expect(errors.Is(err, checklist.ErrStripped)).To(BeTrue(), "the engine refuses the cache's copy")
	_, err = checklist.WholeOf(whole)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(readOfEnded(gate.FromChecklistFor(stripped, "checkout"))).To(Equal(readOfEnded(gate.FromChecklistFor(whole, "checkout"))))
	g.Expect(gate.FromChecklistFor(stripped, "checkout").RolledBackHash).NotTo(BeEmpty())
	g.Expect(gate.GateOf(stripped)).To(Equal(gate.GateOf(whole)))
	g.Expect(target.DecisionIndexFunc(stripped)).To(Equal(target.DecisionIndexFunc(whole)))
	g.Expect(target.ChecklistIndexFunc(stripped)).To(Equal(target.ChecklistIndexFunc(whole)))
	g.Expect(history.LimitOf(stripped)).To(Equal(20))
	g.Expect(history.Keys(stripped)).To(Equal(history.Keys(whole)))
	g.Expect(history.Ended(stripped)).To(BeTrue())
	g.Expect(stripped.Spec.ShardTarget()).To(Equal(whole.Spec.ShardTarget()))
	g.Expect(stripped.Status.Resolved).NotTo(BeNil(), "the template watch asks whether one was resolved")
	g.Expect(stripped.Spec.Revision).To(Equal(whole.Spec.Revision), "the request webhook's retry check")

	wholeSize, _ := json.Marshal(whole)
	strippedSize, _ := json.Marshal(stripped)
	t.Logf("serialized: whole %d bytes, stripped %d bytes", len(wholeSize), len(strippedSize))
	g.Expect(len(strippedSize)).To(BeNumerically("<", len(wholeSize)/10))

	// A checklist that succeeded refuses nothing: the gate reads only its name and phase.
	ok := whole.DeepCopy()
	ok.Status.Phase, ok.Status.Rollback = deployv1alpha1.PhaseSucceeded, nil
	out, _ = rule.Transform(ok.DeepCopy())
	g.Expect(slim.Stripped(out.(*deployv1alpha1.DeploymentChecklist))).To(BeTrue())
	g.Expect(readOfEnded(gate.FromChecklistFor(out.(*deployv1alpha1.DeploymentChecklist), "checkout"))).NotTo(
		Equal(readOfEnded(gate.FromChecklistFor(ok, "checkout"))), "its targets' hashes are not kept")
	g.Expect(target.DecisionIndexFunc(out.(*deployv1alpha1.DeploymentChecklist))).To(BeEmpty())

	// A live checklist is cached whole.
	live := whole.DeepCopy()
	live.Status.Phase = deployv1alpha1.PhaseVerifying
	out, _ = rule.Transform(live)
	g.Expect(slim.Stripped(out.(*deployv1alpha1.DeploymentChecklist))).To(BeFalse())
}

// TestAnEndedChecklistThatOwesSomethingIsCachedWhole: each thing a reconcile of an
// ended checklist would still do, shown by the checklist itself, keeps it whole in the
// cache (so the reconciler decides on it with no read from the API server); once done,
// the checklist is stripped.
func TestAnEndedChecklistThatOwesSomethingIsCachedWhole(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name string
		rule slim.Rule
		owe  func(*deployv1alpha1.DeploymentChecklist)
		owed string
	}{
		{"deleted", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) { d.DeletionTimestamp = &now }, slim.OwedDeletion},
		{"the finalizer of an earlier version", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Finalizers = []string{deployv1alpha1.ReleaseGuardFinalizer}
		}, slim.OwedFinalizer},
		{"its spec changed", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) { d.Generation++ }, slim.OwedSpec},
		{"the rollback not seen restored", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Status.Rollback.CompletedAt = nil
		}, slim.OwedRestore},
		{"the record not written", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			meta.SetStatusCondition(&d.Status.Conditions, metav1.Condition{Type: checklist.CondRecorded, Status: metav1.ConditionFalse,
				Reason: checklist.ReasonRecordPending})
		}, slim.OwedRecord},
		{"a notification not sent", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Status.Notifications = []deployv1alpha1.NotificationStatus{{Event: deployv1alpha1.NotifyRolledBack, Key: "RolledBack",
				Receiver: "oncall/slack", At: now, State: deployv1alpha1.NotificationPending}}
		}, slim.OwedNotification},
		{"a sign-off given after the end", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Annotations[deployv1alpha1.ApprovalAnnotationPrefix+"qa-lead"] = "bob for v2.7.0"
		}, slim.OwedAnnotation},
		{"a sign-off taken back after the end", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			delete(d.Annotations, deployv1alpha1.ApprovalAnnotationPrefix+"deployment-lead")
		}, slim.OwedAnnotation},
		{"a sign-off verified, read by a manager that trusts the webhook", slim.Rule{VerifiedApprovals: true},
			func(d *deployv1alpha1.DeploymentChecklist) {
				d.Annotations[approval.VerifiedPrefix+"deployment-lead"] = "alice for v2.7.0 | alice | template none"
			}, slim.OwedAnnotation},
		{"a request not answered", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Annotations[deployv1alpha1.RollbackRequestedAnnotation] = "carol: errors in the new checkout"
		}, slim.OwedAnnotation},
		{"an annotation that cannot be read", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Annotations[deployv1alpha1.ApprovalAnnotationPrefix+"qa-lead"] = "bob"
		}, slim.OwedAnnotation},
		{"a status of an earlier version", slim.Rule{}, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Status.Target = &d.Status.Targets[0].TargetStatus
			d.Status.Targets = nil
		}, slim.OwedUpgrade},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dcl := endedSeed(t)
			g.Expect(tc.rule.Owed(dcl)).To(BeEmpty(), "settled before")
			tc.owe(dcl)
			g.Expect(tc.rule.Owed(dcl)).To(ContainElement(tc.owed))
			out, err := tc.rule.Transform(dcl)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(slim.Stripped(out.(*deployv1alpha1.DeploymentChecklist))).To(BeFalse())
			g.Expect(out.(*deployv1alpha1.DeploymentChecklist).Status.Phases).NotTo(BeEmpty(), "cached whole")
		})
	}
}

// TestARequestAnsweredAfterTheEndIsNotOwedAgain: a rollback request on a release that
// already ended is answered once (status.request says it is not acted on); the
// checklist is then settled and stripped.
func TestARequestAnsweredAfterTheEndIsNotOwedAgain(t *testing.T) {
	g := NewWithT(t)
	dcl := endedSeed(t)
	dcl.Annotations[deployv1alpha1.RollbackRequestedAnnotation] = "carol: errors in the new checkout"
	rule := &slim.Rule{}
	g.Expect(rule.Owed(dcl)).To(ConsistOf(slim.OwedAnnotation))
	now := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	obs := checklist.Observations{Targets: []checklist.TargetState{{Found: true}}}
	obs.Requests, obs.RequestProblems = request.Read(dcl.Annotations, false)
	obs.Approvals, obs.ApprovalProblems = approval.Parse(dcl.Annotations, approval.Revision(dcl), false)
	dcl.Status = checklist.Decide(checklist.MustWhole(dcl), obs, now).Status
	g.Expect(dcl.Status.Request).NotTo(BeNil())
	g.Expect(rule.Owed(dcl)).To(BeEmpty())
}

// BenchmarkCachedEndedChecklists measures what n ended checklists (the seed, ended
// rolled back, each decoded from its JSON as an informer decodes it) hold on the heap,
// cached whole and stripped. It reports bytes per checklist.
//
//	go test ./internal/slim -run XXX -bench CachedEndedChecklists -benchtime 1x
func BenchmarkCachedEndedChecklists(b *testing.B) {
	const n = 5000
	raw, err := json.Marshal(endedSeed(b))
	if err != nil {
		b.Fatal(err)
	}
	rule := &slim.Rule{}
	for _, strip := range []bool{false, true} {
		name := "whole"
		if strip {
			name = "stripped"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				kept := make([]any, 0, n)
				for range n {
					var dcl deployv1alpha1.DeploymentChecklist
					if err := json.Unmarshal(raw, &dcl); err != nil {
						b.Fatal(err)
					}
					var o any = &dcl
					if strip {
						o, _ = rule.Transform(o)
					}
					kept = append(kept, o)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/checklist")
				runtime.KeepAlive(kept)
			}
		})
	}
}
