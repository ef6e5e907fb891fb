package scale

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

const fleetLeaseNamespace = "tminus-system"

// replica is one manager process of a fleet: the real binary (cmd/), taking shards by
// Lease, its metrics served on loopback.
type replica struct {
	cmd     *exec.Cmd
	metrics string
	log     string
}

// fleet is Replicas manager processes sharing Shards, and a harness-side cache of the
// checklists to see them settle without loading the API server.
type fleet struct {
	replicas []*replica
	shards   int
	lease    time.Duration
	cache    cache.Cache
	stop     func()
}

// startFleet builds the manager and starts cfg.Replicas of it against the bed.
func startFleet(ctx context.Context, bed *testbed.Bed, c client.Client, cfg Config) (*fleet, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tminus-fleet-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "tminus")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the manager: %v\n%s", err, out)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleetLeaseNamespace}}); err != nil {
		return nil, err
	}
	f := &fleet{shards: cfg.Shards, lease: cfg.Lease}
	if f.lease == 0 {
		f.lease = 15 * time.Second
	}
	cctx, cancel := context.WithCancel(ctx)
	f.stop = func() {
		cancel()
		for _, r := range f.replicas {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
		_ = os.RemoveAll(dir)
	}
	for i := range cfg.Replicas {
		r, err := startReplica(bin, bed, dir, i, cfg.Shards, f.lease)
		if err != nil {
			f.stop()
			return nil, err
		}
		f.replicas = append(f.replicas, r)
	}
	f.cache, err = cache.New(bed.Config, cache.Options{Scheme: bed.Client.Scheme(),
		DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		f.stop()
		return nil, err
	}
	if _, err := f.cache.GetInformer(cctx, &deployv1alpha1.DeploymentChecklist{}); err != nil {
		f.stop()
		return nil, err
	}
	go func() { _ = f.cache.Start(cctx) }()
	if !f.cache.WaitForCacheSync(cctx) {
		f.stop()
		return nil, fmt.Errorf("the harness's cache did not sync")
	}
	return f, nil
}

func startReplica(bin string, bed *testbed.Bed, dir string, i, shards int, lease time.Duration) (*replica, error) {
	port, err := testbed.FreePort()
	if err != nil {
		return nil, err
	}
	// Each under its own name: the name is its user agent in the API server's logs.
	own := filepath.Join(dir, "tminus-replica-"+strconv.Itoa(i))
	if err := os.Link(bin, own); err != nil {
		return nil, err
	}
	logPath := own + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(own, "--kubeconfig", bed.Kubeconfig,
		"--shards", strconv.Itoa(shards), "--leader-elect-namespace", fleetLeaseNamespace,
		"--leader-elect-lease-duration", lease.String(), "--leader-elect-renew-deadline", (lease * 2 / 3).String(),
		"--leader-elect-retry-period", (lease / 8).String(),
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(port), "--metrics-secure=false",
		"--health-probe-bind-address", "0", "--webhooks=false", "--allowed-hosts", "127.0.0.1/32",
		"--kube-api-qps", strconv.Itoa(ManagerQPS), "--kube-api-burst", strconv.Itoa(ManagerBurst))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &replica{cmd: cmd, metrics: "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics", log: logPath}, nil
}

// gather reads a replica's metrics; nil once it is gone.
func (r *replica) gather(ctx context.Context) map[string]*dto.MetricFamily {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metrics, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil
	}
	return families
}

// sum adds the values (counters, or histogram counts) of a metric across live
// replicas, keeping the samples keep accepts.
func (f *fleet) sum(ctx context.Context, name string, keep func(*dto.Metric) bool) float64 {
	var n float64
	for _, r := range f.replicas {
		fam := r.gather(ctx)[name]
		if fam == nil {
			continue
		}
		for _, m := range fam.GetMetric() {
			if keep != nil && !keep(m) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				n += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				n += float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				n += m.GetGauge().GetValue()
			}
		}
	}
	return n
}

// sent is the queries the replicas sent to Prometheus.
func (f *fleet) sent(ctx context.Context) float64 {
	return f.sum(ctx, "tminus_prometheus_query_duration_seconds", nil)
}

// evaluations of metric checks and triggers by every replica.
func (f *fleet) evaluations(ctx context.Context) float64 {
	return f.sum(ctx, "tminus_check_evaluations_total", func(m *dto.Metric) bool {
		k := labelValue(m, "kind")
		return k == "Metric" || k == "Trigger"
	})
}

// heldShards is how many shards the replicas hold in all.
func (f *fleet) heldShards(ctx context.Context) float64 {
	return f.sum(ctx, "tminus_shard_held", nil)
}

// rss is each replica's resident memory, MiB.
func (f *fleet) rss() []float64 {
	out := make([]float64, 0, len(f.replicas))
	for _, r := range f.replicas {
		out = append(out, rssOf(strconv.Itoa(r.cmd.Process.Pid)))
	}
	return out
}

// reconcileLatency is the worst replica's reconcile p50 and p99, ms.
func (f *fleet) reconcileLatency(ctx context.Context) (p50, p99 float64) {
	for _, r := range f.replicas {
		fam := r.gather(ctx)["controller_runtime_reconcile_time_seconds"]
		for _, m := range fam.GetMetric() {
			if labelValue(m, "controller") == "deploymentchecklist" {
				h := m.GetHistogram()
				p50, p99 = max(p50, bucketQuantile(h, 0.5)*1000), max(p99, bucketQuantile(h, 0.99)*1000)
			}
		}
	}
	return p50, p99
}

// identity is the shard identity replica i logged.
func (f *fleet) identity(i int) string {
	return testbed.ShardIdentity(f.replicas[i].log)
}

// kill SIGKILLs replica i and measures how long until every shard it held is held by
// another replica: the Leases' acquire times against the kill.
func (f *fleet) kill(ctx context.Context, c client.Reader, i int) (time.Duration, error) {
	dead := f.identity(i)
	if dead == "" {
		return 0, fmt.Errorf("replica %d logged no shard identity", i)
	}
	var held []string
	for s := range f.shards {
		var l coordinationv1.Lease
		name := "tminus-shard-" + strconv.Itoa(s)
		if err := c.Get(ctx, client.ObjectKey{Namespace: fleetLeaseNamespace, Name: name}, &l); err != nil {
			return 0, err
		}
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == dead {
			held = append(held, name)
		}
	}
	if len(held) == 0 {
		return 0, fmt.Errorf("replica %d held no shard", i)
	}
	if err := f.replicas[i].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return 0, err
	}
	_ = f.replicas[i].cmd.Wait()
	killed := time.Now()
	deadline := killed.Add(3 * f.lease)
	var worst time.Duration
	for _, name := range held {
		for {
			var l coordinationv1.Lease
			if err := c.Get(ctx, client.ObjectKey{Namespace: fleetLeaseNamespace, Name: name}, &l); err != nil {
				return 0, err
			}
			if h := l.Spec.HolderIdentity; h != nil && *h != "" && *h != dead && l.Spec.AcquireTime != nil {
				worst = max(worst, l.Spec.AcquireTime.Sub(killed))
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("the Lease %s was not taken over within %s", name, 3*f.lease)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return worst, nil
}

// waitShardsHeld waits until the replicas hold every shard between them, each its
// share.
func (f *fleet) waitShardsHeld(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if int(f.heldShards(ctx)) == f.shards {
			share := (f.shards + len(f.replicas) - 1) / len(f.replicas)
			ok := true
			for _, r := range f.replicas {
				n := 0.0
				for _, m := range r.gather(ctx)["tminus_shard_held"].GetMetric() {
					n += m.GetGauge().GetValue()
				}
				ok = ok && int(n) <= share
			}
			if ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replicas hold %v of %d shards", f.heldShards(ctx), f.shards)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rssOf reads a process's resident memory, MiB ("self" for this one).
func rssOf(pid string) float64 {
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
