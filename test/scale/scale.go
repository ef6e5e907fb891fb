// Package scale measures tminus at scale on the test bed with a real Prometheus: N
// checklists of which M are actively gating (measuring a metric every interval), plus
// a few releases whose error rate breaches to time the rollback. hack/benchscale runs
// it at 1,000 to 10,000 checklists (make bench-scale); a small size runs in make test.
package scale

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	prometheusclient "github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	engine "github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/history"
	tminusmetrics "github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/manager"
	"github.com/tminus-dev/tminus/test/testbed"
)

// Config is one size to measure.
type Config struct {
	// Checklists in all; Active of them gate a release and measure every interval. The
	// others are finished releases, as most checklists in a cluster are.
	Checklists, Active int
	// Releases are checklists verifying a real rollout whose error rate is made to
	// breach, to time breach-to-rollback.
	Releases int
	// TargetsPerRelease is how many Deployments each release gates (spec.targets,
	// released together, judged together by the one error-rate trigger); 1 (spec.target)
	// when zero. A release's rollback is timed until every one of them is restored.
	TargetsPerRelease int
	// Interval of every checklist.
	Interval time.Duration
	// Rounds of Interval measured after the warm-up.
	Rounds int
	// Blackholed of the active checklists ask a Prometheus that accepts connections and
	// never answers: the others, and the releases, must not wait for them.
	Blackholed int
	// DistinctQueries gives every checklist two metrics of its own, so nothing is
	// shared: every measurement is a query sent.
	DistinctQueries bool
	// Replicas, when more than one, runs the real manager binary that many times with
	// --shards Shards (8 when zero) instead of one manager in the harness's process;
	// the run ends by killing one replica and timing the takeover of its shards.
	Replicas, Shards int
	// Lease is the fleet's shard lease duration (the renew deadline two thirds of it,
	// the retry period an eighth); the manager's default, 15s, when zero.
	Lease time.Duration
	// EndedPerTarget, when set, spreads the finished checklists over targets of that
	// many each (p0, p1, ...), and the active checklists gate the first of those
	// targets, one each, so every live release has a past (those past the number of
	// targets gate a target of their own). Without it each finished
	// checklist names a target of its own. The manager keeps HistoryLimit ended
	// checklists per target (the binary's default, 10): with EndedPerTarget above it,
	// the excess is trimmed at start, timed from the API server's count of deletes.
	EndedPerTarget int
	// HistoryLimit is the manager's --checklist-history-limit (history.DefaultLimit
	// when zero).
	HistoryLimit int
	// HistoryQPS is the manager's --checklist-history-qps; nil: its default
	// (history.DefaultQPS), 0: the client's rate limiter alone.
	HistoryQPS *float64
	// HeapProfile, when set, is where a heap profile of the in-process manager is
	// written when memory is measured.
	HeapProfile string
	Log         func(format string, args ...any)
}

// Result is what one size measured.
type Result struct {
	Checklists, Active, Releases int
	IntervalSeconds              float64
	Rounds                       int
	// RSSMiB and HeapMiB of the process (manager, harness and demo service together).
	RSSMiB, HeapMiB float64
	// QueriesPerRound sent to Prometheus; DistinctQueries is the ideal.
	QueriesPerRound float64
	DistinctQueries int
	// WritesPerRound to the API server (create, update, patch, delete of any resource).
	WritesPerRound float64
	// ReconcileP50 and P99 in milliseconds (controller-runtime's histogram).
	ReconcileP50Ms, ReconcileP99Ms float64
	// BreachToRollback p50 and p99 in seconds: from the first breaching sample
	// (Prometheus answers the checklists' query above the trigger's threshold) to the
	// Deployment's template being restored.
	BreachToRollbackP50s, BreachToRollbackP99s float64
	// BreachVisibleS is how long after the service's error rate changed Prometheus
	// first answered a breaching value (scrapes and the rate window).
	BreachVisibleS float64
	// TickToRollback p50 and p99 in seconds: from the first evaluation tick (the
	// interval's grid) after the breach became visible to the template being
	// restored: tminus's own share. Breach to rollback is the wait for that tick (at
	// most one interval) plus this.
	TickToRollbackP50s, TickToRollbackP99s float64
	// RestoreSpread p50 and p99 in seconds: in each release, from its first target seen
	// restored to its last (0 with one target): how much of tick→rollback the targets
	// after the first add.
	RestoreSpreadP50s, RestoreSpreadP99s float64
	// Blackholed and AllDistinct (Config.DistinctQueries) are the run's configuration.
	Blackholed  int
	AllDistinct bool
	// EvaluationsPerSecond are the metric checks and triggers evaluated per second in the
	// measured rounds; ExpectedPerSecond is what every checklist measuring on schedule
	// would make; QueriesPerSecond went to Prometheus.
	EvaluationsPerSecond, ExpectedPerSecond, QueriesPerSecond float64
	// TargetsPerRelease is the Deployments each release gates (Config.TargetsPerRelease).
	TargetsPerRelease int
	// ReleasesRestored are the releases whose checklist ended RolledBack with the
	// rollback complete and every target recorded restored (status.targets[].restoredAt);
	// TargetsRestored the release Deployments seen back on their pre-deploy template.
	// Both are read after the timing, and are Releases and Releases×TargetsPerRelease
	// when every rollback did its whole job.
	ReleasesRestored, TargetsRestored int
	// Replicas and Shards of a fleet run; ReplicaRSSMiB is each replica's resident
	// memory (RSSMiB is then the largest), TakeoverS how long after one replica was
	// killed every shard it held was held by another.
	Replicas, Shards int
	ReplicaRSSMiB    []float64
	TakeoverS        float64
	// CreateS is how long the harness took to create the checklists; SettledS from
	// the first created to every active one measured and every release verifying.
	CreateS, SettledS float64
	// EndedPerTarget, HistoryLimit and HistoryQPS are the run's configuration
	// (HistoryQPS 0: the client's rate limiter alone).
	EndedPerTarget, HistoryLimit int
	HistoryQPS                   float64
	// Trim is the history limit at work at start, when there was anything to trim.
	Trim *Trim `json:",omitempty"`
}

// Trim is what the history limit did at start: the API server's count of checklist
// deletes (and of every write) sampled every second.
type Trim struct {
	// Expected deletes (the ended checklists past the limit); Deleted seen.
	Expected, Deleted int
	// Seconds from the manager's start to the last delete.
	Seconds float64
	// MeanPerS is deletes per second from the first to the last; PeakPerS the most in
	// one sampled second, Peak10sPerS the most over ten.
	MeanPerS, PeakPerS, Peak10sPerS float64
	// WritesPeak10sPerS is every write to the API server (leases and events excluded),
	// the most over ten seconds of the trimming.
	WritesPeak10sPerS float64
	// LiveDeleted are the live checklists (active and releases) gone after it (0), and
	// EndedLeft the ended checklists left (targets × limit).
	LiveDeleted, EndedLeft int
}

const (
	ns     = "scale"
	metric = "error-rate"
	// errorRateQuery is every checklist's metric; the trigger fires above 0.05.
	errorRateQuery = `(sum(rate(http_requests_total{namespace="` + ns + `",code=~"5.."}[10s])) or vector(0)) / ` +
		`sum(rate(http_requests_total{namespace="` + ns + `"}[10s]))`
	// p95 and p95Query are the second metric of DistinctQueries checklists.
	p95      = "p95"
	p95Query = `histogram_quantile(0.95, sum by (le) ` +
		`(rate(http_request_duration_seconds_bucket{namespace="` + ns + `"}[10s])))`
)

// ManagerQPS and ManagerBurst are the manager's client limits in the benchmark: the
// manager's --kube-api-qps and --kube-api-burst defaults.
const (
	ManagerQPS   = 100
	ManagerBurst = 200
)

// Run measures one size on a fresh test bed.
//
//nolint:gocyclo // the benchmark's steps, in the order they run
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Releases+cfg.Active > cfg.Checklists {
		return Result{}, fmt.Errorf("%d checklists cannot hold %d releases and %d active others", cfg.Checklists,
			cfg.Releases, cfg.Active)
	}
	if cfg.TargetsPerRelease == 0 {
		cfg.TargetsPerRelease = 1
	}
	if cfg.HistoryLimit == 0 {
		cfg.HistoryLimit = history.DefaultLimit
	}
	historyQPS := float64(history.DefaultQPS)
	if cfg.HistoryQPS != nil {
		historyQPS = *cfg.HistoryQPS
	}
	if cfg.TargetsPerRelease < 1 || cfg.TargetsPerRelease > deployv1alpha1.MaxTargets {
		return Result{}, fmt.Errorf("a release gates 1 to %d targets, not %d",
			deployv1alpha1.MaxTargets, cfg.TargetsPerRelease)
	}
	if cfg.Replicas > 1 && cfg.Shards == 0 {
		cfg.Shards = 8
	}
	res := Result{Checklists: cfg.Checklists, Active: cfg.Active, Releases: cfg.Releases,
		IntervalSeconds: cfg.Interval.Seconds(), Rounds: cfg.Rounds, DistinctQueries: 1,
		Blackholed: cfg.Blackholed, AllDistinct: cfg.DistinctQueries, Replicas: max(1, cfg.Replicas), Shards: cfg.Shards,
		TargetsPerRelease: cfg.TargetsPerRelease, EndedPerTarget: cfg.EndedPerTarget, HistoryLimit: cfg.HistoryLimit,
		HistoryQPS: historyQPS}
	if cfg.DistinctQueries {
		res.DistinctQueries = 2 * (cfg.Active + cfg.Releases) // two metrics each
	}
	// A hundred thousand checklists with their statuses, and their revisions until
	// the API server compacts them, pass etcd's default quota of 2 GiB.
	bed, err := testbed.Start(ctx, testbed.Options{Cluster: cfg.Releases > 0, EtcdQuotaBytes: 8 << 30})
	if err != nil {
		return res, err
	}
	defer bed.Stop()
	svc, prom, err := startServiceScraped(ctx)
	if err != nil {
		return res, err
	}
	defer svc.Close()
	defer prom.Close()

	dead := ""
	if cfg.Blackholed > 0 {
		hole, err := testbed.StartBlackhole()
		if err != nil {
			return res, err
		}
		defer hole.Close()
		dead = hole.URL
	}

	// The harness writes thousands of objects: no client-side throttling for it.
	watcher, err := client.NewWithWatch(unthrottled(bed), client.Options{Scheme: bed.Client.Scheme()})
	if err != nil {
		return res, err
	}
	var c client.Client = watcher
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}
	start := time.Now()
	if err := populate(ctx, c, cfg, prom.URL, dead); err != nil {
		return res, err
	}
	res.CreateS = time.Since(start).Seconds()
	cfg.Log("created %d checklists (%d active, %d releases of %d targets) in %s",
		cfg.Checklists, cfg.Active, cfg.Releases, cfg.TargetsPerRelease, time.Since(start).Round(time.Second))
	deletes0, err := checklistDeletes(ctx, bed)
	if err != nil {
		return res, err
	}
	writes00, err := apiWrites(ctx, bed)
	if err != nil {
		return res, err
	}
	mgrStart := time.Now()

	var run running
	if cfg.Replicas > 1 {
		f, err := startFleet(ctx, bed, c, cfg)
		if err != nil {
			return res, err
		}
		defer f.stop()
		if err := f.waitShardsHeld(ctx); err != nil {
			return res, err
		}
		run = f
	} else {
		provider := &prometheus.Provider{Secrets: c}
		mgrCtx, stopMgr := context.WithCancel(ctx)
		mgr, err := startManager(mgrCtx, bed, provider, cfg.HistoryLimit, historyQPS)
		if err != nil {
			stopMgr()
			return res, err
		}
		defer func() {
			stopMgr()
			<-mgr.Done
		}()
		run = &inProcess{mgr: mgr, provider: provider}
	}

	if excess := trimmed(cfg); excess > 0 {
		if res.Trim, err = measureTrim(ctx, bed, cfg, excess, deletes0, writes00, mgrStart); err != nil {
			return res, err
		}
	}

	// Warm-up: every checklist reconciled at least once and the releases verifying.
	// Polled from a cache: listing thousands of checklists from the API server every
	// second would load it more than the manager does.
	if err := waitSettled(ctx, run.reader(), cfg); err != nil {
		return res, err
	}
	res.SettledS = time.Since(start).Seconds()
	cfg.Log("settled in %s", time.Since(start).Round(time.Second))
	time.Sleep(cfg.Interval)

	writes0, err := apiWrites(ctx, bed)
	if err != nil {
		return res, err
	}
	sent0, evals0 := run.sent(ctx), run.evaluations(ctx)
	time.Sleep(time.Duration(cfg.Rounds) * cfg.Interval)
	window := (time.Duration(cfg.Rounds) * cfg.Interval).Seconds()
	sent := run.sent(ctx) - sent0
	res.EvaluationsPerSecond = (run.evaluations(ctx) - evals0) / window
	res.QueriesPerSecond = sent / window
	perChecklist := 1.0
	if cfg.DistinctQueries {
		perChecklist = 2
	}
	res.ExpectedPerSecond = (perChecklist*float64(cfg.Active) + float64(cfg.Releases)) / cfg.Interval.Seconds()
	writes1, err := apiWrites(ctx, bed)
	if err != nil {
		return res, err
	}
	res.QueriesPerRound = sent / float64(cfg.Rounds)
	res.WritesPerRound = (writes1 - writes0) / float64(cfg.Rounds)
	res.RSSMiB, res.HeapMiB, res.ReplicaRSSMiB = run.memory()
	if cfg.HeapProfile != "" && cfg.Replicas <= 1 {
		if err := writeHeapProfile(cfg.HeapProfile); err != nil {
			return res, err
		}
	}
	res.ReconcileP50Ms, res.ReconcileP99Ms = run.reconcileLatency(ctx)

	if cfg.Releases > 0 {
		lat, spread, visible, tick, err := breachToRollback(ctx, watcher, cfg, svc, prom)
		if err != nil {
			return res, err
		}
		if res.ReleasesRestored, res.TargetsRestored, err = rolledBack(ctx, c, cfg); err != nil {
			return res, err
		}
		res.BreachToRollbackP50s, res.BreachToRollbackP99s = quantile(lat, 0.5), quantile(lat, 0.99)
		res.BreachVisibleS = visible.Seconds()
		res.RestoreSpreadP50s, res.RestoreSpreadP99s = quantile(spread, 0.5), quantile(spread, 0.99)
		wait := tick.Seconds()
		fromTick := make([]float64, len(lat))
		for i, l := range lat {
			fromTick[i] = l - wait
		}
		res.TickToRollbackP50s, res.TickToRollbackP99s = quantile(fromTick, 0.5), quantile(fromTick, 0.99)
	}
	if f, ok := run.(*fleet); ok {
		takeover, err := f.kill(ctx, c, 0)
		if err != nil {
			return res, err
		}
		res.TakeoverS = takeover.Seconds()
	}
	return res, nil
}

// running is the manager under measurement: in the harness's process, or a fleet of
// replicas.
type running interface {
	reader() client.Reader
	sent(ctx context.Context) float64
	evaluations(ctx context.Context) float64
	memory() (rssMiB, heapMiB float64, perReplica []float64)
	reconcileLatency(ctx context.Context) (p50, p99 float64)
}

type inProcess struct {
	mgr      *manager.Manager
	provider *prometheus.Provider
}

func (m *inProcess) reader() client.Reader                               { return m.mgr.Cache }
func (m *inProcess) sent(context.Context) float64                        { return float64(m.provider.Sent()) }
func (m *inProcess) evaluations(context.Context) float64                 { return evaluations() }
func (m *inProcess) reconcileLatency(context.Context) (p50, p99 float64) { return reconcileLatency() }
func (m *inProcess) memory() (rssMiB, heapMiB float64, perReplica []float64) {
	rss, heap := memory()
	return rss, heap, []float64{rss}
}

func (f *fleet) reader() client.Reader { return f.cache }
func (f *fleet) memory() (rssMiB, heapMiB float64, perReplica []float64) {
	per := f.rss()
	for _, r := range per {
		rssMiB = max(rssMiB, r)
	}
	return rssMiB, 0, per
}

// newChecklist is one checklist of the harness: an error-rate check before T-0 and a
// trigger after it. With distinct, it has a second metric and both queries are its
// own (the same values, written so no other checklist sends the same text).
func newChecklist(name, target string, interval time.Duration, promURL string,
	distinct bool) *deployv1alpha1.DeploymentChecklist {
	dcl := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDeployment, Name: target},
			Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Interval:   interval.String(),
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: promURL, Timeout: "2s"},
				Metrics:    []deployv1alpha1.MetricSpec{{Name: metric, Query: errorRateQuery}},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
						{Name: "errors", Metric: metric, Below: new("0.01")},
					}},
					{Name: "T+1h", At: "1h", Checks: []deployv1alpha1.CheckSpec{
						{Name: "errors", Metric: metric, Below: new("0.01")},
					}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{{Name: "errors-5pct", Metric: metric, Above: new("0.05")}},
			},
		},
	}
	if distinct {
		own := func(q string) string { return "(" + q + `) + 0 * count(up{job="svc",checklist!="` + name + `"})` }
		dcl.Spec.Metrics = []deployv1alpha1.MetricSpec{
			{Name: metric, Query: own(errorRateQuery)}, {Name: p95, Query: own(p95Query)}}
		dcl.Spec.Phases[0].Checks = append(dcl.Spec.Phases[0].Checks,
			deployv1alpha1.CheckSpec{Name: p95, Metric: p95, Below: new("2")})
	}
	return dcl
}

// populate creates the checklists: finished ones (status Succeeded), active ones
// (waiting for a sign-off while measuring, target held), and releases (approved; their
// Deployment rolls out v2 through kube-controller-manager and kwok).
func populate(ctx context.Context, c client.Client, cfg Config, promURL, dead string) error {
	return parallel(cfg.Checklists, func(i int) error { return create(ctx, c, cfg, promURL, dead, i) })
}

func create(ctx context.Context, c client.Client, cfg Config, promURL, dead string, i int) error {
	name := "c" + strconv.Itoa(i)
	checklist := func(name, target string, interval time.Duration, promURL string) *deployv1alpha1.DeploymentChecklist {
		return newChecklist(name, target, interval, promURL, cfg.DistinctQueries)
	}
	switch {
	case i < cfg.Releases:
		targets := releaseTargets(i, cfg.TargetsPerRelease)
		// v1 rolls out first on every target, so each has a pre-deploy template to come
		// back to. The Deployments carry their release's name, for the harness to
		// watch them.
		ds := make([]*appsv1.Deployment, len(targets))
		for j, t := range targets {
			ds[j] = testbed.Deployment(ns, t, "svc:v1", 1)
			ds[j].Labels = map[string]string{releaseLabel: name}
			if err := c.Create(ctx, ds[j]); err != nil {
				return err
			}
		}
		for _, d := range ds {
			if err := waitAvailable(ctx, c, d); err != nil {
				return err
			}
		}
		// Held (as the checklist would hold them) while the pipeline pushes v2.
		for _, d := range ds {
			if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var cur appsv1.Deployment
				if err := c.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
					return err
				}
				cur.Spec.Paused = true
				cur.Spec.Template.Spec.Containers[0].Image = "svc:v2"
				return c.Update(ctx, &cur)
			}); err != nil {
				return err
			}
		}
		dcl := checklist(name, targets[0], cfg.Interval, promURL)
		if len(targets) > 1 {
			// Released together, judged together: the trigger names no target, so
			// the release's error rate (the namespace's, every target's traffic)
			// rolls back all of them.
			dcl.Spec.Target = nil
			for _, t := range targets {
				dcl.Spec.Targets = append(dcl.Spec.Targets, deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDeployment, Name: t})
			}
		}
		dcl.Annotations = map[string]string{deployv1alpha1.ApprovalAnnotationPrefix + "deployment-lead": "ops for v2"}
		return c.Create(ctx, dcl)
	case i < cfg.Releases+cfg.Active:
		gated := name
		if k := i - cfg.Releases; cfg.EndedPerTarget > 0 && k < pastTargets(cfg) {
			gated = pastTarget(k)
		}
		held := testbed.Deployment(ns, gated, "svc:v1", 0)
		held.Spec.Paused = true
		if err := c.Create(ctx, held); err != nil {
			return err
		}
		if i < cfg.Releases+cfg.Blackholed {
			return c.Create(ctx, checklist(name, gated, cfg.Interval, dead))
		}
		return c.Create(ctx, checklist(name, gated, cfg.Interval, promURL))
	default:
		past := name
		if cfg.EndedPerTarget > 0 {
			past = pastTarget((i - cfg.Releases - cfg.Active) / cfg.EndedPerTarget)
		}
		dcl := checklist(name, past, cfg.Interval, promURL)
		if err := c.Create(ctx, dcl); err != nil {
			return err
		}
		// Finished, with the status tminus would have written: what a restarted
		// manager finds.
		dcl.Status = deployv1alpha1.DeploymentChecklistStatus{Phase: deployv1alpha1.PhaseSucceeded}
		dcl.Status = engine.Decide(engine.MustWhole(dcl), engine.Observations{}, time.Now()).Status
		return c.Status().Update(ctx, dcl)
	}
}

// releaseLabel on a release's Deployments names its checklist.
const releaseLabel = "scale.tminus.dev/release"

// releaseTargets names the Deployments of release i: ci alone, or ci-0 to ci-(n-1).
func releaseTargets(i, n int) []string {
	name := "c" + strconv.Itoa(i)
	if n <= 1 {
		return []string{name}
	}
	targets := make([]string, n)
	for j := range targets {
		targets[j] = name + "-" + strconv.Itoa(j)
	}
	return targets
}

func startManager(ctx context.Context, bed *testbed.Bed, provider *prometheus.Provider, historyLimit int,
	historyQPS float64) (*manager.Manager, error) {
	// The manager's own client limits, as --kube-api-qps and --kube-api-burst default.
	cfg := rest.CopyConfig(bed.Config)
	cfg.QPS, cfg.Burst = ManagerQPS, ManagerBurst
	return manager.StartWithOptions(ctx, cfg, bed.Client.Scheme(), provider,
		manager.Options{HistoryLimit: historyLimit, HistoryQPS: historyQPS}, nil)
}

// waitSettled waits until every active checklist has measured once and every release
// is verifying.
func waitSettled(ctx context.Context, c client.Reader, cfg Config) error {
	// Every ended checklist is reconciled once at start, within the manager's client
	// budget when the cache strips them (each read whole from the API server).
	deadline := time.Now().Add(15*time.Minute + time.Duration(cfg.Checklists)*time.Second/ManagerQPS)
	logged := time.Now()
	for {
		var list deployv1alpha1.DeploymentChecklistList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		measured, verifying := 0, 0
		waiting := ""
		for _, d := range list.Items {
			if strings.HasPrefix(d.Name, "c") && d.Status.Phase != deployv1alpha1.PhaseVerifying && waiting == "" {
				if i, err := strconv.Atoi(d.Name[1:]); err == nil && i < cfg.Releases {
					waiting = fmt.Sprintf("release %s is %s: %s", d.Name, d.Status.Phase, d.Status.NextAction)
				}
			}
			switch d.Status.Phase {
			case deployv1alpha1.PhaseVerifying:
				verifying++
			case deployv1alpha1.PhaseRunning:
				if len(d.Status.Phases) > 0 && len(d.Status.Phases[0].Checks) > 1 &&
					d.Status.Phases[0].Checks[1].LastEvaluated != nil {
					measured++
				}
			}
		}
		if measured >= cfg.Active && verifying >= cfg.Releases {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not settled: %d of %d active measured, %d of %d releases verifying (%s)",
				measured, cfg.Active, verifying, cfg.Releases, waiting)
		}
		if time.Since(logged) > 30*time.Second {
			cfg.Log("settling: %d of %d active measured, %d of %d releases verifying (%s)",
				measured, cfg.Active, verifying, cfg.Releases, waiting)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// apiWrites reads the API server's own count of mutating requests.
func apiWrites(ctx context.Context, bed *testbed.Bed) (float64, error) {
	return bed.APIRequests(ctx, func(labels string) bool {
		if !strings.Contains(labels, `verb="PATCH"`) && !strings.Contains(labels, `verb="PUT"`) &&
			!strings.Contains(labels, `verb="POST"`) && !strings.Contains(labels, `verb="DELETE"`) {
			return false
		}
		// Leases and events are the control plane's and tminus's bookkeeping, not writes
		// to checklists or workloads.
		return !strings.Contains(labels, `resource="leases"`) && !strings.Contains(labels, `resource="events"`)
	})
}

func memory() (rssMiB, heapMiB float64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return rssOf("self"), float64(ms.HeapInuse) / (1 << 20)
}

// reconcileLatency reads controller-runtime's reconcile time histogram.
func reconcileLatency() (p50, p99 float64) {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		return 0, 0
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_time_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "controller") == "deploymentchecklist" {
				h := m.GetHistogram()
				return bucketQuantile(h, 0.5) * 1000, bucketQuantile(h, 0.99) * 1000
			}
		}
	}
	return 0, 0
}

// evaluations reads how many metric checks and triggers have been evaluated (tminus's
// counter, which the harness's in-process manager does not serve).
func evaluations() float64 {
	reg := prometheusclient.NewRegistry()
	if err := reg.Register(tminusmetrics.CheckEvaluations); err != nil {
		return 0
	}
	families, err := reg.Gather()
	if err != nil {
		return 0
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "tminus_check_evaluations_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if k := labelValue(m, "kind"); k == "Metric" || k == "Trigger" {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// bucketQuantile is the upper bound of the bucket holding quantile q.
func bucketQuantile(h *dto.Histogram, q float64) float64 {
	total := float64(h.GetSampleCount())
	for _, b := range h.GetBucket() {
		if float64(b.GetCumulativeCount()) >= q*total {
			return b.GetUpperBound()
		}
	}
	return 0
}

// breachToRollback raises the service's error rate, waits for Prometheus to answer the
// checklists' query with a breaching value, and times from then how long each
// release takes until every one of its Deployments is restored to v1 (seconds), and
// how long from its first target seen restored to its last (spread). It also says how
// long the breach took to become visible in Prometheus, and how long from then to the
// next evaluation tick on the interval's grid.
//
// The release Deployments are watched, not polled: a release of four targets must not
// load the API server four times as much as a release of one while it is timed.
func breachToRollback(ctx context.Context, c client.WithWatch, cfg Config, svc *app.App,
	prom *testbed.Prometheus) (lat, spread []float64, visible, tickWait time.Duration, err error) {
	first := map[string]time.Time{}
	// pending holds, for each release, its targets not yet seen restored.
	pending := map[string]map[string]bool{}
	for i := range cfg.Releases {
		targets := map[string]bool{}
		for _, t := range releaseTargets(i, cfg.TargetsPerRelease) {
			targets[t] = true
		}
		pending["c"+strconv.Itoa(i)] = targets
	}
	var breach time.Time
	// seen takes one observation of a release Deployment.
	seen := func(d *appsv1.Deployment) {
		release := d.Labels[releaseLabel]
		if !pending[release][d.Name] || d.Spec.Template.Spec.Containers[0].Image != "svc:v1" {
			return
		}
		delete(pending[release], d.Name)
		now := time.Now()
		if first[release].IsZero() {
			first[release] = now
		}
		if len(pending[release]) == 0 {
			lat = append(lat, now.Sub(breach).Seconds())
			spread = append(spread, now.Sub(first[release]).Seconds())
			delete(pending, release)
		}
	}
	// Watching from before the breach: no restore can be missed.
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.HasLabels{releaseLabel}); err != nil {
		return nil, nil, 0, 0, err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	watchFrom := func(rv string) (watch.Interface, error) {
		return c.Watch(wctx, &appsv1.DeploymentList{}, client.InNamespace(ns), client.HasLabels{releaseLabel},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	}
	w, err := watchFrom(list.ResourceVersion)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	defer func() { w.Stop() }()

	changed := time.Now()
	svc.Set(0.5, 50*time.Millisecond)
	defer svc.Set(0.001, 50*time.Millisecond)
	for breach.IsZero() {
		v, qerr := prom.Query(ctx, errorRateQuery)
		if f, perr := strconv.ParseFloat(v, 64); qerr == nil && perr == nil && f > 0.05 {
			breach = time.Now()
		}
		if time.Since(changed) > time.Minute {
			return nil, nil, 0, 0, fmt.Errorf("prometheus never showed the breach (last error: %v)", qerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A restore seen before the breach was visible (none is expected) counts at once.
	for i := range list.Items {
		seen(&list.Items[i])
	}
	deadline := time.After(5 * time.Minute)
	for len(pending) > 0 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				// The API server ended the watch: list again, watch from there.
				w.Stop()
				if err := c.List(ctx, &list, client.InNamespace(ns), client.HasLabels{releaseLabel}); err != nil {
					return nil, nil, 0, 0, err
				}
				for i := range list.Items {
					seen(&list.Items[i])
				}
				if w, err = watchFrom(list.ResourceVersion); err != nil {
					return nil, nil, 0, 0, err
				}
				continue
			}
			if d, isDeployment := ev.Object.(*appsv1.Deployment); isDeployment {
				seen(d)
			}
		case <-deadline:
			return nil, nil, 0, 0, fmt.Errorf("%d releases not rolled back within 5m", len(pending))
		case <-ctx.Done():
			return nil, nil, 0, 0, ctx.Err()
		}
	}
	tick := breach.Truncate(cfg.Interval)
	if tick.Before(breach) {
		tick = tick.Add(cfg.Interval)
	}
	return lat, spread, breach.Sub(changed), tick.Sub(breach), nil
}

// rolledBack waits (after the timing) for each release's checklist to record its
// rollback, and counts the releases that ended RolledBack, the rollback complete, with
// every target released and recorded restored, and the release Deployments that run v1
// again, resumed.
func rolledBack(ctx context.Context, c client.Client, cfg Config) (releases, targets int, err error) {
	done := func(dcl *deployv1alpha1.DeploymentChecklist) bool {
		st := dcl.Status
		if st.Phase != deployv1alpha1.PhaseRolledBack || st.Rollback == nil || st.Rollback.CompletedAt == nil ||
			len(st.Targets) != cfg.TargetsPerRelease {
			return false
		}
		for _, t := range st.Targets {
			if t.ReleasedAt == nil || t.RestoredAt == nil {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		releases, targets = 0, 0
		for i := range cfg.Releases {
			var dcl deployv1alpha1.DeploymentChecklist
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "c" + strconv.Itoa(i)}, &dcl); err != nil {
				return 0, 0, err
			}
			if done(&dcl) {
				releases++
			}
			for _, t := range releaseTargets(i, cfg.TargetsPerRelease) {
				var d appsv1.Deployment
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: t}, &d); err != nil {
					return 0, 0, err
				}
				if d.Spec.Template.Spec.Containers[0].Image == "svc:v1" && !d.Spec.Paused {
					targets++
				}
			}
		}
		if (releases == cfg.Releases && targets == cfg.Releases*cfg.TargetsPerRelease) || time.Now().After(deadline) {
			return releases, targets, nil
		}
		select {
		case <-ctx.Done():
			return releases, targets, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

func waitAvailable(ctx context.Context, c client.Client, d *appsv1.Deployment) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var cur appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		if cur.Status.ObservedGeneration == cur.Generation && cur.Status.AvailableReplicas == *cur.Spec.Replicas &&
			cur.Annotations["deployment.kubernetes.io/revision"] != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Deployment %s did not roll out", d.Name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
