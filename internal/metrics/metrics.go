// Package metrics holds tminus's own metrics, served on the manager's metrics endpoint.
// Labels are bounded: phases, kinds, outcomes and reasons are small enums; Prometheus
// addresses and endpoints, which checklists choose, are bounded in number and dropped
// when idle (labels.go); no revision, checklist name or value is a label.
package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/breaker"
)

// labelKind is the label of a check's, endpoint's or receiver's kind.
const labelKind = "kind"

var (
	// CheckEvaluations counts check and trigger evaluations by kind and outcome.
	CheckEvaluations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tminus_check_evaluations_total",
		Help: "Evaluations of checks and rollback triggers, by kind (Metric, HTTP, Job, Approval, Trigger) and outcome.",
	}, []string{labelKind, "outcome"})
	// Rollbacks counts rollbacks by reason; dry runs are counted apart.
	Rollbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tminus_rollbacks_total",
		Help: "Rollbacks decided, by reason (TriggerFired, VerificationFailed, RolloutStalled) and dry_run.",
	}, []string{"reason", "dry_run"})
	// QueryDuration observes Prometheus queries actually sent, by address (QueryTook).
	QueryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tminus_prometheus_query_duration_seconds",
		Help:    "Latency of PromQL queries sent, by Prometheus address (at most 64 at once; the rest as \"other\").",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"address"})
	// QueryErrors counts queries that ended in an error, by address (QueryFailed).
	QueryErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tminus_prometheus_query_errors_total",
		Help: "PromQL queries that failed (unreachable, timeout, HTTP error, bad or ambiguous answer), by address (at most 64 at once; the rest as \"other\").",
	}, []string{"address"})
)

// Delivery metrics (DORA): what ended, how long a release waited for its gates, and how
// long a bad release stayed out.
var (
	// Releases counts checklists that ended, by result (Succeeded, Failed, RolledBack)
	// and whether the release went out (released: past T-0).
	Releases = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tminus_releases_total",
		Help: "Releases that ended, by result (Succeeded, Failed, RolledBack) and released (true once past T-0).",
	}, []string{"result", "released"})
	// LeadTime observes the time from a checklist's creation to its T-0.
	LeadTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tminus_release_lead_time_seconds",
		Help:    "Time from a DeploymentChecklist's creation to its T-0 (every gate before the deploy passed).",
		Buckets: []float64{60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600},
	})
	// TimeToRestore observes the time from a trigger's first breach to the old version
	// being back.
	TimeToRestore = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tminus_release_time_to_restore_seconds",
		Help:    "Time from the first breaching measurement of the trigger (or the failed phase) to the pre-deploy template being restored.",
		Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	})
)

// Notifications counts messages to receivers by receiver kind (slack, teams, webhook)
// and result: sent; retry (an attempt failed, another follows); failed (given up).
var Notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "tminus_notifications_total",
	Help: "Notification attempts by receiver kind (slack, teams, webhook) and result: sent, retry (failed, will be tried again), failed (given up).",
}, []string{labelKind, "result"})

// CircuitState is each measured endpoint's circuit that is not closed: 1 half-open (a
// probe is out), 2 open (measurements fail at once until the next probe). A closed
// circuit has no series.
var CircuitState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "tminus_measurement_circuit_state",
	Help: "Circuit breaker state per measured endpoint (Prometheus address, or HTTP check URL) whose circuit is not closed: 1 half-open, 2 open.",
}, []string{labelKind, "endpoint"})

// CircuitChanged records a Prometheus address's circuit state.
func CircuitChanged(endpoint string, s breaker.State) {
	circuitChanged(promCircuits, "prometheus", endpoint, s)
}

// HTTPCircuitChanged records an HTTP check URL's circuit state.
func HTTPCircuitChanged(endpoint string, s breaker.State) {
	circuitChanged(httpCircuits, "http", endpoint, s)
}

// ShardHeld is 1 for each shard this replica holds, 0 for one it held before.
var ShardHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "tminus_shard_held",
	Help: "1 for each shard this replica holds (it reconciles that shard's checklists), 0 once it let it go.",
}, []string{"shard"})

// ShardChanged records whether this replica holds shard i.
func ShardChanged(i int, held bool) {
	v := 0.0
	if held {
		v = 1
	}
	ShardHeld.WithLabelValues(strconv.Itoa(i)).Set(v)
}

// HistoryDeleted counts ended checklists deleted past their target's history limit.
var HistoryDeleted = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "tminus_checklists_deleted_total",
	Help: "Ended DeploymentChecklists the manager deleted past their target's history limit (--checklist-history-limit, spec.historyLimit).",
})

// Register adds tminus's metrics, and a collector that counts checklists by phase and
// those awaiting approval from reader (the manager's cache), to the manager's registry.
// With shards, owns says which checklists (by their target's namespace and name) this
// replica counts, so the replicas' figures add up to the cluster's.
func Register(reader client.Reader, owns func(namespace, name string) bool) {
	crmetrics.Registry.MustRegister(CheckEvaluations, Rollbacks, QueryDuration, QueryErrors, CircuitState, ShardHeld,
		Releases, LeadTime, TimeToRestore, Notifications, HistoryDeleted, RecordsDeleted, NewStateCollector(reader, owns))
}

// NewStateCollector counts checklists by phase, and those awaiting approval, at scrape
// time: those owns says this replica holds (all when owns is nil).
func NewStateCollector(reader client.Reader, owns func(namespace, name string) bool) prometheus.Collector {
	return &stateCollector{reader: reader, owns: owns}
}

var (
	checklistsDesc = prometheus.NewDesc("tminus_checklists",
		"DeploymentChecklists by phase.", []string{"phase"}, nil)
	awaitingDesc = prometheus.NewDesc("tminus_checklists_awaiting_approval",
		"DeploymentChecklists whose open phase waits for a sign-off.", nil, nil)
)

// stateCollector reads checklists from the cache at scrape time, so the gauges are
// always what the cluster holds, never a count that drifted.
type stateCollector struct {
	reader client.Reader
	owns   func(namespace, name string) bool
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- checklistsDesc
	ch <- awaitingDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list deployv1alpha1.DeploymentChecklistList
	if err := c.reader.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(checklistsDesc, err)
		return
	}
	counts := map[deployv1alpha1.ChecklistPhase]int{}
	for _, p := range []deployv1alpha1.ChecklistPhase{
		deployv1alpha1.PhasePending, deployv1alpha1.PhaseRunning, deployv1alpha1.PhaseHolding, deployv1alpha1.PhaseDeploying,
		deployv1alpha1.PhaseVerifying, deployv1alpha1.PhaseSucceeded, deployv1alpha1.PhaseFailed, deployv1alpha1.PhaseRolledBack,
	} {
		counts[p] = 0
	}
	awaiting := 0
	for i := range list.Items {
		if c.owns != nil && !c.owns(list.Items[i].Namespace, list.Items[i].Spec.ShardTarget()) {
			continue
		}
		st := &list.Items[i].Status
		phase := st.Phase
		if phase == "" {
			phase = deployv1alpha1.PhasePending
		}
		counts[phase]++
		if meta.IsStatusConditionTrue(st.Conditions, "AwaitingApproval") {
			awaiting++
		}
	}
	for p, n := range counts {
		ch <- prometheus.MustNewConstMetric(checklistsDesc, prometheus.GaugeValue, float64(n), string(p))
	}
	ch <- prometheus.MustNewConstMetric(awaitingDesc, prometheus.GaugeValue, float64(awaiting))
}

// RecordsDeleted counts release records deleted past --record-retention.
var RecordsDeleted = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "tminus_records_deleted_total",
	Help: "Release records (ConfigMaps) the manager created and deleted past their retention (--record-retention).",
})
