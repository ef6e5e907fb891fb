package dashboard

import (
	"cmp"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// timings is a script run in every document before its own: it keeps, in
// milliseconds since the navigation started (performance.now()), the first frame
// painted once the page's rows are in the document, and the frame after the event
// stream's first list replaced them.
const timings = `window.__tminus = {};
document.addEventListener("DOMContentLoaded", () => {
  requestAnimationFrame(() => requestAnimationFrame(() => { window.__tminus.rendered = performance.now(); }));
  const live = document.getElementById("live");
  if (!live) return;
  new MutationObserver((_, o) => {
    o.disconnect();
    requestAnimationFrame(() => requestAnimationFrame(() => { window.__tminus.live = performance.now(); }));
  }).observe(live, {childList: true});
});`

// loadFigures are one load's figures, in milliseconds since the navigation started.
type loadFigures struct {
	Response float64 `json:"response"` // the page's last byte
	DOM      float64 `json:"dom"`      // DOMContentLoaded handled
	Load     float64 `json:"load"`     // the load event handled
	Rendered float64 `json:"rendered"` // a frame painted with the 1,000 rows
	Live     float64 `json:"live"`     // a frame painted after the event stream's list replaced them
}

// figures waits for the page's timings and gives them.
const figures = `new Promise((resolve) => {
  const n = performance.getEntriesByType("navigation")[0];
  const done = () => {
    const t = window.__tminus;
    if (document.querySelectorAll("#live tr").length !== 1000 || !t.rendered || !n.loadEventEnd) {
      setTimeout(done, 5);
      return;
    }
    resolve({response: n.responseEnd, dom: n.domContentLoadedEventEnd, load: n.loadEventEnd, rendered: t.rendered, live: t.live || 0});
  };
  done();
})`

// BenchmarkLoadingTheListOf1000ReleasesInABrowser opens the list of 1,000 releases in
// headless Chromium (hack/install-chromium.sh; TMINUS_CHROMIUM names another), as a
// user does: each iteration navigates to it and reports, in milliseconds from the
// navigation's start as the browser measured them, the response's end, the load
// event, and the first frame painted with the 1,000 rows. The event stream sends no
// list on load while nothing changed (the page carries the generation it shows), so
// "live list painted" is 0 unless a replacement had been painted by then. It asserts
// no time:
//
//	go test ./internal/dashboard/ -run '^$' -bench LoadingTheListOf1000ReleasesInABrowser -benchtime 10x
func BenchmarkLoadingTheListOf1000ReleasesInABrowser(b *testing.B) {
	chromium, err := exec.LookPath(cmp.Or(os.Getenv("TMINUS_CHROMIUM"), "chromium"))
	if err != nil {
		b.Fatalf("no Chromium (%v): run hack/install-chromium.sh, or set TMINUS_CHROMIUM", err)
	}
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	dcls := make([]*deployv1alpha1.DeploymentChecklist, 1000)
	for i := range dcls {
		dcls[i] = release(i, t0.Add(time.Duration(i)*time.Second))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Address: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, Namespace: "shop",
		Actions: noActions{}, Hub: staticHub(dcls...)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			b.Error(err)
		}
	}()

	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000))...)
	defer stopAlloc()
	browser, stopBrowser := chromedp.NewContext(alloc)
	defer stopBrowser()
	bctx, cancel := context.WithTimeout(browser, 10*time.Minute)
	defer cancel()
	if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: timings}); err != nil {
		b.Fatal(err)
	}
	// The printed URL: the token for the cookie; the first load warms the browser.
	if err := chromedp.Do(bctx, chromedp.Navigate(s.URL())); err != nil {
		b.Fatal(err)
	}
	list := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.opts.Port)) + "/"
	var sum loadFigures
	n := 0
	for b.Loop() {
		if err := chromedp.Do(bctx, chromedp.Navigate(list)); err != nil {
			b.Fatal(err)
		}
		f, err := chromedp.Run(bctx, chromedp.Evaluate[loadFigures](figures, chromedp.EvalAwaitPromise))
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("load %d: response %.0f ms, DOMContentLoaded %.0f ms, load %.0f ms, rows painted %.0f ms, live list painted %.0f ms",
			n+1, f.Response, f.DOM, f.Load, f.Rendered, f.Live)
		sum.Response, sum.Load, sum.Rendered = sum.Response+f.Response, sum.Load+f.Load, sum.Rendered+f.Rendered
		n++
	}
	if n > 0 {
		b.ReportMetric(sum.Response/float64(n), "ms-response/load")
		b.ReportMetric(sum.Load/float64(n), "ms-loadevent/load")
		b.ReportMetric(sum.Rendered/float64(n), "ms-rows-painted/load")
	}
}
