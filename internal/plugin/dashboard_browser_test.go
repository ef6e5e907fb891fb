package plugin

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// chromiumPath is the Chromium the browser tests drive: TMINUS_CHROMIUM, or chromium
// on the PATH (hack/install-chromium.sh).
func chromiumPath(t testing.TB) string {
	t.Helper()
	chromium, err := exec.LookPath(cmp.Or(os.Getenv("TMINUS_CHROMIUM"), "chromium"))
	if err != nil {
		t.Fatalf("no Chromium (%v): run hack/install-chromium.sh, or set TMINUS_CHROMIUM", err)
	}
	return chromium
}

// TestTheDashboardInABrowserFollowsTheWatchAndIsReachableByKeyboard drives headless
// Chromium (hack/install-chromium.sh; TMINUS_CHROMIUM names another) through the
// dashboard: the list, opened from the printed URL, shows a held release and changes
// when its status does, without a reload; the release's link is reached with Tab and
// opened with Enter; the release's page draws its T-axis. A screenshot of the page is
// kept as an artefact (go test -artifacts), and written to docs/ with
// TMINUS_UPDATE_SCREENSHOTS=1.
func TestTheDashboardInABrowserFollowsTheWatchAndIsReachableByKeyboard(t *testing.T) {
	g := NewWithT(t)
	chromium := chromiumPath(t)
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	prom, err := testbed.StartPrometheus(ctx, testbed.PrometheusOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(prom.Close)
	below := "0.01"
	at := func(m time.Duration) metav1.Time { return metav1.NewTime(time.Now().Add(m).Truncate(time.Second)) }
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v4", Namespace: "default"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v4",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: prom.URL},
				// A series Prometheus computes without scraping anything.
				Metrics: []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: "0.006 + 0.004 * sin(vector(time()) / 120)"}},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-30m", At: "-30m", Checks: []deployv1alpha1.CheckSpec{{Name: "baseline-errors", Metric: "error-rate", Below: &below}}},
					{Name: "T-15m", At: "-15m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
						{Name: "security", Approval: &deployv1alpha1.ApprovalCheck{Role: "security-review", Count: 2}}}},
					{Name: "T+5m", At: "5m", Checks: []deployv1alpha1.CheckSpec{{Name: "errors", Metric: "error-rate", Below: &below}}},
				},
			},
		},
	}
	g.Expect(bed.Client.Create(ctx, dcl)).To(Succeed())
	cur := &deployv1alpha1.DeploymentChecklist{}
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(dcl), cur)).To(Succeed())
	opened, passed := at(-20*time.Minute), at(-16*time.Minute)
	cur.Status = deployv1alpha1.DeploymentChecklistStatus{
		Phase: deployv1alpha1.PhaseHolding, CurrentPhase: "T-15m", NextAction: "waiting for T-15m: security-review 1 of 2",
		Approvals: []deployv1alpha1.ApprovalRecord{
			{Role: "deployment-lead", Approver: "alice", Revision: "v4", FirstSeen: passed, Verified: true},
			{Role: "security-review", Approver: "sam", Revision: "v4", FirstSeen: passed, Verified: true}},
		Phases: []deployv1alpha1.PhaseStatus{
			{Name: "T-30m", State: deployv1alpha1.PhaseStatePassed, OpenedAt: &opened, CompletedAt: &passed,
				Checks: []deployv1alpha1.CheckStatus{{Name: "baseline-errors", Kind: "Metric", Outcome: deployv1alpha1.OutcomePass,
					Value: "0.004", Threshold: "< 0.01", History: []deployv1alpha1.Measurement{
						{Time: at(-20 * time.Minute), Outcome: deployv1alpha1.OutcomeFail, Value: "0.012"},
						{Time: at(-19 * time.Minute), Outcome: deployv1alpha1.OutcomePass, Value: "0.007"},
						{Time: at(-18 * time.Minute), Outcome: deployv1alpha1.OutcomePass, Value: "0.005"},
						{Time: at(-17 * time.Minute), Outcome: deployv1alpha1.OutcomePass, Value: "0.004"}}}}},
			{Name: "T-15m", State: deployv1alpha1.PhaseStateOpen, OpenedAt: &passed, Checks: []deployv1alpha1.CheckStatus{
				{Name: "lead", Kind: "Approval", Outcome: deployv1alpha1.OutcomePass, Value: "alice"},
				{Name: "security", Kind: "Approval", Outcome: deployv1alpha1.OutcomePending, Value: "sam",
					Message: "waiting for security-review sign-off (1 of 2)"}}},
		},
	}
	g.Expect(bed.Client.Status().Update(ctx, cur)).To(Succeed())

	var out bytes.Buffer
	raw := startDashboard(t, &options{cfg: bed.Config, ns: "default", out: &out, err: &out}, "default")

	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000))...)
	defer stopAlloc()
	browserCtx, stopBrowser := chromedp.NewContext(alloc)
	defer stopBrowser()
	bctx, cancel := context.WithTimeout(browserCtx, 2*time.Minute)
	defer cancel()

	link := chromedp.CSS(`a[href="/release/default/checkout-v4"]`)
	g.Expect(chromedp.Do(bctx, chromedp.Navigate(raw), chromedp.WaitVisible(link))).To(Succeed())
	text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#live")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(text).To(ContainSubstring("Holding"))
	g.Expect(text).To(ContainSubstring("○ security-review 1/2 (sam)"))

	// The keyboard reaches the release's link, and Enter opens its page.
	reached := false
	for range 20 {
		g.Expect(chromedp.Do(bctx, chromedp.KeyEvent(kb.Tab))).To(Succeed())
		href, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.activeElement.getAttribute("href") || ""`))
		g.Expect(err).NotTo(HaveOccurred())
		if href == "/release/default/checkout-v4" {
			reached = true
			break
		}
	}
	g.Expect(reached).To(BeTrue(), "the release's link is reached with Tab")

	// The release goes on while the link has the focus: the open page follows, without
	// a reload, and the focus stays on the link.
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(dcl), cur)).To(Succeed())
	cur.Status.Phase, cur.Status.NextAction = deployv1alpha1.PhaseRunning, "release at T-0, once the Deployment holds the new template"
	g.Expect(bed.Client.Status().Update(ctx, cur)).To(Succeed())
	_, err = chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById("live").innerText.includes("once the Deployment holds the new template")`,
		chromedp.WithPollingTimeout(30*time.Second)))
	g.Expect(err).NotTo(HaveOccurred(), "the list follows the watch")

	href, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.activeElement.getAttribute("href") || ""`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(href).To(Equal("/release/default/checkout-v4"), "the update kept the keyboard's place")
	g.Expect(chromedp.Do(bctx, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("svg.axis")))).To(Succeed())
	plot, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.plot polyline.series").length`))
	g.Expect(err).NotTo(HaveOccurred())
	plots, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector("section[aria-labelledby=plots]") || document.body).innerText`))
	g.Expect(plot).To(Equal(2), "both metric checks plotted from Prometheus: %s", plots)
	axis, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("svg.axis").textContent`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(axis).To(ContainSubstring("T-30m ✓ Passed"))
	g.Expect(axis).To(ContainSubstring("T-15m ▶ Open"))

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(t.ArtifactDir(), "dashboard-release.png"), png, 0o600)).To(Succeed())
	if os.Getenv("TMINUS_UPDATE_SCREENSHOTS") != "" {
		root, err := testbed.RepoRoot()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(os.WriteFile(filepath.Join(root, "docs", "dashboard-release.png"), png, 0o600)).To(Succeed())
	}
}

// TestInABrowserASignOffIsWrittenAsTheUserWhoClickedAndARefusalInTheAPIServersWords
// follows two users through their own dashboards in headless Chromium, as they would
// click: mallory (who may read checklists but not approve, nor read the Prometheus
// credentials) opens the release from the list: its metric plot says the credentials
// cannot be read, and no query reaches Prometheus; mallory clicks Approve for
// deployment-lead: the page shows the approval webhook's refusal as the API server
// gave it, answered 403, and the checklist holds no sign-off. alice (who may) clicks the
// same button: the page says she approved, the checklist holds her sign-off,
// verified by the webhook as hers, the manager records her approval in the status, and
// her open page follows it without a reload.
func TestInABrowserASignOffIsWrittenAsTheUserWhoClickedAndARefusalInTheAPIServersWords(t *testing.T) {
	g := NewWithT(t)
	chromium := chromiumPath(t)
	sb := newSignOffBed(t)
	const ns = "default"
	link := chromedp.CSS(`a[href="/release/default/checkout-v2"]`)

	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000))...)
	t.Cleanup(stopAlloc)
	browserCtx, stopBrowser := chromedp.NewContext(alloc)
	t.Cleanup(stopBrowser)
	g.Expect(chromedp.Do(browserCtx)).To(Succeed(), "Chromium starts")
	// Each user in a browser context of their own: the two dashboards share the host
	// 127.0.0.1, and cookies are not kept apart by port.
	as := func(user string) context.Context {
		tab, closeTab := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
		t.Cleanup(closeTab)
		ctx, cancel := context.WithTimeout(tab, 3*time.Minute)
		t.Cleanup(cancel)
		raw := startDashboard(t, asUser(t, sb.bed, user, ns), ns)
		// The printed URL, then the release's link on the list.
		g.Expect(chromedp.Do(ctx, chromedp.Navigate(raw), chromedp.WaitVisible(link), chromedp.Click(link),
			chromedp.WaitVisible(chromedp.CSS("svg.axis")))).To(Succeed(), user+" opens the release from the list")
		return ctx
	}
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		g.Expect(err).NotTo(HaveOccurred(), sel)
		return s
	}
	// approve picks deployment-lead and clicks Approve; the page that comes back holds
	// answer, and its status is given.
	approve := func(ctx context.Context, answer string) int64 {
		t.Helper()
		resp, err := chromedp.RunResponse(ctx, chromedp.SetValue(chromedp.CSS("#role-approve"), "deployment-lead"),
			chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(answer)))).To(Succeed())
		return resp.Status
	}

	mallory := as("mallory")
	g.Expect(text(mallory, "section[aria-labelledby=plots]")).To(ContainSubstring(
		"No plot: cannot read the credentials: spec.prometheus.bearerTokenSecretRef: reading Secret default/prom-token is forbidden"))
	plots, err := chromedp.Run(mallory, chromedp.Evaluate[int](`document.querySelectorAll("svg.plot").length`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(plots).To(BeZero())
	g.Expect(sb.ranges.Load()).To(BeZero(), "no query is sent with someone else's rights")

	g.Expect(approve(mallory, ".refusal")).To(BeEquivalentTo(http.StatusForbidden), "the webhook's refusal is a 403")
	refusal := text(mallory, ".refusal")
	g.Expect(refusal).To(ContainSubstring(`admission webhook`))
	g.Expect(refusal).To(ContainSubstring(`user "mallory" may not approve role deployment-lead: ` +
		`it needs the verb "approve" on deploymentchecklists/deployment-lead`))
	g.Expect(sb.checklist(t).Annotations).NotTo(HaveKey(HavePrefix("approve.tminus.dev/")), "nothing written")

	alice := as("alice")
	g.Expect(chromedp.Do(alice, chromedp.WaitVisible(chromedp.CSS("svg.plot")))).To(Succeed(), "alice may read the credentials")
	g.Expect(approve(alice, ".answer")).To(BeEquivalentTo(http.StatusOK))
	g.Expect(text(alice, ".answer")).To(ContainSubstring("alice approved deployment-lead for v2"))
	g.Expect(sb.checklist(t).Annotations).To(And(
		HaveKeyWithValue("approve.tminus.dev/deployment-lead", HavePrefix("alice")),
		HaveKeyWithValue("verified.approve.tminus.dev/deployment-lead", "alice for v2 | alice | template none")),
		"the sign-off is alice's, and the webhook saw alice write it")
	g.Eventually(func() []deployv1alpha1.ApprovalRecord { return sb.checklist(t).Status.Approvals }).
		WithTimeout(time.Minute).WithPolling(time.Second).Should(ContainElement(And(
		HaveField("Role", "deployment-lead"), HaveField("Approver", "alice"), HaveField("Revision", "v2"))),
		"the manager counted alice's approval")
	_, err = chromedp.Run(alice, chromedp.Poll[bool](`document.getElementById("live").innerText.includes("● deployment-lead: 1 of 1 (alice)")`,
		chromedp.WithPollingTimeout(time.Minute)))
	g.Expect(err).NotTo(HaveOccurred(), "alice's open page follows the watch")
}

// plotData is what a plot's SVG carries, read in the browser: the thresholds' values,
// the series' samples (unix seconds and value, from data-points) and where each is
// drawn, and the rollback's mark.
type plotData struct {
	Thresholds []string  `json:"thresholds"`
	ThresholdY []float64 `json:"thresholdY"`
	Points     string    `json:"points"`
	Ys         []float64 `json:"ys"`
	Fired      string    `json:"fired"`
	FiredLabel string    `json:"firedLabel"`
	Title      string    `json:"title"`
	Rows       int       `json:"rows"`
}

// TestInABrowserARolledBackReleasesPageDrawsTheTriggersSeriesAboveItsThresholdAfterTheBreach
// opens, in headless Chromium, the page of a release its error-rate trigger (above
// 0.05, for 2m) rolled back. Prometheus computes the series without scraping: low
// before the breach, high from it on. The trigger's chart carries a threshold line at
// 0.05; the series' samples, read from the chart's data, are below the threshold
// before the breach and above it after, and are drawn above the line; the rollback's
// time is marked on the chart in words and on the T-axis; the page says RolledBack
// and the rollback's message. A screenshot of the page is kept as an artefact (go test
// -artifacts).
func TestInABrowserARolledBackReleasesPageDrawsTheTriggersSeriesAboveItsThresholdAfterTheBreach(t *testing.T) {
	g := NewWithT(t)
	chromium := chromiumPath(t)
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	prom, err := testbed.StartPrometheus(ctx, testbed.PrometheusOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(prom.Close)

	now := time.Now().Truncate(time.Second)
	at := func(m time.Duration) metav1.Time { return metav1.NewTime(now.Add(m)) }
	opened, t0, breach, fired := at(-40*time.Minute), at(-30*time.Minute), at(-20*time.Minute), at(-18*time.Minute)
	restored := at(-17 * time.Minute)
	below, above := "0.02", "0.05"
	// About 0.01 before the breach and 0.09 from it on, computed from time() alone.
	query := fmt.Sprintf("0.01 + 0.002 * sin(vector(time()) / 60) + 0.08 * (vector(time()) >= bool %d)", breach.Unix())
	const trigger = "error-rate-5pct"
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v5", Namespace: "default"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: "v5",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: prom.URL},
				Metrics:    []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: query}},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{{Name: "baseline-errors", Metric: "error-rate", Below: &below}}},
					{Name: "T+15m", At: "15m", Checks: []deployv1alpha1.CheckSpec{{Name: "errors", Metric: "error-rate", Below: &below}}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{{Name: trigger, Metric: "error-rate", Above: &above, For: "2m"}},
			},
		},
	}
	g.Expect(bed.Client.Create(ctx, dcl)).To(Succeed())
	cur := &deployv1alpha1.DeploymentChecklist{}
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(dcl), cur)).To(Succeed())
	message := "rollback trigger " + trigger + " fired: 0.09 > 0.05"
	cur.Status = deployv1alpha1.DeploymentChecklistStatus{
		Phase: deployv1alpha1.PhaseRolledBack, NextAction: "none: rolled back",
		Target: &deployv1alpha1.TargetStatus{PreDeployRevision: "v4", T0At: &t0, ReleasedAt: &t0, AvailableAt: &t0, RestoredAt: &restored},
		Phases: []deployv1alpha1.PhaseStatus{
			{Name: "T-10m", State: deployv1alpha1.PhaseStatePassed, OpenedAt: &opened, CompletedAt: &t0,
				Checks: []deployv1alpha1.CheckStatus{{Name: "baseline-errors", Kind: "Metric", Outcome: deployv1alpha1.OutcomePass,
					Value: "0.011", Threshold: "< 0.02"}}},
		},
		Triggers: []deployv1alpha1.TriggerStatus{{Name: trigger, Outcome: deployv1alpha1.OutcomeFail, Value: "0.09", Threshold: "> 0.05",
			BreachingSince: &breach, LastEvaluated: &fired, Message: "fired: 0.09 > 0.05 for 2m0s"}},
		Rollback: &deployv1alpha1.RollbackRecord{Reason: "TriggerFired", Message: message, Value: "0.09",
			FiredAt: fired, CompletedAt: &restored},
	}
	g.Expect(bed.Client.Status().Update(ctx, cur)).To(Succeed())

	var out bytes.Buffer
	raw := startDashboard(t, &options{cfg: bed.Config, ns: "default", out: &out, err: &out}, "default")
	page, err := url.Parse(raw)
	g.Expect(err).NotTo(HaveOccurred())
	page.Path, page.RawQuery = "/release/default/checkout-v5", ""

	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000))...)
	defer stopAlloc()
	browserCtx, stopBrowser := chromedp.NewContext(alloc)
	defer stopBrowser()
	bctx, cancel := context.WithTimeout(browserCtx, 2*time.Minute)
	defer cancel()

	// The printed URL opens the session; then the release's page.
	g.Expect(chromedp.Do(bctx, chromedp.Navigate(raw), chromedp.WaitVisible(chromedp.CSS(`a[href="/release/default/checkout-v5"]`)),
		chromedp.Navigate(page.String()), chromedp.WaitVisible(chromedp.CSS("svg.plot")))).To(Succeed())

	chart, err := chromedp.Run(bctx, chromedp.Evaluate[plotData](`(() => {
		const fig = [...document.querySelectorAll("figure.plot-figure")]
			.find(f => f.querySelector("figcaption strong").textContent === "trigger `+trigger+`");
		const svg = fig && fig.querySelector("svg.plot");
		if (!svg) return {title: fig ? fig.innerText : "no figure"};
		const series = svg.querySelector("polyline.series");
		const lines = [...svg.querySelectorAll("line.threshold")];
		return {
			thresholds: lines.map(l => l.dataset.value),
			thresholdY: lines.map(l => l.y1.baseVal.value),
			points: series.dataset.points,
			ys: [...series.points].map(p => p.y),
			fired: svg.querySelector("line.fired")?.dataset.time || "",
			firedLabel: svg.querySelector("text.fired-label")?.textContent || "",
			title: svg.querySelector("title").textContent,
			rows: fig.querySelectorAll("details.values tbody tr").length,
		};
	})()`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chart.Thresholds).To(Equal([]string{"0.05"}), "the trigger's chart has its threshold line at 0.05: %s", chart.Title)
	g.Expect(chart.Fired).To(Equal(fired.UTC().Format(time.RFC3339)), "the rollback is marked on the chart at its time")
	g.Expect(chart.FiredLabel).To(Equal("⟲ rolled back " + fired.UTC().Format("15:04:05Z")))
	g.Expect(chart.Title).To(ContainSubstring("rolled back at " + fired.UTC().Format(time.RFC3339)))

	samples := strings.Fields(chart.Points)
	g.Expect(samples).To(HaveLen(len(chart.Ys)), "one drawn point per sample")
	g.Expect(chart.Rows).To(Equal(len(samples)), "the values are listed in a table too")
	var before, after int
	for i, s := range samples {
		ts, vs, ok := strings.Cut(s, ",")
		g.Expect(ok).To(BeTrue(), s)
		sec, err := strconv.ParseInt(ts, 10, 64)
		g.Expect(err).NotTo(HaveOccurred(), s)
		v, err := strconv.ParseFloat(vs, 64)
		g.Expect(err).NotTo(HaveOccurred(), s)
		if sec < breach.Unix() {
			before++
			g.Expect(v).To(BeNumerically("<", 0.05), "below the threshold before the breach: %s", s)
			g.Expect(chart.Ys[i]).To(BeNumerically(">", chart.ThresholdY[0]), "and drawn below the line: %s", s)
			continue
		}
		after++
		g.Expect(v).To(BeNumerically(">", 0.05), "above the threshold from the breach on: %s", s)
		g.Expect(chart.Ys[i]).To(BeNumerically("<", chart.ThresholdY[0]), "and drawn above the line (SVG's y grows down): %s", s)
	}
	g.Expect(before).To(BeNumerically(">=", 5), "the window holds the release before the breach")
	g.Expect(after).To(BeNumerically(">=", 5), "and after it, past the rollback")

	// The rollback is on the page in words: the phase, the message, the trigger's row
	// and the T-axis.
	live, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#live")))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(live).To(ContainSubstring("RolledBack"))
	g.Expect(live).To(ContainSubstring("because " + message))
	g.Expect(live).To(MatchRegexp(trigger+`\s+✗ Fail\s+0\.09\s+> 0\.05\s+%s`, breach.UTC().Format(time.RFC3339)),
		"the trigger's row says since when it breached")
	axis, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector("svg.axis").textContent`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(axis).To(ContainSubstring("⟲ rolled back (T+12m)"))

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(t.ArtifactDir(), "dashboard-rolled-back.png"), png, 0o600)).To(Succeed())
	fig, err := chromedp.Run(bctx, chromedp.Screenshot(chromedp.Search(`//figure[.//strong[text()="trigger `+trigger+`"]]`)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(t.ArtifactDir(), "dashboard-rolled-back-trigger.png"), fig, 0o600)).To(Succeed())
}
