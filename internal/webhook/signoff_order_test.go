package webhook_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/controller"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/httpcheck"
	"github.com/tminus-dev/tminus/internal/target"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/testbed"
)

// orderedBed is a test bed of its own whose webhooks are served by one manager and whose
// checklist controller runs in another, which the test starts and stops: so writes can
// land between a sign-off and the reconcile that sees it.
type orderedBed struct {
	*testbed.Bed
	t *testing.T
}

func newOrderedBed(t *testing.T) *orderedBed {
	t.Helper()
	g := NewWithT(t)
	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	b := &orderedBed{Bed: testbed.New(t, testbed.Options{Cluster: true, WebhookPaths: []string{filepath.Join(root, "config", "webhook")}}), t: t}
	host, port, certDir := b.Webhook()
	mgr := b.manager(crwebhook.NewServer(crwebhook.Options{Host: host, Port: port, CertDir: certDir}))
	g.Expect(target.Index(context.Background(), mgr.GetFieldIndexer())).To(Succeed())
	decoder := admission.NewDecoder(mgr.GetScheme())
	mgr.GetWebhookServer().Register(webhook.Path, &crwebhook.Admission{Handler: &webhook.ApprovalWebhook{
		Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Decoder: decoder}})
	mgr.GetWebhookServer().Register(webhook.GatePath, &crwebhook.Admission{Handler: &webhook.DeploymentGate{
		Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Decoder: decoder}})
	b.run(mgr)

	ctx := context.Background()
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "checklist-approver", Namespace: ns}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
			Verbs: []string{"get", "list", "update", "patch", "approve"}}}},
		binding("approvers", "checklist-approver", "alice"),
	} {
		g.Expect(b.Client.Create(ctx, o)).To(Succeed())
	}
	return b
}

func (b *orderedBed) manager(srv crwebhook.Server) ctrl.Manager {
	b.t.Helper()
	skip := true
	mgr, err := ctrl.NewManager(b.Config, ctrl.Options{
		Scheme:                 b.Client.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controller.StrippingCacheOptions(true),
		WebhookServer:          srv,
		Controller:             config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return mgr
}

// run starts mgr until the test ends or the returned stop is called.
func (b *orderedBed) run(mgr ctrl.Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	b.t.Cleanup(stop)
	return stop
}

// startController runs tminus's checklist controller, believing the webhook's records
// and counting only verified sign-offs, as the manager does when it serves the webhooks.
func (b *orderedBed) startController() (stop func()) {
	b.t.Helper()
	mgr := b.manager(nil)
	r := &controller.DeploymentChecklistReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("tminus"), Clock: clock.RealClock{}, Metrics: metrics, HTTP: &httpcheck.Prober{},
		VerifiedApprovals: true, RequireVerifiedApprovals: true, AdmissionGate: func() bool { return true },
	}
	if err := r.SetupWithManager(mgr); err != nil {
		b.t.Fatal(err)
	}
	return b.run(mgr)
}

func (b *orderedBed) deployment(name string) *appsv1.Deployment {
	b.t.Helper()
	d := testbed.Deployment(ns, name, "checkout:v1", 1)
	g := NewWithT(b.t)
	g.Expect(b.Client.Create(context.Background(), d)).To(Succeed())
	g.Eventually(func() error { return testbed.RolledOut(b.get(d), "checkout:v1") }, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	return d
}

func (b *orderedBed) get(d *appsv1.Deployment) *appsv1.Deployment {
	var cur appsv1.Deployment
	NewWithT(b.t).Expect(b.Client.Get(context.Background(), client.ObjectKeyFromObject(d), &cur)).To(Succeed())
	return &cur
}

// push sets the image as a pipeline would; the gate holds it.
func (b *orderedBed) push(d *appsv1.Deployment, image string) {
	b.t.Helper()
	g := NewWithT(b.t)
	g.Eventually(func() error {
		cur := b.get(d)
		cur.Spec.Template.Spec.Containers[0].Image = image
		return b.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	cur := b.get(d)
	g.Expect(cur.Spec.Paused).To(BeTrue(), "the gate holds %s", image)
	g.Expect(cur.Spec.Template.Spec.Containers[0].Image).To(Equal(image))
}

// signOff writes alice's sign-off as she would, through the webhook.
func (b *orderedBed) signOff(name string) {
	b.t.Helper()
	cfg, err := b.AddUser("alice")
	if err != nil {
		b.t.Fatal(err)
	}
	alice, err := client.New(rest.CopyConfig(cfg), client.Options{Scheme: b.Client.Scheme()})
	if err != nil {
		b.t.Fatal(err)
	}
	NewWithT(b.t).Eventually(func() error {
		var cur deployv1alpha1.DeploymentChecklist
		if err := b.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cur); err != nil {
			return err
		}
		before := cur.DeepCopy()
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations["approve.tminus.dev/deployment-lead"] = "alice for v2"
		return alice.Patch(context.Background(), &cur, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

func (b *orderedBed) status(g Gomega, name string) deployv1alpha1.DeploymentChecklistStatus {
	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(b.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &cur)).To(Succeed())
	return cur.Status
}

// oneSignOff is a checklist of the Deployment name that needs one deployment-lead
// sign-off before T-0.
func oneSignOff(name string) *deployv1alpha1.DeploymentChecklist {
	c := checklist(name)
	c.Spec.Phases[0].Checks[0].Approval.Count = 1
	return c
}

// TestASignOffCountsForTheTemplateHeldWhenItWasGivenNotOnePushedBeforeTheControllerLooks:
// the webhook records the template a sign-off was given for, and the controller binds
// the sign-off to it, whatever lands before the controller sees it. A sign-off given
// before any image arrived is for the first that does, as before.
func TestASignOffCountsForTheTemplateHeldWhenItWasGivenNotOnePushedBeforeTheControllerLooks(t *testing.T) {
	b := newOrderedBed(t)
	ctx := context.Background()
	g := NewWithT(t)

	// Two releases wait: checkout's v2 is pushed and held; cart's image is not there yet.
	checkout, cart := b.deployment("checkout"), b.deployment("cart")
	g.Expect(b.Client.Create(ctx, oneSignOff("checkout"))).To(Succeed())
	g.Expect(b.Client.Create(ctx, oneSignOff("cart"))).To(Succeed())
	stop := b.startController()
	g.Eventually(func() map[string]string { return b.get(checkout).Labels }, 2*time.Minute, 100*time.Millisecond).
		Should(HaveKeyWithValue(deployv1alpha1.GatedLabel, deployv1alpha1.GatedByChecklist))
	b.push(checkout, "checkout:v2")
	g.Eventually(func(g Gomega) {
		// Targets is empty until the first status write: a poll before it must fail, not panic.
		co, ca := b.status(g, "checkout"), b.status(g, "cart")
		g.Expect(co.Targets).NotTo(BeEmpty())
		g.Expect(ca.Targets).NotTo(BeEmpty())
		g.Expect(co.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
		g.Expect(ca.Targets[0].CapturedAt).NotTo(BeNil())
		g.Expect(b.get(cart).Labels).To(HaveKeyWithValue(deployv1alpha1.GatedLabel, deployv1alpha1.GatedByChecklist), "the gate sees cart")
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	stop()

	// With the controller away: alice signs off both, looking at what each holds...
	b.signOff("checkout")
	b.signOff("cart")
	var signed deployv1alpha1.DeploymentChecklist
	g.Expect(b.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "checkout"}, &signed)).To(Succeed())
	g.Expect(signed.Annotations).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead",
		"alice for v2 | alice | template "+gate.TemplateHash(&b.get(checkout).Spec.Template)))
	// ...and then images land on both before the controller is back.
	b.push(checkout, "checkout:v2-evil")
	b.push(cart, "cart:v2")
	b.startController()

	// checkout's sign-off was for v2: it does not count for v2-evil, which stays held.
	g.Eventually(func(g Gomega) {
		st := b.status(g, "checkout")
		g.Expect(st.Targets).NotTo(BeEmpty())
		g.Expect(st.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2-evil"}))
		g.Expect(st.Approvals).To(HaveLen(1))
		g.Expect(st.Approvals[0].NotCounted).To(HavePrefix("given for the template Deployment checkout held when it was given"))
		g.Expect(st.Approvals[0].NotCounted).To(HaveSuffix("but the Deployment now holds checkout:v2-evil for release: sign again"))
		g.Expect(st.Targets).NotTo(BeEmpty())
		g.Expect(st.Targets[0].ReleasedAt).To(BeNil(), "not released on a sign-off for another template")
		g.Expect(st.Phases[0].Checks[0].Outcome).To(Equal(deployv1alpha1.OutcomePending))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(b.get(checkout).Spec.Paused).To(BeTrue())

	// cart's was given before its image: it is for the first that arrived, and released.
	g.Eventually(func(g Gomega) {
		st := b.status(g, "cart")
		g.Expect(st.Approvals).To(HaveLen(1))
		g.Expect(st.Approvals[0].NotCounted).To(BeEmpty())
		g.Expect(st.Approvals[0].CandidateImages).To(Equal([]string{"cart:v2"}))
		g.Expect(st.Targets).NotTo(BeEmpty())
		g.Expect(st.Targets[0].ReleasedAt).NotTo(BeNil())
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(b.get(cart).Spec.Template.Spec.Containers[0].Image).To(Equal("cart:v2"))
}
