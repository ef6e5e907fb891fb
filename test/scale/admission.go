package scale

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/history"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/manager"
	"github.com/tminus-dev/tminus/test/testbed"
)

// heldTarget is the gated Deployment whose past the held writes are timed against.
const heldTarget = "checkout"

// PastResult is the admission of held writes to one Deployment with Past ended
// checklists on it.
type PastResult struct {
	Past, Writes int
	// Observed: each write waited (untimed) until the Deployment controller had
	// observed the one before, as a pipeline's or GitOps tool's single write finds a
	// Deployment; otherwise they came back to back, as a self-heal storm at its worst.
	Observed bool
	// Held of the Writes came back held (spec.paused and tminus's hold): all of them.
	Held int
	// WebhookP50Ms and P99Ms are the Deployment gate's own handling, from
	// controller-runtime's webhook latency histogram (its native buckets, about 9 %
	// wide: the upper bound of the bucket holding the quantile).
	WebhookP50Ms, WebhookP99Ms float64
	// RequestP50Ms and P99Ms are the whole write through the API server (the gate
	// called over HTTPS, the write stored in etcd), timed by the client.
	RequestP50Ms, RequestP99Ms float64
	// APIRequests the API server served during the timed writes, by verb and
	// resource (those at least one in ten writes).
	APIRequests map[string]float64
}

// apiRequestsBy is the API server's count of requests by verb and resource.
func apiRequestsBy(ctx context.Context, bed *testbed.Bed) (map[string]float64, error) {
	out := map[string]float64{}
	var err error
	_, err = bed.APIRequests(ctx, func(labels string) bool {
		out[labelOf(labels, "verb")+" "+labelOf(labels, "resource")] += 0
		return false
	})
	if err != nil {
		return nil, err
	}
	for k := range out {
		verb, resource, _ := strings.Cut(k, " ")
		if out[k], err = bed.APIRequests(ctx, func(labels string) bool {
			return labelOf(labels, "verb") == verb && labelOf(labels, "resource") == resource
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// labelOf reads one label's value from a Prometheus label set's text.
func labelOf(labels, name string) string {
	_, v, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// RunPast measures held writes through the API server: for each past in pasts, a
// gated Deployment with that many ended checklists (spec.historyLimit keeping them
// all) and one live checklist waiting for a sign-off; writes patches of its image, one
// after another, each held by the Deployment gate, and reads the gate's latency
// histogram and the requests' times. Only the Deployment gate's webhook is installed:
// the checklists are created as the harness's others are (status written directly).
func RunPast(ctx context.Context, pasts []int, writes int, log func(string, ...any)) ([]PastResult, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-past-webhook-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := deploymentGateOnly(filepath.Join(root, "config", "webhook", "manifests.yaml"), dir); err != nil {
		return nil, err
	}
	bed, err := testbed.Start(ctx, testbed.Options{Cluster: true, WebhookPaths: []string{dir}})
	if err != nil {
		return nil, err
	}
	defer bed.Stop()
	host, port, certDir := bed.Webhook()
	mcfg := rest.CopyConfig(bed.Config)
	mcfg.QPS, mcfg.Burst = ManagerQPS, ManagerBurst
	mgrCtx, stop := context.WithCancel(ctx)
	mgr, err := manager.StartWithOptions(mgrCtx, mcfg, bed.Client.Scheme(), &prometheus.Provider{Secrets: bed.Client},
		manager.Options{
			Webhooks: &manager.Webhooks{Host: host, Port: port, CertDir: certDir}, HistoryLimit: history.DefaultLimit,
			HistoryQPS: history.DefaultQPS}, nil)
	if err != nil {
		stop()
		return nil, err
	}
	defer func() {
		stop()
		<-mgr.Done
	}()
	c, err := client.New(unthrottled(bed), client.Options{Scheme: bed.Client.Scheme()})
	if err != nil {
		return nil, err
	}
	var out []PastResult
	for _, past := range pasts {
		space := "past-" + strconv.Itoa(past)
		if err := pastOf(ctx, c, mgr.Cache, space, past); err != nil {
			return nil, err
		}
		log("%s: a Deployment with %d ended checklists and one live, in the manager's cache", space, past)
		// Warm-up: connections, the gate's first decisions.
		if _, _, err := heldWrites(ctx, c, space, 20, 0, false); err != nil {
			return nil, err
		}
		for _, observed := range []bool{false, true} {
			r, err := timedHeldWrites(ctx, bed, c, space, past, writes, observed, log)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// timedHeldWrites times writes held writes to the Deployment of space, reading the
// gate's latency histogram and the API server's requests around them.
func timedHeldWrites(ctx context.Context, bed *testbed.Bed, c client.Client, space string, past, writes int,
	observed bool, log func(string, ...any)) (PastResult, error) {
	from := 20
	if observed {
		from += writes
	}
	reqs0, err := apiRequestsBy(ctx, bed)
	if err != nil {
		return PastResult{}, err
	}
	before, err := webhookHistogram()
	if err != nil {
		return PastResult{}, err
	}
	times, held, err := heldWrites(ctx, c, space, writes, from, observed)
	if err != nil {
		return PastResult{}, err
	}
	after, err := webhookHistogram()
	if err != nil {
		return PastResult{}, err
	}
	reqs1, err := apiRequestsBy(ctx, bed)
	if err != nil {
		return PastResult{}, err
	}
	r := PastResult{Past: past, Writes: writes, Observed: observed, Held: held, APIRequests: map[string]float64{}}
	for k, v := range reqs1 {
		if d := v - reqs0[k]; d >= float64(writes)/10 {
			r.APIRequests[k] = d
		}
	}
	log("API requests during the %d writes (verb resource, at least one in ten writes): %v", writes, r.APIRequests)
	r.RequestP50Ms, r.RequestP99Ms = quantile(times, 0.5)*1000, quantile(times, 0.99)*1000
	r.WebhookP50Ms, r.WebhookP99Ms = after.minus(before).quantile(0.5)*1000, after.minus(before).quantile(0.99)*1000
	log("%d past, observed %t: %d of %d held; the gate p50 %.2f ms, p99 %.2f ms; the request p50 %.2f ms, p99 %.2f ms",
		past, observed, held, writes, r.WebhookP50Ms, r.WebhookP99Ms, r.RequestP50Ms, r.RequestP99Ms)
	return r, nil
}

// deploymentGateOnly writes, into dir, the webhook configuration of manifests with the
// Deployment gate alone.
func deploymentGateOnly(manifests, dir string) error {
	raw, err := os.ReadFile(manifests)
	if err != nil {
		return err
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	cfg.Webhooks = slices.DeleteFunc(cfg.Webhooks, func(w admissionregistrationv1.MutatingWebhook) bool {
		svc := w.ClientConfig.Service
		return svc == nil || svc.Path == nil || *svc.Path != webhook.GatePath
	})
	if len(cfg.Webhooks) != 1 {
		return fmt.Errorf("%s: no Deployment gate at %s", manifests, webhook.GatePath)
	}
	out, err := yaml.Marshal(&cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "gate.yaml"), out, 0o600)
}

// pastOf makes namespace space: the gated Deployment checkout on v0, past checklists
// ended Succeeded on it (v1 to v<past>, each with the target status tminus writes),
// then one live checklist for v<past+1> waiting for a sign-off; every one keeps a
// history of 1,000 (spec.historyLimit), as the newest's limit is the target's. It
// returns once the live checklist runs and the manager's cache holds them all.
func pastOf(ctx context.Context, c client.Client, cache client.Reader, space string, past int) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: space}}); err != nil {
		return err
	}
	d := testbed.Deployment(space, heldTarget, "checkout:v0", 0)
	d.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	if err := c.Create(ctx, d); err != nil {
		return err
	}
	limit := int32(1000)
	checklist := func(i int) *deployv1alpha1.DeploymentChecklist {
		return &deployv1alpha1.DeploymentChecklist{
			ObjectMeta: metav1.ObjectMeta{Namespace: space, Name: "checkout-" + strconv.Itoa(i)},
			Spec: deployv1alpha1.DeploymentChecklistSpec{
				Target:   &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDeployment, Name: heldTarget},
				Revision: "v" + strconv.Itoa(i),
				ChecklistBody: deployv1alpha1.ChecklistBody{HistoryLimit: &limit, Phases: []deployv1alpha1.PhaseSpec{{
					Name: "T-10m", At: "-10m",
					Checks: []deployv1alpha1.CheckSpec{{Name: "lead",
						Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}}}}}},
			},
		}
	}
	hashOf := func(image string) string {
		return gate.TemplateHash(&testbed.Deployment(space, heldTarget, image, 0).Spec.Template)
	}
	work := make(chan int)
	errs := make(chan error, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 16 {
			go func() {
				for i := range work {
					dcl := checklist(i)
					if err := c.Create(ctx, dcl); err != nil {
						errs <- err
						continue
					}
					at := metav1.Now()
					prev, cur := "checkout:v"+strconv.Itoa(i-1), "checkout:v"+strconv.Itoa(i)
					// The manager may have reconciled it as new already: written over.
					errs <- retry.RetryOnConflict(retry.DefaultRetry, func() error {
						if err := c.Get(ctx, client.ObjectKeyFromObject(dcl), dcl); err != nil {
							return err
						}
						dcl.Status = deployv1alpha1.DeploymentChecklistStatus{Phase: deployv1alpha1.PhaseSucceeded}
						dcl.Status.Targets = []deployv1alpha1.ReleaseTargetStatus{{Kind: deployv1alpha1.KindDeployment, Name: heldTarget,
							TargetStatus: deployv1alpha1.TargetStatus{
								PreDeployTemplateHash: hashOf(prev), PreDeployImages: []string{prev}, CapturedAt: &at,
								CandidateTemplateHash: hashOf(cur), CandidateImages: []string{cur}, T0At: &at,
								ReleasedAt: &at, ReleasedTemplateHash: hashOf(cur),
							}}}
						return c.Status().Update(ctx, dcl)
					})
				}
			}()
		}
	}()
	var firstErr error
	go func() {
		for i := 1; i <= past; i++ {
			work <- i
		}
		close(work)
	}()
	for range past {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	<-done
	if firstErr != nil {
		return firstErr
	}
	// The live one last: the newest, whose limit is the target's.
	time.Sleep(time.Second) // creation timestamps are to the second
	if err := c.Create(ctx, checklist(past+1)); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var list deployv1alpha1.DeploymentChecklistList
		if err := cache.List(ctx, &list, client.InNamespace(space)); err != nil {
			return err
		}
		running, ended := false, 0
		for _, dcl := range list.Items {
			switch {
			case dcl.Name == "checkout-"+strconv.Itoa(past+1):
				running = dcl.Status.Phase == deployv1alpha1.PhaseRunning && len(dcl.Status.Targets) == 1 &&
					dcl.Status.Targets[0].CapturedAt != nil
			case dcl.Status.Phase == deployv1alpha1.PhaseSucceeded:
				ended++
			}
		}
		if running && ended == past {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the live checklist running %t, %d of %d ended in the cache", space, running, ended, past)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// heldWrites patches checkout's image n times, one after another (images w<from> on;
// observed: each once the Deployment controller observed the one before), and returns
// each request's time in seconds and how many came back held.
func heldWrites(ctx context.Context, c client.Client, space string, n, from int, observed bool) (times []float64,
	held int, err error) {
	for i := range n {
		if observed {
			if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, time.Minute, true,
				func(ctx context.Context) (bool, error) {
					var d appsv1.Deployment
					err := c.Get(ctx, client.ObjectKey{Namespace: space, Name: heldTarget}, &d)
					return err == nil && d.Status.ObservedGeneration == d.Generation, err
				}); err != nil {
				return nil, 0, err
			}
		}
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"checkout:w%d"}]}}}}`,
			from+i)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: space, Name: heldTarget}}
		began := time.Now()
		if err := c.Patch(ctx, d, client.RawPatch(types.StrategicMergePatchType, []byte(patch))); err != nil {
			return nil, 0, err
		}
		times = append(times, time.Since(began).Seconds())
		if d.Spec.Paused && d.Annotations[deployv1alpha1.HeldByAnnotation] != "" {
			held++
		}
	}
	return times, held, nil
}

// nativeHistogram is a native histogram's counts by bucket index (schema's base to
// the index is the bucket's upper bound), zero bucket apart.
type nativeHistogram struct {
	schema int32
	zero   float64
	counts map[int]float64
}

// webhookHistogram reads controller-runtime's latency histogram of the Deployment gate.
func webhookHistogram() (nativeHistogram, error) {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		return nativeHistogram{}, err
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_latency_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "webhook") == webhook.GatePath {
				return native(m.GetHistogram())
			}
		}
	}
	return nativeHistogram{counts: map[int]float64{}}, nil
}

func native(h *dto.Histogram) (nativeHistogram, error) {
	if h.Schema == nil {
		return nativeHistogram{}, fmt.Errorf("the webhook latency histogram has no native buckets")
	}
	n := nativeHistogram{schema: h.GetSchema(), zero: float64(h.GetZeroCount()), counts: map[int]float64{}}
	idx, di := 0, 0
	count := int64(0)
	for si, span := range h.GetPositiveSpan() {
		if si == 0 {
			idx = int(span.GetOffset())
		} else {
			idx += int(span.GetOffset())
		}
		for range span.GetLength() {
			count += h.GetPositiveDelta()[di]
			di++
			n.counts[idx] = float64(count)
			idx++
		}
	}
	return n, nil
}

func (n nativeHistogram) minus(o nativeHistogram) nativeHistogram {
	out := nativeHistogram{schema: n.schema, zero: n.zero - o.zero, counts: map[int]float64{}}
	for i, c := range n.counts {
		out.counts[i] = c - o.counts[i]
	}
	return out
}

// quantile is the upper bound, in seconds, of the bucket holding quantile q.
func (n nativeHistogram) quantile(q float64) float64 {
	idx := make([]int, 0, len(n.counts))
	total := n.zero
	for i, c := range n.counts {
		idx = append(idx, i)
		total += c
	}
	slices.Sort(idx)
	seen := n.zero
	if total == 0 || seen >= q*total {
		return 0
	}
	base := math.Pow(2, math.Pow(2, -float64(n.schema)))
	for _, i := range idx {
		seen += n.counts[i]
		if seen >= q*total {
			return math.Pow(base, float64(i))
		}
	}
	return math.Pow(base, float64(idx[len(idx)-1]))
}
