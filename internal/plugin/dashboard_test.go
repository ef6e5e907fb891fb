package plugin

import (
	"bufio"
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/controller"
	"github.com/tminus-dev/tminus/internal/dashboard"
	"github.com/tminus-dev/tminus/internal/operator"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/test/testbed"
)

// startDashboard serves the dashboard with o until the test ends and returns its URL
// (with the token).
func startDashboard(t *testing.T, o *options, ns string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		// The test bed's Prometheus listens on loopback, which the guard otherwise refuses.
		done <- o.dashboard(ctx, dashboardFlags{address: "127.0.0.1", port: 0, noOpen: true, allowedHosts: []string{"127.0.0.0/8"}},
			func(_ *dashboard.Server, u string) { urls <- u })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dashboard: %v", err)
		}
	})
	select {
	case u := <-urls:
		return u
	case err := <-done:
		t.Fatalf("dashboard did not start: %v", err)
	}
	return ""
}

// asUser is the plugin's options with the kubeconfig of a test bed user, as
// `kubectl checklist --kubeconfig ... -n ns dashboard` would build them.
func asUser(t *testing.T, bed *testbed.Bed, user, ns string) *options {
	t.Helper()
	path, err := bed.UserKubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig, flags.Namespace = &path, &ns
	var out bytes.Buffer
	return &options{flags: flags, out: &out, err: &out}
}

// browser is an HTTP client keeping cookies, as a browser does, that does not follow
// redirects by itself past the first (the token exchange).
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	defer func() { _ = r.Body.Close() }()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return html.UnescapeString(string(b))
}

// post submits a button's form from the dashboard's own page (its Origin).
func post(t *testing.T, c *http.Client, base *url.URL, path string, form url.Values, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base.Scheme+"://"+base.Host+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// signOffBed is a test bed with tminus's manager and webhooks where alice may read
// checklists, approve and read the checklist's Prometheus credentials, and mallory
// may only read checklists; checklist checkout-v2 of namespace default asks a
// deployment-lead's sign-off and plots a metric from a Prometheus behind a proxy that
// counts the range queries it is sent and keeps the last one's Authorization.
type signOffBed struct {
	bed *testbed.Bed
	// ranges counts the range queries; bearer is the last one's Authorization.
	ranges *atomic.Int64
	bearer *atomic.Value
	key    client.ObjectKey
}

// checklist is checkout-v2 as the API server holds it now.
func (b *signOffBed) checklist(t *testing.T) *deployv1alpha1.DeploymentChecklist {
	t.Helper()
	var cur deployv1alpha1.DeploymentChecklist
	if err := b.bed.Client.Get(context.Background(), b.key, &cur); err != nil {
		t.Fatal(err)
	}
	return &cur
}

func newSignOffBed(t *testing.T) *signOffBed {
	t.Helper()
	g := NewWithT(t)
	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	bed := testbed.New(t, testbed.Options{WebhookPaths: []string{filepath.Join(root, "config", "webhook")}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	startManagerWithWebhooks(t, ctx, bed)

	const ns = "default"
	reader := rbacv1.PolicyRule{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
		Verbs: []string{"get", "list", "watch", "patch", "update"}}
	records := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}
	approve := rbacv1.PolicyRule{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
		Verbs: []string{"approve"}}
	promToken := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"prom-token"},
		Verbs: []string{"get"}}
	for _, o := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "viewer", Namespace: ns}, Rules: []rbacv1.PolicyRule{reader, records}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "approver", Namespace: ns}, Rules: []rbacv1.PolicyRule{approve, promToken}},
		roleBinding(ns, "viewers", "viewer", "alice", "mallory"),
		roleBinding(ns, "approvers", "approver", "alice"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "prom-token", Namespace: ns}, StringData: map[string]string{"token": "s3cret"}},
	} {
		g.Expect(bed.Client.Create(ctx, o)).To(Succeed())
	}
	// The real Prometheus, behind a proxy that records who asks what.
	prom, err := testbed.StartPrometheus(ctx, testbed.PrometheusOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(prom.Close)
	target, err := url.Parse(prom.URL)
	g.Expect(err).NotTo(HaveOccurred())
	var ranges atomic.Int64
	var bearer atomic.Value
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/query_range") {
			ranges.Add(1)
			bearer.Store(r.Header.Get("Authorization"))
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	below, above := "0.01", "0.05"
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: proxy.URL,
					BearerTokenSecretRef: &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}},
				Metrics: []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: "vector(0.002)"}},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-15m", At: "-15m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}}}},
					{Name: "T+5m", At: "5m", Checks: []deployv1alpha1.CheckSpec{{Name: "errors", Metric: "error-rate", Below: &below}}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{{Name: "errors-5pct", Metric: "error-rate", Above: &above, For: "2m"}},
			},
		},
	}
	// The webhook server takes a moment to listen: a create goes through it.
	g.Eventually(func() error { return bed.Client.Create(ctx, dcl.DeepCopy()) }).WithTimeout(time.Minute).Should(Succeed())
	return &signOffBed{bed: bed, ranges: &ranges, bearer: &bearer, key: client.ObjectKeyFromObject(dcl)}
}

// TestTheDashboardActsAsItsUserAndNoOneElse: behind the dashboard is the user's own
// kubeconfig: mallory (no approve verb) clicking Approve is refused by the approval
// webhook, the refusal shown as the API server gave it and nothing written; alice's
// click is verified by the webhook as hers. A request without the session, or with
// another site's Host or Origin, is refused before anything is done. Each refusal is
// answered with the status that fits it (403 forbidden, 422 the plugin's own, 404 gone).
func TestTheDashboardActsAsItsUserAndNoOneElse(t *testing.T) {
	g := NewWithT(t)
	sb := newSignOffBed(t)
	bed, ranges, bearer := sb.bed, sb.ranges, sb.bearer
	const ns = "default"
	annotations := func() map[string]string { return sb.checklist(t).Annotations }

	// mallory's dashboard.
	raw := startDashboard(t, asUser(t, bed, "mallory", ns), ns)
	base, err := url.Parse(raw)
	g.Expect(err).NotTo(HaveOccurred())
	origin := "http://" + base.Host
	page := "/release/" + ns + "/checkout-v2"

	stranger := browser(t)
	r, err := stranger.Get(origin + page)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.StatusCode).To(Equal(http.StatusUnauthorized), "no token, no cookie: %s", body(t, r))
	r = post(t, stranger, base, page, url.Values{"action": {"approve"}, "role": {"deployment-lead"}}, origin)
	g.Expect(r.StatusCode).To(Equal(http.StatusUnauthorized), "a form posted without the session: %s", body(t, r))
	r, err = stranger.Get(origin + "/?token=guessed")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.StatusCode).To(Equal(http.StatusUnauthorized), body(t, r))

	mallory := browser(t)
	r, err = mallory.Get(raw) // the token is exchanged for the cookie
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Request.URL.RawQuery).NotTo(ContainSubstring("token"), "the token leaves the address bar")
	g.Eventually(func() string {
		r, err := mallory.Get(origin + "/")
		g.Expect(err).NotTo(HaveOccurred())
		return body(t, r)
	}).Should(ContainSubstring("checkout-v2"))

	// DNS rebinding: another site's name resolving to 127.0.0.1 sends its own Host.
	req, _ := http.NewRequest(http.MethodGet, origin+page, nil)
	req.Host = "attacker.example:" + base.Port()
	r, err = mallory.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.StatusCode).To(Equal(http.StatusMisdirectedRequest), body(t, r))

	// mallory's own click: the webhook refuses it, the page says what it said.
	r = post(t, mallory, base, page, url.Values{"action": {"approve"}, "role": {"deployment-lead"}}, origin)
	refusal := body(t, r)
	g.Expect(r.StatusCode).To(Equal(http.StatusForbidden))
	g.Expect(refusal).To(ContainSubstring(`admission webhook`))
	g.Expect(refusal).To(ContainSubstring(`user "mallory" may not approve role deployment-lead: ` +
		`it needs the verb "approve" on deploymentchecklists/deployment-lead`))
	g.Expect(annotations()).NotTo(HaveKey("approve.tminus.dev/deployment-lead"), "nothing written")

	// mallory may not read the Prometheus credentials: no plot, and no query sent.
	r, err = mallory.Get(origin + page)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(body(t, r)).To(ContainSubstring("No plot: cannot read the credentials: spec.prometheus.bearerTokenSecretRef: " +
		"reading Secret default/prom-token is forbidden"))
	g.Expect(ranges.Load()).To(BeZero(), "no query is sent with someone else's rights")

	// alice's click is hers, verified by the webhook, and her page shows it.
	raw = startDashboard(t, asUser(t, bed, "alice", ns), ns)
	base, err = url.Parse(raw)
	g.Expect(err).NotTo(HaveOccurred())
	alice := browser(t)
	_, err = alice.Get(raw)
	g.Expect(err).NotTo(HaveOccurred())
	// Cross-site request forgery: a form on another site posting alice's approval
	// with her cookie (which SameSite=Strict keeps a browser from sending; checked
	// here as if it did).
	for _, o := range []string{"http://attacker.example", "null", ""} {
		r = post(t, alice, base, page, url.Values{"action": {"approve"}, "role": {"deployment-lead"}}, o)
		g.Expect(r.StatusCode).To(Equal(http.StatusForbidden), "Origin %q", o)
		g.Expect(body(t, r)).To(ContainSubstring("refused: a change must come from a page of this dashboard"))
	}
	g.Expect(annotations()).NotTo(HaveKey("approve.tminus.dev/deployment-lead"), "nothing written")

	r = post(t, alice, base, page, url.Values{"action": {"approve"}, "role": {"deployment-lead"}}, "http://"+base.Host)
	g.Expect(body(t, r)).To(ContainSubstring("alice approved deployment-lead for v2"))
	g.Expect(r.StatusCode).To(Equal(http.StatusOK))
	g.Expect(annotations()).To(HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead", "alice for v2 | alice | template none"))
	// alice may: one range query for the check and the trigger sharing it, with the
	// checklist's credentials, read as her.
	before := ranges.Load()
	r, err = alice.Get("http://" + base.Host + page)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(body(t, r)).To(ContainSubstring(`<svg class="plot"`))
	g.Expect(ranges.Load()-before).To(Equal(int64(1)), "one query per distinct query")
	g.Expect(bearer.Load()).To(Equal("Bearer s3cret"))

	g.Eventually(func() string {
		r, err := alice.Get("http://" + base.Host + page)
		g.Expect(err).NotTo(HaveOccurred())
		return body(t, r)
	}).WithTimeout(30*time.Second).Should(ContainSubstring("● deployment-lead: 1 of 1 (alice)"),
		"the manager counted the sign-off and the one watch brought it to the page")

	// A refusal's status fits it: the plugin's own (no sign-off of hers to revoke) is
	// 422, a checklist the API server does not have is 404, in its words.
	r = post(t, alice, base, page, url.Values{"action": {"revoke"}, "role": {"security-review"}}, "http://"+base.Host)
	g.Expect(body(t, r)).To(ContainSubstring("deploymentchecklist/checkout-v2 has no security-review approval by alice"))
	g.Expect(r.StatusCode).To(Equal(http.StatusUnprocessableEntity))
	r = post(t, alice, base, "/release/"+ns+"/checkout-v9", url.Values{"action": {"approve"}, "role": {"deployment-lead"}}, "http://"+base.Host)
	g.Expect(body(t, r)).To(ContainSubstring(`deploymentchecklists.deploy.tminus.dev "checkout-v9" not found`))
	g.Expect(r.StatusCode).To(Equal(http.StatusNotFound))
}

// TestAStatusChangeReachesConnectedViewersThroughOneWatch: two viewers follow the list;
// the checklist's status changes; both are told, and the dashboard watched checklists
// once for both.
func TestAStatusChangeReachesConnectedViewersThroughOneWatch(t *testing.T) {
	g := NewWithT(t)
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v3", Namespace: "default"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v3",
			ChecklistBody: deployv1alpha1.ChecklistBody{Phases: []deployv1alpha1.PhaseSpec{{Name: "T+5m", At: "5m",
				Checks: []deployv1alpha1.CheckSpec{{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}}}}}},
		},
	}
	g.Expect(bed.Client.Create(ctx, dcl)).To(Succeed())

	var watches, requests atomic.Int64
	cfg := rest.CopyConfig(bed.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			requests.Add(1)
			if r.URL.Query().Get("watch") == "true" {
				watches.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	var out bytes.Buffer
	raw := startDashboard(t, &options{cfg: cfg, ns: "default", out: &out, err: &out}, "default")
	base, err := url.Parse(raw)
	g.Expect(err).NotTo(HaveOccurred())

	follow := func() <-chan string {
		c := browser(t)
		_, err := c.Get(raw)
		g.Expect(err).NotTo(HaveOccurred())
		r, err := c.Get("http://" + base.Host + "/events")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.Header.Get("Content-Type")).To(Equal("text/event-stream"))
		t.Cleanup(func() { _ = r.Body.Close() })
		events := make(chan string, 16)
		go func() {
			defer close(events)
			sc := bufio.NewScanner(r.Body)
			sc.Buffer(nil, 1<<20)
			var data strings.Builder
			for sc.Scan() {
				line := sc.Text()
				if d, ok := strings.CutPrefix(line, "data: "); ok {
					data.WriteString(d + "\n")
				}
				if line == "" {
					events <- html.UnescapeString(data.String())
					data.Reset()
				}
			}
		}()
		return events
	}
	untilSeen := func(events <-chan string, want string) {
		t.Helper()
		g.Eventually(func() string {
			select {
			case e := <-events:
				return e
			default:
				return ""
			}
		}).WithTimeout(30 * time.Second).Should(ContainSubstring(want))
	}
	first, second := follow(), follow()
	untilSeen(first, "checkout-v3")
	untilSeen(second, "checkout-v3")
	asked := requests.Load() // discovery, the list and the watch

	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(dcl), &cur)).To(Succeed())
	cur.Status.Phase = deployv1alpha1.PhaseHolding
	cur.Status.CurrentPhase = "T+5m"
	cur.Status.NextAction = "waiting for a sign-off of deployment-lead"
	g.Expect(bed.Client.Status().Update(ctx, &cur)).To(Succeed())

	untilSeen(first, "waiting for a sign-off of deployment-lead")
	untilSeen(second, "waiting for a sign-off of deployment-lead")
	g.Expect(watches.Load()).To(Equal(int64(1)), "one watch for every viewer")
	g.Expect(requests.Load()).To(Equal(asked), "the change came through the watch: no viewer asked the API server")
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTheDashboardRefusesANonLoopbackAddressWithoutInsecureBind(t *testing.T) {
	g := NewWithT(t)
	for _, addr := range []string{"0.0.0.0", "192.168.1.20", "::", "dashboard.example.com"} {
		var out, errOut bytes.Buffer
		cmd := NewCommand(&out, &errOut)
		cmd.SetArgs([]string{"--kubeconfig", filepath.Join(t.TempDir(), "none"), "dashboard", "--address", addr, "--no-open"})
		err := cmd.ExecuteContext(context.Background())
		g.Expect(err).To(MatchError(ContainSubstring("is not a loopback address")), addr)
		g.Expect(err).To(MatchError(ContainSubstring("--insecure-bind")), addr)
	}
	for _, addr := range []string{"127.0.0.1", "::1", "localhost"} {
		g.Expect(dashboard.CheckAddress(addr, false)).To(Succeed(), addr)
	}
	g.Expect(dashboard.CheckAddress("0.0.0.0", true)).To(Succeed(), "the user said so")
}

func roleBinding(ns, name, role string, users ...string) *rbacv1.RoleBinding {
	b := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role},
	}
	for _, u := range users {
		b.Subjects = append(b.Subjects, rbacv1.Subject{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: u})
	}
	return b
}

// startManagerWithWebhooks runs tminus's manager, serving the admission webhooks, on
// the test bed until ctx ends.
func startManagerWithWebhooks(t *testing.T, ctx context.Context, bed *testbed.Bed) {
	t.Helper()
	host, port, certDir := bed.Webhook()
	if logFile, err := os.Create(filepath.Join(bed.Dir, "tminus-manager.log")); err == nil {
		logf.SetLogger(zap.New(zap.WriteTo(logFile), zap.UseDevMode(true)))
	}
	mgr, err := ctrl.NewManager(rest.CopyConfig(bed.Config), ctrl.Options{
		Scheme:                 bed.Client.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controller.StrippingCacheOptions(true),
		Controller:             config.Controller{SkipNameValidation: new(true)}, // one manager per test
		WebhookServer:          crwebhook.NewServer(crwebhook.Options{Host: host, Port: port, CertDir: certDir}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Setup(mgr, operator.Options{Webhooks: true,
		Metrics: &prometheus.Provider{Secrets: mgr.GetAPIReader()}}); err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = mgr.Start(mctx)
	}()
	t.Cleanup(func() {
		stop()
		<-stopped
	})
}
