package webhook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	engine "github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/controller"
	"github.com/tminus-dev/tminus/internal/operator"
	"github.com/tminus-dev/tminus/test/testbed"
)

const (
	ns     = "shop"
	gitops = "system:serviceaccount:argocd:argocd-application-controller"
)

var bed *testbed.Bed

// cached reads through the package manager's cache (its informers and indexes), and
// fresh from the API server: what the webhooks read.
var cached, fresh client.Reader

// TestMain starts the API server with the webhook configuration from config/webhook and
// a manager serving the webhook, trusting one GitOps service account.
func TestMain(m *testing.M) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root, err := testbed.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bed, err = testbed.Start(ctx, testbed.Options{Cluster: true, WebhookPaths: []string{filepath.Join(root, "config", "webhook")}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer bed.Stop()
		host, port, certDir := bed.Webhook()
		if logFile, err := os.Create(filepath.Join(bed.Dir, "tminus-manager.log")); err == nil {
			logf.SetLogger(zap.New(zap.WriteTo(logFile), zap.UseDevMode(true)))
		}
		cfg := rest.CopyConfig(bed.Config)
		cfg.QPS, cfg.Burst = 100, 200 // the manager binary's defaults
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme:                 bed.Client.Scheme(),
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			Cache:                  controller.StrippingCacheOptions(true),
			WebhookServer:          crwebhook.NewServer(crwebhook.Options{Host: host, Port: port, CertDir: certDir}),
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		metrics.set(errorQuery, 0.001)
		if _, err := operator.Setup(mgr, operator.Options{
			Metrics: metrics, Webhooks: true, TrustedApprovalWriters: []string{gitops},
		}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cached, fresh = mgr.GetClient(), mgr.GetAPIReader()
		mgrCtx, stopMgr := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			_ = mgr.Start(mgrCtx)
		}()
		defer func() {
			stopMgr()
			<-stopped
		}()
		if err := setUp(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// setUp creates the namespace, an approver role (the approve verb on deploymentchecklists:
// every role), a technical reviewer's role (approve on
// deploymentchecklists/technical-review only), an editor role (no approve), binds alice,
// bob and the GitOps service account as approvers, tess as a technical reviewer and
// mallory as an editor, and waits for the webhook to answer. Nobody here may read
// Secrets or create Jobs but alice.
func setUp(ctx context.Context) error {
	c := bed.Client
	editor := rbacv1.PolicyRule{
		APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
		Verbs: []string{"get", "list", "create", "update", "patch"},
	}
	approveAll := rbacv1.PolicyRule{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
		Verbs: []string{"approve"}}
	approveTech := rbacv1.PolicyRule{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists/technical-review"},
		Verbs: []string{"approve"}}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "checklist-approver", Namespace: ns}, Rules: []rbacv1.PolicyRule{editor, approveAll}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "technical-reviewer", Namespace: ns}, Rules: []rbacv1.PolicyRule{editor, approveTech}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "checklist-editor", Namespace: ns}, Rules: []rbacv1.PolicyRule{editor}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secrets-and-jobs", Namespace: ns}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"prom-token"}, Verbs: []string{"get"}},
			{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create"}},
		}},
		binding("approvers", "checklist-approver", "alice", "bob", gitops),
		binding("technical-reviewers", "technical-reviewer", "tess"),
		binding("editors", "checklist-editor", "mallory"),
		binding("alice-secrets-and-jobs", "secrets-and-jobs", "alice"),
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return err
		}
	}
	// The webhook server takes a moment to listen; a create goes through it.
	deadline := time.Now().Add(time.Minute)
	for {
		err := c.Create(ctx, checklist("warm-up"))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook not answering: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func binding(name, role string, users ...string) *rbacv1.RoleBinding {
	b := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role},
	}
	for _, u := range users {
		b.Subjects = append(b.Subjects, rbacv1.Subject{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: u})
	}
	return b
}

// checklist is a checklist of the Deployment of the same name (one live checklist per
// Deployment: every test here has its own).
func checklist(name string) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: name},
			Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Phases: []deployv1alpha1.PhaseSpec{{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
					{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead", Count: 2}},
				}}},
			},
		},
	}
}

func as(t *testing.T, user string) client.Client {
	t.Helper()
	cfg, err := bed.AddUser(user)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(rest.CopyConfig(cfg), client.Options{Scheme: bed.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// annotate sets annotations on the checklist as the given client, with a merge patch.
func annotate(c client.Client, name string, ann map[string]string) error {
	var cur deployv1alpha1.DeploymentChecklist
	if err := bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cur); err != nil {
		return err
	}
	before := cur.DeepCopy()
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	for k, v := range ann {
		if v == "" {
			delete(cur.Annotations, k)
		} else {
			cur.Annotations[k] = v
		}
	}
	return c.Patch(context.Background(), &cur, client.MergeFrom(before))
}

func annotations(t *testing.T, name string) map[string]string {
	t.Helper()
	var cur deployv1alpha1.DeploymentChecklist
	NewWithT(t).Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cur)).To(Succeed())
	return cur.Annotations
}

func TestAnAllowedApproverSigningAsHerselfIsVerified(t *testing.T) {
	g := NewWithT(t)
	g.Expect(bed.Client.Create(context.Background(), checklist("allowed"))).To(Succeed())
	g.Expect(annotate(as(t, "alice"), "allowed", map[string]string{"approve.tminus.dev/deployment-lead": "alice for v2"})).To(Succeed())
	g.Expect(annotations(t, "allowed")).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead", "alice for v2 | alice | template none"))

	// Four-eyes: bob signs the same role under his own key.
	g.Expect(annotate(as(t, "bob"), "allowed", map[string]string{"approve.tminus.dev/deployment-lead.bob": "bob for v2"})).To(Succeed())
	ann := annotations(t, "allowed")
	g.Expect(ann).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead.bob", "bob for v2 | bob | template none"))
	g.Expect(ann).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead", "alice for v2 | alice | template none"), "kept when unchanged")
}

func TestAUserWithoutTheApproveVerbIsDenied(t *testing.T) {
	g := NewWithT(t)
	g.Expect(bed.Client.Create(context.Background(), checklist("no-verb"))).To(Succeed())
	err := annotate(as(t, "mallory"), "no-verb", map[string]string{"approve.tminus.dev/deployment-lead": "mallory for v2"})
	g.Expect(err).To(MatchError(ContainSubstring(`user "mallory" may not approve role deployment-lead: it needs the verb "approve" on deploymentchecklists/deployment-lead`)))
	g.Expect(annotations(t, "no-verb")).NotTo(HaveKey("approve.tminus.dev/deployment-lead"))
}

func TestAUserNamingSomeoneElseAsApproverIsDenied(t *testing.T) {
	g := NewWithT(t)
	g.Expect(bed.Client.Create(context.Background(), checklist("impersonation"))).To(Succeed())
	err := annotate(as(t, "bob"), "impersonation", map[string]string{"approve.tminus.dev/deployment-lead": "alice for v2"})
	g.Expect(err).To(MatchError(ContainSubstring(`names "alice" but was written by "bob"`)))
}

func TestATrustedGitOpsWritersCommittedApprovalIsAccepted(t *testing.T) {
	g := NewWithT(t)
	c := checklist("gitops")
	c.Annotations = map[string]string{"approve.tminus.dev/deployment-lead": "carol for v2"}
	g.Expect(as(t, gitops).Create(context.Background(), c)).To(Succeed())
	g.Expect(annotations(t, "gitops")).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead", "carol for v2 | "+gitops+" | template none"))
}

func TestVerificationRecordsCannotBeForgedOrRemoved(t *testing.T) {
	g := NewWithT(t)
	g.Expect(bed.Client.Create(context.Background(), checklist("forgery"))).To(Succeed())
	g.Expect(annotate(as(t, "alice"), "forgery", map[string]string{"approve.tminus.dev/deployment-lead": "alice for v2"})).To(Succeed())

	// mallory cannot approve, so she writes an approval and its record directly: the
	// approval is refused as hers would be...
	err := annotate(as(t, "mallory"), "forgery", map[string]string{
		"approve.tminus.dev/deployment-lead.x":          "mallory for v2",
		"verified.approve.tminus.dev/deployment-lead.x": "mallory for v2 | alice",
	})
	g.Expect(err).To(HaveOccurred())
	// ...a record alone is dropped, and alice's record cannot be removed.
	g.Expect(annotate(as(t, "mallory"), "forgery", map[string]string{
		"verified.approve.tminus.dev/security-review": "mallory for v2 | mallory",
		"verified.approve.tminus.dev/deployment-lead": "",
	})).To(Succeed())
	ann := annotations(t, "forgery")
	g.Expect(ann).NotTo(HaveKey("verified.approve.tminus.dev/security-review"))
	g.Expect(ann).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead", "alice for v2 | alice | template none"))
}

func TestAMalformedApprovalIsRefusedWithTheExpectedForm(t *testing.T) {
	g := NewWithT(t)
	g.Expect(bed.Client.Create(context.Background(), checklist("malformed"))).To(Succeed())
	err := annotate(as(t, "alice"), "malformed", map[string]string{"approve.tminus.dev/deployment-lead": "alice"})
	g.Expect(err).To(MatchError(ContainSubstring(`is not "<approver> for <revision>"`)))
}

// TestTheControllerCountsVerifiedApprovalsForThisRevisionFromTwoPeople runs the
// reconciler with the webhook: last release's approval does not count, one person twice
// is not four eyes, and status says who approved and that the webhook verified it.
func TestTheControllerCountsVerifiedApprovalsForThisRevisionFromTwoPeople(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	d := testbed.Deployment(ns, "four-eyes", "checkout:v1", 1)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	c := checklist("four-eyes")
	c.Annotations = map[string]string{"approve.tminus.dev/deployment-lead": "carol for v1"} // last release's, in Git
	g.Expect(as(t, gitops).Create(ctx, c)).To(Succeed())

	status := func(g Gomega) deployv1alpha1.DeploymentChecklistStatus {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		return cur.Status
	}
	g.Eventually(func(g Gomega) {
		st := status(g)
		g.Expect(meta.IsStatusConditionTrue(st.Conditions, engine.CondAwaitingApproval)).To(BeTrue())
		g.Expect(st.Approvals).To(BeEmpty(), "an approval for v1 does not count for v2")
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	g.Expect(annotate(as(t, "alice"), "four-eyes", map[string]string{"approve.tminus.dev/deployment-lead": "alice for v2"})).To(Succeed())
	g.Expect(annotate(as(t, "alice"), "four-eyes", map[string]string{"approve.tminus.dev/deployment-lead.again": "alice for v2"})).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := status(g)
		g.Expect(st.Approvals).To(HaveLen(2))
		g.Expect(st.Approvals[0].Verified).To(BeTrue())
		g.Expect(st.Phases[0].Checks[0].Message).To(Equal("waiting for deployment-lead sign-off (1 of 2)"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// The pipeline pushes the release; it is held at admission.
	setImage(t, d, "checkout:v2")
	g.Expect(annotate(as(t, "bob"), "four-eyes", map[string]string{"approve.tminus.dev/deployment-lead.bob": "bob for v2"})).To(Succeed())
	g.Eventually(func(g Gomega) {
		st := status(g)
		g.Expect(st.Phases[0].Checks[0].Outcome).To(Equal(deployv1alpha1.OutcomePass))
		g.Expect(st.Phases[0].Checks[0].Value).To(Equal("alice, bob"))
		g.Expect(st.Phase).To(BeElementOf(deployv1alpha1.PhaseDeploying, deployv1alpha1.PhaseVerifying, deployv1alpha1.PhaseSucceeded))
		g.Expect(st.Targets).NotTo(BeEmpty())
		g.Expect(st.Targets[0].ReleasedAt).NotTo(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
}
