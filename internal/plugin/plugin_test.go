package plugin

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/version"
	"github.com/tminus-dev/tminus/test/testbed"
)

func run(t *testing.T, bed *testbed.Bed, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewCommand(&out, &errOut)
	cmd.SetArgs(append([]string{"--kubeconfig", bed.Kubeconfig, "--namespace", "default"}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestThePluginApprovesRevokesAndReportsAgainstTheTestBed(t *testing.T) {
	g := NewWithT(t)
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: "default"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Phases: []deployv1alpha1.PhaseSpec{{Name: "T-15m", At: "-15m", Checks: []deployv1alpha1.CheckSpec{
					{Name: "security", Approval: &deployv1alpha1.ApprovalCheck{Role: "security-review", Count: 2}},
				}}},
			},
		},
	}
	g.Expect(bed.Client.Create(ctx, dcl)).To(Succeed())
	get := func() *deployv1alpha1.DeploymentChecklist {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(dcl), &cur)).To(Succeed())
		return &cur
	}

	out, err := run(t, bed, "approve", "checkout-v2", "--role", "security-review")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("testbed-admin approved security-review for v2"))
	g.Expect(get().Annotations).To(HaveKeyWithValue("approve.tminus.dev/security-review", "testbed-admin for v2"),
		"the approver is the current user, as the API server knows it")

	_, err = run(t, bed, "approve", "checkout-v2", "--role", "security-review", "--approver", "bob@example.com")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(get().Annotations).To(HaveKeyWithValue("approve.tminus.dev/security-review.bob-example.com", "bob@example.com for v2"),
		"a second approver of the role gets a key of their own")

	_, err = run(t, bed, "revoke", "checkout-v2", "--role", "security-review", "--approver", "bob@example.com")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(get().Annotations).NotTo(HaveKey("approve.tminus.dev/security-review.bob-example.com"))
	_, err = run(t, bed, "revoke", "checkout-v2", "--role", "operations")
	g.Expect(err).To(MatchError(ContainSubstring("has no operations approval by testbed-admin")))

	// status and why read what the controller wrote.
	cur := get()
	now := metav1.NewTime(time.Now())
	cur.Status = deployv1alpha1.DeploymentChecklistStatus{
		Phase: deployv1alpha1.PhaseRunning, CurrentPhase: "T-15m",
		NextAction: "waiting for T-15m: security Pending: waiting for security-review sign-off (1 of 2)",
		Phases: []deployv1alpha1.PhaseStatus{{Name: "T-15m", State: deployv1alpha1.PhaseStateOpen, OpenedAt: &now,
			Checks: []deployv1alpha1.CheckStatus{{Name: "security", Kind: "Approval", Outcome: deployv1alpha1.OutcomePending,
				Value: "testbed-admin", Message: "waiting for security-review sign-off (1 of 2)"}}}},
		Approvals: []deployv1alpha1.ApprovalRecord{{Role: "security-review", Approver: "testbed-admin", Revision: "v2", FirstSeen: now}},
		Conditions: []metav1.Condition{{Type: "AwaitingApproval", Status: metav1.ConditionTrue, Reason: "WaitingForApproval",
			Message: "waiting for T-15m/security", LastTransitionTime: now}},
	}
	g.Expect(bed.Client.Status().Update(ctx, cur)).To(Succeed())
	out, err = run(t, bed, "status", "checkout-v2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("Phase:  Running (T-15m open)"))
	g.Expect(out).To(MatchRegexp(`T-15m \(-15m\)\s+Open\s+\S+\s+security\s+Approval\s+Pending\s+testbed-admin`))
	g.Expect(out).To(MatchRegexp(`security-review\s+testbed-admin\s+v2`))
	out, err = run(t, bed, "why", "checkout-v2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("default/checkout-v2 is running: waiting for T-15m"))
	g.Expect(out).To(ContainSubstring("kubectl checklist approve checkout-v2 --role <role>"))
}

func TestKeysForASecondApproverNeverOverwriteTheFirst(t *testing.T) {
	g := NewWithT(t)
	ann := map[string]string{"approve.tminus.dev/ops": "alice for v2"}
	g.Expect(KeyFor(nil, "ops", "alice")).To(Equal("ops"))
	g.Expect(KeyFor(ann, "ops", "alice")).To(Equal("ops"), "re-approving (a new revision) reuses your key")
	g.Expect(KeyFor(ann, "ops", "system:serviceaccount:argocd:argocd")).To(Equal("ops.system-serviceaccount-argocd-argocd"))
	long := KeyFor(ann, "ops", "someone-with-a-really-long-name@a-very-long-domain.example.com")
	g.Expect(len(long)).To(BeNumerically("<=", 63))
}

func TestASignOffThatNoLongerCountsIsGivenAgainUnderANewKey(t *testing.T) {
	g := NewWithT(t)
	dcl := &deployv1alpha1.DeploymentChecklist{}
	dcl.Annotations = map[string]string{"approve.tminus.dev/ops": "alice for v2"}
	dcl.Spec.Target = &deployv1alpha1.TargetRef{Name: "checkout"}
	dcl.Status.Target = &deployv1alpha1.TargetStatus{CandidateTemplateHash: "0a1b2c3d4e5f6a7b"} // as stored before status.targets
	g.Expect(resignKey(dcl, "ops", "alice for v2")).To(BeEmpty(), "no record says it does not count")
	dcl.Status.Approvals = []deployv1alpha1.ApprovalRecord{{Key: "ops", Role: "ops", Approver: "alice", Revision: "v2",
		CandidateTemplateHash: "ffffffffffffffff", NotCounted: "given for checkout:v2, but the Deployment now holds checkout:v3"}}
	g.Expect(resignKey(dcl, "ops", "alice for v2")).To(Equal("ops.alice-0a1b2c3d"))
	g.Expect(resignKey(dcl, "ops", "alice for v3")).To(BeEmpty(), "a different value is a new sign-off anyway")
}

func TestNewWritesTheTenLinesOfAReleaseFromATemplate(t *testing.T) {
	g := NewWithT(t)
	dcl, err := NewChecklist("checkout-v2-8-0", "shop", newOptions{template: "cluster/web-release", targets: []string{"checkout"},
		revision: "v2.8.0", params: []string{"errorBudget=0.02", "soak=10m"}, deployAt: "2026-11-27T20:00:00Z"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dcl.Spec.TemplateRef).To(Equal(&deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"}))
	g.Expect(dcl.Spec.Parameters).To(Equal(map[string]string{"errorBudget": "0.02", "soak": "10m"}))
	g.Expect(dcl.Spec.DeployAt.UTC().Format(time.RFC3339)).To(Equal("2026-11-27T20:00:00Z"))
	ns, err := NewChecklist("x", "shop", newOptions{template: "web-release", targets: []string{"checkout"}, revision: "v1"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ns.Spec.TemplateRef.Kind).To(Equal("ChecklistTemplate"))
	g.Expect(ns.Spec.Target).To(Equal(&deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}))
	two, err := NewChecklist("shop-v2", "shop", newOptions{template: "two-tier", targets: []string{"frontend", "backend"}, revision: "v2"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(two.Spec.Target).To(BeNil())
	g.Expect(two.Spec.TargetNames()).To(Equal([]string{"frontend", "backend"}))
	_, err = NewChecklist("x", "shop", newOptions{template: "web-release", params: []string{"budget"}})
	g.Expect(err).To(MatchError(ContainSubstring("want KEY=VALUE")))
}

func TestThePluginSaysItsVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := NewCommand(&out, &errOut)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "kubectl-checklist "+version.Version+" ") {
		t.Fatalf("--version said %q", out.String())
	}
}

func TestNewWritesTheReleaseOrderAndRefusesAnUnknownOne(t *testing.T) {
	g := NewWithT(t)
	seq, err := NewChecklist("shop-v2", "shop", newOptions{template: "two-tier", targets: []string{"backend", "frontend"},
		revision: "v2", releaseOrder: "Sequential"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(seq.Spec.Release).To(Equal(&deployv1alpha1.ReleaseSpec{Order: deployv1alpha1.ReleaseSequential}))
	_, err = NewChecklist("shop-v2", "shop", newOptions{template: "two-tier", targets: []string{"backend", "frontend"},
		revision: "v2", releaseOrder: "backend-first"})
	g.Expect(err).To(MatchError(ContainSubstring("--release-order")))
}

func TestNewTargetsTheKindItsTargetNamesAndANameAloneIsADeployment(t *testing.T) {
	g := NewWithT(t)
	one, err := NewChecklist("db-v2", "shop", newOptions{template: "db-release", targets: []string{"StatefulSet/db"}, revision: "v2"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(one.Spec.Target).To(Equal(&deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}))

	all, err := NewChecklist("shop-v2", "shop", newOptions{template: "two-tier",
		targets: []string{"deployment/web", "statefulset/db", "daemonset/agent", "checkout", "DS/node-exporter", "sts/cache"}, revision: "v2"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(all.Spec.Target).To(BeNil())
	g.Expect(all.Spec.Targets).To(Equal([]deployv1alpha1.TargetRef{
		{Kind: deployv1alpha1.KindDeployment, Name: "web"},
		{Kind: deployv1alpha1.KindStatefulSet, Name: "db"},
		{Kind: deployv1alpha1.KindDaemonSet, Name: "agent"},
		{Kind: deployv1alpha1.KindDeployment, Name: "checkout"},
		{Kind: deployv1alpha1.KindDaemonSet, Name: "node-exporter"},
		{Kind: deployv1alpha1.KindStatefulSet, Name: "cache"},
	}), "in the order given, a name alone a Deployment")

	_, err = NewChecklist("x", "shop", newOptions{template: "t", targets: []string{"web", "cronjob/nightly"}, revision: "v2"})
	g.Expect(err).To(MatchError(And(ContainSubstring(`--target "cronjob/nightly"`), ContainSubstring(`kind "cronjob"`),
		ContainSubstring("deployment, statefulset or daemonset"))))
	for _, bad := range []string{"statefulset/", "daemonset/a/b"} {
		_, err = NewChecklist("x", "shop", newOptions{template: "t", targets: []string{bad}, revision: "v2"})
		g.Expect(err).To(MatchError(ContainSubstring("--target %q", bad)), bad)
	}
}
