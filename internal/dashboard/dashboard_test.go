package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// staticHub is a Hub whose store the test fills, with no watch behind it.
func staticHub(dcls ...*deployv1alpha1.DeploymentChecklist) *Hub {
	h := NewHub(nil, "")
	for _, d := range dcls {
		_ = h.informer.GetStore().Add(d)
	}
	h.changed("")
	return h
}

func release(i int, created time.Time) *deployv1alpha1.DeploymentChecklist {
	now := metav1.NewTime(created)
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("checkout-v%d", i), Namespace: "shop", CreationTimestamp: now},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"}, Revision: fmt.Sprintf("v%d", i),
			ChecklistBody: deployv1alpha1.ChecklistBody{Phases: []deployv1alpha1.PhaseSpec{
				{Name: "T-15m", At: "-15m", Checks: []deployv1alpha1.CheckSpec{
					{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
					{Name: "security", Approval: &deployv1alpha1.ApprovalCheck{Role: "security-review", Count: 2}},
				}},
				{Name: "T+5m", At: "5m"},
			}},
		},
		Status: deployv1alpha1.DeploymentChecklistStatus{
			Phase: deployv1alpha1.PhaseHolding, CurrentPhase: "T-15m", NextAction: "waiting for security-review",
			Approvals: []deployv1alpha1.ApprovalRecord{{Role: "deployment-lead", Approver: "alice", Revision: fmt.Sprintf("v%d", i), FirstSeen: now}},
			Phases: []deployv1alpha1.PhaseStatus{{Name: "T-15m", State: deployv1alpha1.PhaseStateOpen, Checks: []deployv1alpha1.CheckStatus{
				{Name: "lead", Kind: "Approval", Outcome: deployv1alpha1.OutcomePass},
				{Name: "security", Kind: "Approval", Outcome: deployv1alpha1.OutcomePending},
			}}},
		},
	}
}

type noActions struct{ record string }

func (noActions) Approve(context.Context, string, string, string) (string, error)  { return "", nil }
func (noActions) Revoke(context.Context, string, string, string) (string, error)   { return "", nil }
func (noActions) Rollback(context.Context, string, string, string) (string, error) { return "", nil }
func (noActions) Abort(context.Context, string, string, string) (string, error)    { return "", nil }
func (a noActions) Record(context.Context, string, string) (string, error)         { return a.record, nil }

func TestTheListShowsNewestFirstWithSignOffsGivenAndMissingInWords(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	s, err := New(Options{Address: "127.0.0.1", Port: 3100, Namespace: "shop", Actions: noActions{},
		Hub: staticHub(release(1, t0), release(2, t0.Add(time.Hour)))})
	g.Expect(err).NotTo(HaveOccurred())
	rows, err := s.RenderList()
	g.Expect(err).NotTo(HaveOccurred())
	out := string(rows)
	g.Expect(strings.Index(out, "checkout-v2")).To(BeNumerically("<", strings.Index(out, "checkout-v1")), "newest first")
	g.Expect(out).To(ContainSubstring("● deployment-lead 1/1 (alice)"))
	g.Expect(out).To(ContainSubstring("○ security-review 0/2"), "missing: a hollow mark, not only a colour")
}

func TestThePagesAreRefusedWithoutTheSessionAndFramesAndOtherScriptsForbidden(t *testing.T) {
	g := NewWithT(t)
	s, err := New(Options{Address: "127.0.0.1", Port: 3100, Namespace: "shop", Actions: noActions{}, Hub: staticHub(release(1, time.Now()))})
	g.Expect(err).NotTo(HaveOccurred())
	get := func(target, host, cookie string) *http.Response {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Host = host
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		return w.Result()
	}
	r := get("/", "127.0.0.1:3100", "")
	g.Expect(r.StatusCode).To(Equal(http.StatusUnauthorized))
	r = get("/?token="+s.token, "127.0.0.1:3100", "")
	g.Expect(r.StatusCode).To(Equal(http.StatusSeeOther))
	g.Expect(r.Header.Get("Location")).To(Equal("/"))
	cookies := r.Cookies()
	g.Expect(cookies).To(HaveLen(1))
	g.Expect(cookies[0].HttpOnly).To(BeTrue())
	g.Expect(cookies[0].SameSite).To(Equal(http.SameSiteStrictMode))
	session := cookies[0].Name + "=" + cookies[0].Value
	r = get("/", "localhost:3100", session)
	g.Expect(r.StatusCode).To(Equal(http.StatusOK))
	g.Expect(r.Header.Get("Content-Security-Policy")).To(ContainSubstring("frame-ancestors 'none'"))
	g.Expect(r.Header.Get("Content-Security-Policy")).To(ContainSubstring("default-src 'self'"))
	g.Expect(r.Header.Get("Referrer-Policy")).To(Equal("same-origin"),
		"no Referer to other sites, and the Origin of the dashboard's own forms is its own, not null")
	r = get("/", "rebound.example:3100", session)
	g.Expect(r.StatusCode).To(Equal(http.StatusMisdirectedRequest))
	r = get("/assets/app.js", "127.0.0.1:3100", session)
	g.Expect(r.StatusCode).To(Equal(http.StatusOK), "assets are embedded")
	b, _ := io.ReadAll(r.Body)
	g.Expect(string(b)).To(ContainSubstring("EventSource"))
}

func TestTheAxisPutsEachPhaseAsABandAroundTMinusZeroWithItsStateInWords(t *testing.T) {
	g := NewWithT(t)
	d := release(1, time.Now())
	a := AxisOf(d, time.Now())
	g.Expect(a.Bands).To(HaveLen(2))
	g.Expect([]any{a.Bands[0].Name, a.Bands[0].From, a.Bands[0].To, a.Bands[0].State}).
		To(Equal([]any{"T-15m", -15 * time.Minute, time.Duration(0), "Open"}), "the last T-minus phase ends at T-0")
	g.Expect(a.Bands[1].From).To(Equal(5 * time.Minute))
	g.Expect(a.Bands[1].To).To(Equal(15*time.Minute), "the last phase: to its deadline, 10m by default")
	svg := string(a.SVG())
	g.Expect(svg).To(ContainSubstring("T-15m ▶ Open"))
	g.Expect(svg).To(ContainSubstring("lead ✓ Pass, security … Pending"))
	g.Expect(svg).To(ContainSubstring(">T-0<"))
	g.Expect(offset(-90 * time.Minute)).To(Equal("T-1h30m"))
	g.Expect(offset(10 * time.Minute)).To(Equal("T+10m"))
	g.Expect(offset(2 * time.Hour)).To(Equal("T+2h"))
}

// BenchmarkRenderingTheListOf1000Releases renders the list's rows for 1,000 releases,
// as after every change the watch sees (once for every viewer), and serves the page.
func BenchmarkRenderingTheListOf1000Releases(b *testing.B) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	dcls := make([]*deployv1alpha1.DeploymentChecklist, 1000)
	for i := range dcls {
		dcls[i] = release(i, t0.Add(time.Duration(i)*time.Second))
	}
	h := staticHub(dcls...)
	s, err := New(Options{Address: "127.0.0.1", Port: 3100, Namespace: "shop", Actions: noActions{}, Hub: h})
	if err != nil {
		b.Fatal(err)
	}
	size := 0
	for b.Loop() {
		h.changed("") // a change: render again
		rows, err := s.RenderList()
		if err != nil {
			b.Fatal(err)
		}
		size = len(rows)
	}
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

func TestAMetricChecksEvaluationsArePlottedAgainstItsThresholdWithFailuresAsCrosses(t *testing.T) {
	g := NewWithT(t)
	at := func(m int) metav1.Time { return metav1.NewTime(time.Date(2026, 12, 5, 10, m, 0, 0, time.UTC)) }
	svg := string(HistorySVG(deployv1alpha1.CheckStatus{Name: "errors", Kind: "Metric", Threshold: "< 0.01 and < 1.5 × baseline 0.004 (0.006)",
		History: []deployv1alpha1.Measurement{
			{Time: at(0), Outcome: deployv1alpha1.OutcomePass, Value: "0.002"},
			{Time: at(1), Outcome: deployv1alpha1.OutcomeFail, Value: "0.03"},
			{Time: at(2), Outcome: deployv1alpha1.OutcomeNoData, Value: "NaN"},
		}}))
	g.Expect(strings.Count(svg, `class="threshold"`)).To(Equal(2), "0.01 and the resolved baseline bound 0.006, not the ratio")
	g.Expect(svg).To(ContainSubstring("<title>10:00:00Z: 0.002 ✓ Pass</title></circle>"))
	g.Expect(svg).To(ContainSubstring("<title>10:01:00Z: 0.03 ✗ Fail</title></path>"), "a failure is a cross, not only red")
	g.Expect(svg).To(ContainSubstring("2 evaluations"), "NaN is no point")
	g.Expect(HistorySVG(deployv1alpha1.CheckStatus{Name: "lead", Kind: "Approval"})).To(BeEmpty())
}

type countingRanger struct{ asked []string }

func (c *countingRanger) Range(_ context.Context, _ *deployv1alpha1.DeploymentChecklist, q string, start, end time.Time, _ time.Duration) ([]Sample, error) {
	c.asked = append(c.asked, q)
	return []Sample{{start, 0.01}, {start.Add(end.Sub(start) / 2), 0.02}, {end, 0.09}}, nil
}

func TestARolledBackReleasesPlotsAskEachQueryOnceAndShowTheBreachAboveTheLineWithItsForWindow(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	d := release(1, t0)
	above, below := "0.05", "0.03"
	d.Spec.Metrics = []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: `sum(rate(errors{app="checkout"}[1m]))`}}
	d.Spec.Phases[1].Checks = []deployv1alpha1.CheckSpec{{Name: "errors", Metric: "error-rate", Below: &below}}
	d.Spec.RollbackTriggers = []deployv1alpha1.RollbackTrigger{{Name: "errors-5pct", Metric: "error-rate", Above: &above, For: "2m"}}
	d.Status.Phase = deployv1alpha1.PhaseRolledBack
	d.Status.Triggers = []deployv1alpha1.TriggerStatus{{Name: "errors-5pct", Outcome: deployv1alpha1.OutcomeFail, Threshold: "> 0.05"}}
	d.Status.Rollback = &deployv1alpha1.RollbackRecord{Reason: "TriggerFired", Message: "rollback trigger errors-5pct fired: 0.09 > 0.05",
		FiredAt: metav1.NewTime(t0.Add(30 * time.Minute))}
	r := &countingRanger{}
	plots := Plots(context.Background(), r, d, t0.Add(2*time.Hour))
	g.Expect(plots).To(HaveLen(2))
	g.Expect(r.asked).To(Equal([]string{`sum(rate(errors{app="checkout"}[1m]))`}), "the check and the trigger share one query")
	trig := string(plots[1].SVG())
	g.Expect(plots[1].Name).To(Equal("trigger errors-5pct"))
	g.Expect(trig).To(ContainSubstring(`<title>threshold &gt; 0.05</title>`))
	g.Expect(trig).To(ContainSubstring("breach held for 2m, then rolled back at 2026-12-05T10:30:00Z"))
	g.Expect(trig).To(ContainSubstring("max 0.09"), "the series goes above the line")
	g.Expect(trig).To(ContainSubstring(`<line class="threshold" data-value="0.05"`), "the threshold's value is the chart's data")
	g.Expect(trig).To(MatchRegexp(`<polyline class="series" points="[^"]+" data-points="%d,0.01 \d+,0.02 \d+,0.09"/>`,
		plots[1].Start.Unix()), "each sample as unix-seconds,value")
	g.Expect(trig).To(ContainSubstring(`<line class="fired" data-time="2026-12-05T10:30:00Z"`))
	g.Expect(trig).To(ContainSubstring("⟲ rolled back 10:30:00Z"), "the rollback's time is marked in words, not only as a line")
	g.Expect(trig).To(ContainSubstring("max 0.09, rolled back at 2026-12-05T10:30:00Z</title>"), "and in the chart's title")
	g.Expect(string(plots[0].SVG())).NotTo(ContainSubstring(`class="fired"`), "the check did not roll the release back")
}

func TestTheAxisMarksWhenARolledBackReleaseWasRolledBack(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	d := release(1, t0.Add(-20*time.Minute))
	d.Status.Phase = deployv1alpha1.PhaseRolledBack
	d.Status.Target = &deployv1alpha1.TargetStatus{T0At: &metav1.Time{Time: t0}}
	d.Status.Rollback = &deployv1alpha1.RollbackRecord{Reason: "TriggerFired", FiredAt: metav1.NewTime(t0.Add(7*time.Minute + 30*time.Second))}
	a := AxisOf(d, t0.Add(time.Hour))
	g.Expect(a.RolledBack).To(HaveValue(Equal(7*time.Minute + 30*time.Second)))
	svg := string(a.SVG())
	g.Expect(svg).To(ContainSubstring(`<line class="rolled-back"`))
	g.Expect(svg).To(ContainSubstring("⟲ rolled back (T+7m30s)"))

	d.Status.Rollback.FiredAt = metav1.NewTime(t0.Add(40 * time.Minute))
	a = AxisOf(d, t0.Add(time.Hour))
	g.Expect(a.Max).To(Equal(40*time.Minute), "a rollback past the last phase's deadline widens the axis to it")
	g.Expect(string(a.SVG())).To(ContainSubstring("⟲ rolled back (T+40m)"))
}

// BenchmarkServingTheListPageWith1000Releases serves the whole list page for 1,000
// releases, as a browser opening it gets it (the rows rendered once per change, cached
// between changes).
func BenchmarkServingTheListPageWith1000Releases(b *testing.B) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	dcls := make([]*deployv1alpha1.DeploymentChecklist, 1000)
	for i := range dcls {
		dcls[i] = release(i, t0.Add(time.Duration(i)*time.Second))
	}
	s, err := New(Options{Address: "127.0.0.1", Port: 3100, Namespace: "shop", Actions: noActions{}, Hub: staticHub(dcls...)})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/?token="+s.token, nil)
	req.Host = "127.0.0.1:3100"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	cookie := w.Result().Cookies()[0]
	for b.Loop() {
		s.opts.Hub.changed("") // every load after a change: the worst case
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = "127.0.0.1:3100"
		req.AddCookie(cookie)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

func TestAnEndedReleasesRecordIsRenderedWithItsTablesAndWithoutTheHTMLSomeoneWroteIntoIt(t *testing.T) {
	g := NewWithT(t)
	d := release(1, time.Now())
	d.Status.Phase, d.Status.Record = deployv1alpha1.PhaseRolledBack, "tminus-record-checkout-v1"
	md := "# Release record: shop/checkout-v1 (v1)\n\n- **Why:** rolled back by bob: <script>alert(1)</script> bad build\n\n" +
		"| event | at |\n|---|---|\n| checklist created | 2026-12-05T10:00:00Z |\n"
	s, err := New(Options{Address: "127.0.0.1", Port: 3100, Namespace: "shop", Actions: noActions{record: md}, Hub: staticHub(d)})
	g.Expect(err).NotTo(HaveOccurred())
	get := func(path string) string {
		req := httptest.NewRequest(http.MethodGet, "/?token="+s.token, nil)
		req.Host = "127.0.0.1:3100"
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		req = httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "127.0.0.1:3100"
		req.AddCookie(w.Result().Cookies()[0])
		w = httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		return w.Body.String()
	}
	page := get("/release/shop/checkout-v1")
	g.Expect(page).To(ContainSubstring("<h1>Release record: shop/checkout-v1 (v1)</h1>"))
	g.Expect(page).To(ContainSubstring("<td>checklist created</td>"), "the record's tables are tables")
	g.Expect(page).NotTo(ContainSubstring("<script>alert(1)</script>"))
	g.Expect(page).To(ContainSubstring(`href="/release/shop/checkout-v1/record.md"`), "the markdown a link away")
	g.Expect(get("/release/shop/checkout-v1/record.md")).To(Equal(md), "copied as markdown, as kept")
}

// stream is a ResponseWriter for a server-sent event stream read while it runs.
type stream struct {
	mu      sync.Mutex
	header  http.Header
	body    bytes.Buffer
	flushes int
}

func (s *stream) Header() http.Header { return s.header }
func (s *stream) WriteHeader(int)     {}
func (s *stream) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.body.Write(b)
}
func (s *stream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
}
func (s *stream) read() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.body.String(), s.flushes
}

func TestTheFirstLivePushAfterAPageLoadIsLeftOutWhileNothingChangedSinceThePageWasRendered(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	hub := staticHub(release(1, t0), release(2, t0.Add(time.Minute)))
	s, err := New(Options{Address: "127.0.0.1", Port: 3100, Namespace: "shop", Actions: noActions{}, Hub: hub})
	g.Expect(err).NotTo(HaveOccurred())
	req := httptest.NewRequest(http.MethodGet, "/?token="+s.token, nil)
	req.Host = "127.0.0.1:3100"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	cookie := w.Result().Cookies()[0]
	get := func(target string) string {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Host = "127.0.0.1:3100"
		req.AddCookie(cookie)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		g.Expect(w.Code).To(Equal(http.StatusOK), target)
		return w.Body.String()
	}
	// follow opens the page's event stream, as the page's script does.
	follow := func(page string) *stream {
		m := regexp.MustCompile(`data-events="([^"]+)"`).FindStringSubmatch(page)
		g.Expect(m).To(HaveLen(2), "the page names its event stream")
		target := strings.ReplaceAll(m[1], "&amp;", "&")
		g.Expect(target).To(ContainSubstring("since="), "with the generation the page was rendered at")
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		req.Host = "127.0.0.1:3100"
		req.AddCookie(cookie)
		st := &stream{header: http.Header{}}
		done := make(chan struct{})
		go func() { defer close(done); s.Handler().ServeHTTP(st, req) }()
		t.Cleanup(func() { cancel(); <-done })
		// The stream answers at once (its headers flushed), pushing or not.
		g.Eventually(func() int { _, n := st.read(); return n }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 1))
		return st
	}
	update := func(i int, next string) {
		d := release(i, t0.Add(time.Duration(i-1)*time.Minute))
		d.Status.NextAction = next
		g.Expect(hub.informer.GetStore().Update(d)).To(Succeed())
		hub.changed("")
	}

	list, rel := follow(get("/")), follow(get("/release/shop/checkout-v1"))
	for _, st := range []*stream{list, rel} {
		body, _ := st.read()
		g.Expect(body).NotTo(ContainSubstring("event:"), "nothing changed since the page was rendered: nothing re-sent")
		g.Expect(body).To(HavePrefix(": the page is current"))
	}

	update(1, "waiting for the change window")
	for name, st := range map[string]*stream{"releases": list, "release": rel} {
		g.Eventually(func() string { b, _ := st.read(); return b }).WithTimeout(10*time.Second).
			Should(ContainSubstring("waiting for the change window"), "a change is pushed as before")
		body, _ := st.read()
		g.Expect(strings.Count(body, "event: "+name+"\n")).To(Equal(1), "once: for the change")
	}

	// A page rendered before a change it does not show gets it as soon as it listens.
	page := get("/")
	update(2, "waiting for the freeze to lift")
	late := follow(page)
	g.Eventually(func() string { b, _ := late.read(); return b }).WithTimeout(10 * time.Second).
		Should(ContainSubstring("waiting for the freeze to lift"))
	// Without since (a stream opened by hand): pushed at once, as before.
	req = httptest.NewRequest(http.MethodGet, "/events", nil)
	ctx, cancel := context.WithCancel(context.Background())
	req = req.WithContext(ctx)
	req.Host = "127.0.0.1:3100"
	req.AddCookie(cookie)
	st := &stream{header: http.Header{}}
	done := make(chan struct{})
	go func() { defer close(done); s.Handler().ServeHTTP(st, req) }()
	g.Eventually(func() string { b, _ := st.read(); return b }).WithTimeout(10 * time.Second).Should(ContainSubstring("event: releases"))
	cancel()
	<-done
}
