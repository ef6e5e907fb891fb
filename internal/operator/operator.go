// Package operator wires tminus into a controller-runtime manager: the checklist and
// gate controllers and, when served, the admission webhooks. The manager binary, the
// demo, the scale harness and the tests all start tminus through it, so they run the
// same thing.
package operator

import (
	"errors"
	"net/http"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tminus-dev/tminus/internal/breaker"
	"github.com/tminus-dev/tminus/internal/controller"
	"github.com/tminus-dev/tminus/internal/history"
	"github.com/tminus-dev/tminus/internal/httpcheck"
	"github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/notify"
	"github.com/tminus-dev/tminus/internal/retention"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/internal/webhook"
)

// Options say how tminus runs.
type Options struct {
	// Metrics measures PromQL queries (internal/prometheus.Provider).
	Metrics controller.MetricSource
	// HTTP runs HTTP checks; a plain httpcheck.Prober when nil.
	HTTP controller.HTTPProber
	// Clock; the real one when nil.
	Clock clock.PassiveClock
	// MaxConcurrentReconciles bounds how many checklists are reconciled at once (4).
	MaxConcurrentReconciles int
	// StatusRefresh: see DeploymentChecklistReconciler.StatusRefresh.
	StatusRefresh time.Duration
	// Webhooks serves the admission webhooks (the Deployment gate, the checklist
	// webhook and the NotificationPolicy webhook) on the manager's webhook server.
	Webhooks bool
	// TrustedApprovalWriters may write approvals naming someone else (GitOps).
	TrustedApprovalWriters []string
	// RequireVerifiedApprovals is the default of spec.requireVerifiedApprovals; nil:
	// required when the webhooks are served.
	RequireVerifiedApprovals *bool
	// AdmissionGate says whether the Deployment webhook is installed and reachable (the
	// certificate manager's or probe's Installed); with Webhooks and no AdmissionGate
	// it is taken as installed.
	AdmissionGate func() bool
	// Shards, when set, is this replica's part of the shards (internal/shard): it
	// reconciles only their checklists and Deployments. Nil: everything (one active
	// replica, by leader election).
	Shards *shard.Set
	// NotifyHTTP posts notifications; it should dial through the manager's
	// netguard.Guard. A client with DefaultSendTimeout when nil.
	NotifyHTTP *http.Client
	// NotifyBackoff and NotifyMaxAttempts: see notify.Dispatcher (defaults when zero).
	NotifyBackoff     time.Duration
	NotifyMaxAttempts int32
	// HistoryLimit is --checklist-history-limit: ended checklists kept per target
	// workload (internal/history). 0 keeps them all unless a checklist names a limit.
	HistoryLimit int
	// HistoryQPS is --checklist-history-qps: the history limit's deletes per second, a
	// bucket of their own inside the client's (0: only the client's).
	HistoryQPS float64
	// RecordRetention is --record-retention: release records the manager created are
	// deleted once older than it (internal/retention); 0 keeps them all.
	RecordRetention time.Duration
	// Namespace is the manager's own, where it keeps the ledger of the records it
	// created (needed with RecordRetention).
	Namespace string
}

// Setup adds tminus to mgr and returns its checklist reconciler.
func Setup(mgr ctrl.Manager, o Options) (*controller.DeploymentChecklistReconciler, error) {
	if o.HTTP == nil {
		o.HTTP = &httpcheck.Prober{Breakers: &breaker.Set{OnChange: metrics.HTTPCircuitChanged}}
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = 4
	}
	gateUp := o.AdmissionGate
	if o.Webhooks && gateUp == nil {
		gateUp = func() bool { return true }
	}
	r := &controller.DeploymentChecklistReconciler{
		Client:                   mgr.GetClient(),
		APIReader:                mgr.GetAPIReader(),
		Scheme:                   mgr.GetScheme(),
		Recorder:                 mgr.GetEventRecorder("tminus"),
		Clock:                    o.Clock,
		Metrics:                  o.Metrics,
		HTTP:                     o.HTTP,
		MaxConcurrentReconciles:  o.MaxConcurrentReconciles,
		VerifiedApprovals:        o.Webhooks,
		RequireVerifiedApprovals: o.Webhooks,
		StatusRefresh:            o.StatusRefresh,
		AdmissionGate:            gateUp,
		Shards:                   o.Shards,
	}
	dispatcher := &notify.Dispatcher{
		Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Recorder: r.Recorder, Clock: o.Clock,
		Sender:  &notify.Sender{HTTP: o.NotifyHTTP, Secrets: mgr.GetAPIReader()},
		Backoff: o.NotifyBackoff, MaxAttempts: o.NotifyMaxAttempts,
	}
	if o.Shards != nil {
		dispatcher.Begin = o.Shards.Begin
	}
	if err := mgr.Add(dispatcher); err != nil {
		return nil, err
	}
	r.Notifier = dispatcher
	if o.RecordRetention > 0 {
		if o.Namespace == "" {
			return nil, errors.New("--record-retention needs the manager's namespace (--namespace or $POD_NAMESPACE) for its ledger")
		}
		r.Ledger = &retention.Ledger{Client: mgr.GetClient(), Namespace: o.Namespace}
		if err := mgr.Add(&retention.Reaper{Reader: mgr.GetAPIReader(), Writer: mgr.GetClient(), Namespace: o.Namespace,
			Retention: o.RecordRetention, Clock: o.Clock}); err != nil {
			return nil, err
		}
	}
	if o.RequireVerifiedApprovals != nil {
		r.RequireVerifiedApprovals = *o.RequireVerifiedApprovals
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	trim := &history.Reconciler{Reader: mgr.GetClient(), Deleter: mgr.GetClient(), Limit: o.HistoryLimit, Shards: o.Shards}
	if o.HistoryQPS > 0 {
		trim.Pace = rate.NewLimiter(rate.Limit(o.HistoryQPS), max(1, int(o.HistoryQPS)))
	}
	if err := trim.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if o.Webhooks {
		decoder := admission.NewDecoder(mgr.GetScheme())
		srv := mgr.GetWebhookServer()
		srv.Register(webhook.Path, &crwebhook.Admission{Handler: &webhook.ApprovalWebhook{
			Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Decoder: decoder, TrustedWriters: o.TrustedApprovalWriters,
		}})
		srv.Register(webhook.GatePath, &crwebhook.Admission{Handler: &webhook.DeploymentGate{
			Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Authorizer: mgr.GetClient(), Decoder: decoder,
		}})
		srv.Register(webhook.StatefulSetGatePath, &crwebhook.Admission{Handler: &webhook.StatefulSetGate{
			Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Authorizer: mgr.GetClient(),
		}})
		srv.Register(webhook.StatefulSetScalePath, &crwebhook.Admission{Handler: &webhook.StatefulSetScaleGate{
			Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader(),
		}})
		srv.Register(webhook.DaemonSetGatePath, &crwebhook.Admission{Handler: &webhook.DaemonSetGate{
			Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Authorizer: mgr.GetClient(),
		}})
		srv.Register(webhook.PolicyPath, &crwebhook.Admission{Handler: &webhook.NotificationPolicyWebhook{
			Client: mgr.GetClient(), Decoder: decoder,
		}})
	}
	return r, nil
}
