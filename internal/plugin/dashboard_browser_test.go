package plugin

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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

// TestTheDashboardInABrowserFollowsTheWatchAndIsReachableByKeyboard drives headless
// Chromium (hack/install-chromium.sh; TMINUS_CHROMIUM names another) through the
// dashboard: the list, opened from the printed URL, shows a held release and changes
// when its status does, without a reload; the release's link is reached with Tab and
// opened with Enter; the release's page draws its T-axis. A screenshot of the page is
// kept as an artefact (go test -artifacts), and written to docs/ with
// TMINUS_UPDATE_SCREENSHOTS=1.
func TestTheDashboardInABrowserFollowsTheWatchAndIsReachableByKeyboard(t *testing.T) {
	g := NewWithT(t)
	chromium, err := exec.LookPath(cmp.Or(os.Getenv("TMINUS_CHROMIUM"), "chromium"))
	if err != nil {
		t.Fatalf("no Chromium (%v): run hack/install-chromium.sh, or set TMINUS_CHROMIUM", err)
	}
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
