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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/history"
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
	dcl.Status.Approvals = []deployv1alpha1.ApprovalRecord{{Role: "deployment-lead", Approver: "alice", Revision: "v2.7.0", FirstSeen: at, Verified: true}}
	body, _ := json.Marshal(map[string]any{"gate": "Pause", "historyLimit": 20, "phases": dcl.Spec.Phases, "metrics": dcl.Spec.Metrics})
	dcl.Status.Resolved = &k8sruntime.RawExtension{Raw: body}
	dcl.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"}
	return &dcl
}

// TestAStrippedChecklistNeverReachesTheEngineAndKeepsWhatTheGateReads: the cache's copy
// of an ended checklist gives the gate, the decision index, the history limit and the
// watches what the whole one gives, is smaller, and is refused by the engine: it
// cannot be turned into the checklist.Whole that Decide takes.
func TestAStrippedChecklistNeverReachesTheEngineAndKeepsWhatTheGateReads(t *testing.T) {
	g := NewWithT(t)
	whole := endedSeed(t)
	out, err := slim.Transform(whole.DeepCopy())
	g.Expect(err).NotTo(HaveOccurred())
	stripped := out.(*deployv1alpha1.DeploymentChecklist)
	g.Expect(slim.Stripped(stripped)).To(BeTrue())

	_, err = checklist.WholeOf(stripped)
	g.Expect(errors.Is(err, checklist.ErrStripped)).To(BeTrue(), "the engine refuses the cache's copy")
	_, err = checklist.WholeOf(whole)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(gate.FromChecklistFor(stripped, "checkout")).To(Equal(gate.FromChecklistFor(whole, "checkout")))
	g.Expect(gate.FromChecklistFor(stripped, "checkout").RolledBackHash).NotTo(BeEmpty())
	g.Expect(target.DecisionIndexFunc(stripped)).To(Equal(target.DecisionIndexFunc(whole)))
	g.Expect(target.ChecklistIndexFunc(stripped)).To(Equal(target.ChecklistIndexFunc(whole)))
	g.Expect(history.LimitOf(stripped)).To(Equal(20))
	g.Expect(history.Keys(stripped)).To(Equal(history.Keys(whole)))
	g.Expect(history.Ended(stripped)).To(BeTrue())
	g.Expect(stripped.Spec.ShardTarget()).To(Equal(whole.Spec.ShardTarget()))

	wholeSize, _ := json.Marshal(whole)
	strippedSize, _ := json.Marshal(stripped)
	t.Logf("serialized: whole %d bytes, stripped %d bytes", len(wholeSize), len(strippedSize))
	g.Expect(len(strippedSize)).To(BeNumerically("<", len(wholeSize)/3))

	// A live checklist, and one being deleted, are cached whole.
	live := whole.DeepCopy()
	live.Status.Phase = deployv1alpha1.PhaseVerifying
	out, _ = slim.Transform(live)
	g.Expect(slim.Stripped(out.(*deployv1alpha1.DeploymentChecklist))).To(BeFalse())
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
						o, _ = slim.Transform(o)
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
