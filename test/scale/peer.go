package scale

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/testbed"
)

// PeerConfig is one side-by-side memory measurement: Gates gates, each measuring two
// metrics of its own (the error rate and the p95 latency) every Interval against one
// Prometheus, made once by tminus and once by a peer.
type PeerConfig struct {
	Gates    int
	Interval time.Duration
	// Rounds of Interval after the warm-up; RSS is sampled at the end of each.
	Rounds int
	// ArgoRollouts is the path of an Argo Rollouts controller binary and ArgoCRDs the
	// directory of its CRDs (its module's manifests/crds); empty skips the peer.
	ArgoRollouts, ArgoCRDs string
	Log                    func(format string, args ...any)
}

// PeerResult is one contender's figures.
type PeerResult struct {
	Contender string
	Gates     int
	// RSSMiB is the controller process's resident memory: the largest and the last of
	// the samples taken after the warm-up.
	RSSMaxMiB, RSSLastMiB float64
	// QueriesPerRound is what Prometheus answered on /api/v1/query per interval.
	QueriesPerRound float64
	// SettledS is how long after the controller started every gate had measured.
	SettledS float64
}

// RunPeers measures tminus's manager binary and, when given, Argo Rollouts' controller,
// each alone on a fresh test bed holding the same Deployments and the same Prometheus
// series: tminus with Gates checklists waiting for a sign-off while measuring both
// metrics, Argo Rollouts with Gates AnalysisRuns measuring both (its analysis of a paused
// canary step, without the Rollout). Both controllers are separate processes, so their
// RSS is theirs alone.
func RunPeers(ctx context.Context, cfg PeerConfig) ([]PeerResult, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	out := []PeerResult{}
	res, err := runPeer(ctx, cfg, tminusContender)
	if err != nil {
		return out, err
	}
	out = append(out, res)
	if cfg.ArgoRollouts != "" {
		res, err := runPeer(ctx, cfg, argoContender)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

// The contenders' names, as the results give them.
const (
	tminusContender = "tminus"
	argoContender   = "argo-rollouts"
)

var analysisRunKind = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "AnalysisRun"}

func runPeer(ctx context.Context, cfg PeerConfig, contender string) (PeerResult, error) {
	res := PeerResult{Contender: contender, Gates: cfg.Gates}
	opts := testbed.Options{}
	if contender == argoContender {
		crds, err := crdOnlyDir(cfg.ArgoCRDs)
		if err != nil {
			return res, err
		}
		defer func() { _ = os.RemoveAll(crds) }()
		root, err := testbed.RepoRoot()
		if err != nil {
			return res, err
		}
		opts.CRDDirectoryPaths = []string{filepath.Join(root, "config", "crd", "bases"), crds}
	}
	bed, err := testbed.Start(ctx, opts)
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

	c, err := client.New(unthrottled(bed), client.Options{Scheme: bed.Client.Scheme()})
	if err != nil {
		return res, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}
	start := time.Now()
	create := func(i int) error { return createGate(ctx, c, cfg, contender, prom.URL, i) }
	if err := parallel(cfg.Gates, create); err != nil {
		return res, err
	}
	cfg.Log("%s: created %d gates in %s", contender, cfg.Gates, time.Since(start).Round(time.Second))

	dir, err := os.MkdirTemp("", "tminus-peer-")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	proc, err := startContender(ctx, bed, cfg, contender, dir)
	if err != nil {
		return res, err
	}
	defer func() {
		_ = proc.Process.Kill()
		_ = proc.Wait()
	}()
	started := time.Now()
	if err := waitMeasured(ctx, c, cfg, contender, proc, dir); err != nil {
		return res, err
	}
	res.SettledS = time.Since(started).Seconds()
	cfg.Log("%s: every gate measured after %s", contender, time.Since(started).Round(time.Second))
	time.Sleep(cfg.Interval)
	q0, err := promQueries(ctx, prom.URL)
	if err != nil {
		return res, err
	}
	pid := strconv.Itoa(proc.Process.Pid)
	for range cfg.Rounds {
		time.Sleep(cfg.Interval)
		rss := rssOf(pid)
		if rss == 0 {
			return res, fmt.Errorf("%s exited during the measurement: see %s", contender, dir)
		}
		res.RSSMaxMiB, res.RSSLastMiB = max(res.RSSMaxMiB, rss), rss
	}
	q1, err := promQueries(ctx, prom.URL)
	if err != nil {
		return res, err
	}
	res.QueriesPerRound = (q1 - q0) / float64(cfg.Rounds)
	return res, nil
}

// parallel runs do(i) for i in [0, n) on 16 workers and returns the first error.
func parallel(n int, do func(i int) error) error {
	work := make(chan int)
	go func() {
		for i := range n {
			work <- i
		}
		close(work)
	}()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// ownQuery makes q a query of gate name's own, as the distinct-queries size does, so
// that no contender can answer two gates with one query.
func ownQuery(q, name string) string {
	return "(" + q + `) + 0 * count(up{job="svc",checklist!="` + name + `"})`
}

// createGate makes gate i: a held Deployment with no replicas, and tminus's checklist or
// Argo Rollouts' AnalysisRun measuring its two metrics.
func createGate(ctx context.Context, c client.Client, cfg PeerConfig, contender, promURL string, i int) error {
	name := "c" + strconv.Itoa(i)
	held := testbed.Deployment(ns, name, "svc:v1", 0)
	held.Spec.Paused = true
	if err := c.Create(ctx, held); err != nil {
		return err
	}
	if contender == tminusContender {
		return c.Create(ctx, newChecklist(name, name, cfg.Interval, promURL, true))
	}
	run := &unstructured.Unstructured{}
	run.SetGroupVersionKind(analysisRunKind)
	run.SetNamespace(ns)
	run.SetName(name)
	metric := func(metricName, query, success string) map[string]any {
		return map[string]any{
			"name": metricName, "interval": cfg.Interval.String(), "successCondition": success,
			"failureLimit": int64(3),
			"provider": map[string]any{"prometheus": map[string]any{
				"address": promURL, "query": ownQuery(query, name), "timeout": int64(2)}},
		}
	}
	run.Object["spec"] = map[string]any{"metrics": []any{
		metric("error-rate", errorRateQuery, "result[0] < 0.01"),
		metric("p95", p95Query, "result[0] < 2"),
	}}
	return c.Create(ctx, run)
}

func startContender(ctx context.Context, bed *testbed.Bed, cfg PeerConfig, contender, dir string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	switch contender {
	case tminusContender:
		bins, err := testbed.BuildManager(dir, tminusContender)
		if err != nil {
			return nil, err
		}
		lease := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleetLeaseNamespace}}
		if err := bed.Client.Create(ctx, lease); err != nil {
			return nil, err
		}
		cmd = exec.Command(bins[0], "--kubeconfig", bed.Kubeconfig,
			"--leader-elect-namespace", fleetLeaseNamespace,
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--webhooks=false",
			"--allowed-hosts", "127.0.0.1/32",
			"--kube-api-qps", strconv.Itoa(ManagerQPS), "--kube-api-burst", strconv.Itoa(ManagerBurst))
	default:
		metrics, err := testbed.FreePort()
		if err != nil {
			return nil, err
		}
		healthz, err := testbed.FreePort()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(cfg.ArgoRollouts, "--kubeconfig", bed.Kubeconfig, "--leader-elect=false",
			"--metricsPort", strconv.Itoa(metrics), "--healthzPort", strconv.Itoa(healthz), "--loglevel", "warn")
	}
	log, err := os.Create(filepath.Join(dir, contender+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, cmd.Start()
}

// waitMeasured waits until every gate has measured both metrics at least once.
func waitMeasured(ctx context.Context, c client.Client, cfg PeerConfig, contender string, proc *exec.Cmd,
	dir string) error {
	deadline := time.Now().Add(15 * time.Minute)
	for {
		n, err := measuredGates(ctx, c, contender)
		if err != nil {
			return err
		}
		if n >= cfg.Gates {
			return nil
		}
		if rssOf(strconv.Itoa(proc.Process.Pid)) == 0 {
			return fmt.Errorf("%s exited: %s", contender, tail(filepath.Join(dir, contender+".log")))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d gates measured after 15 minutes: %s", contender, n, cfg.Gates,
				tail(filepath.Join(dir, contender+".log")))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

func measuredGates(ctx context.Context, c client.Client, contender string) (int, error) {
	n := 0
	if contender == tminusContender {
		var list deployv1alpha1.DeploymentChecklistList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		for _, d := range list.Items {
			if len(d.Status.Phases) > 0 && len(d.Status.Phases[0].Checks) > 2 &&
				d.Status.Phases[0].Checks[1].LastEvaluated != nil && d.Status.Phases[0].Checks[2].LastEvaluated != nil {
				n++
			}
		}
		return n, nil
	}
	runs := &unstructured.UnstructuredList{}
	runs.SetGroupVersionKind(analysisRunKind.GroupVersion().WithKind("AnalysisRunList"))
	if err := c.List(ctx, runs, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	for _, r := range runs.Items {
		results, _, _ := unstructured.NestedSlice(r.Object, "status", "metricResults")
		if len(results) >= 2 {
			n++
		}
	}
	return n, nil
}

// promQueries is how many instant queries Prometheus has answered.
func promQueries(ctx context.Context, promURL string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, promURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	n := 0.0
	for _, m := range families["prometheus_http_requests_total"].GetMetric() {
		if labelValue(m, "handler") == "/api/v1/query" {
			n += m.GetCounter().GetValue()
		}
	}
	return n, nil
}

func tail(path string) string {
	raw, _ := os.ReadFile(path)
	s := string(raw)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// crdOnlyDir copies the CRD files of dir (not its kustomization) into a new directory.
func crdOnlyDir(dir string) (string, error) {
	out, err := os.MkdirTemp("", "peer-crds-")
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), "-crd.yaml") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), raw, 0o600); err != nil {
			return "", err
		}
	}
	return out, nil
}

// startServiceScraped starts the instrumented service, answering 0.1 % errors in 50 ms,
// and a Prometheus scraping it as the namespace's.
func startServiceScraped(ctx context.Context) (*app.App, *testbed.Prometheus, error) {
	svc, err := app.Start(200)
	if err != nil {
		return nil, nil, err
	}
	svc.Set(0.001, 50*time.Millisecond)
	prom, err := testbed.StartPrometheus(ctx, testbed.PrometheusOptions{ScrapeConfigs: fmt.Sprintf(
		"- job_name: svc\n  static_configs:\n  - targets: [%q]\n    labels: {namespace: %s}\n", svc.Addr, ns)})
	if err != nil {
		svc.Close()
		return nil, nil, err
	}
	return svc, prom, nil
}

// unthrottled is the bed's admin config without client-side throttling: a harness
// writes thousands of objects.
func unthrottled(bed *testbed.Bed) *rest.Config {
	fast := rest.CopyConfig(bed.Config)
	fast.QPS, fast.Burst = 2000, 4000
	return fast
}
