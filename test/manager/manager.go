// Package manager runs the tminus controller in-process against a test bed, as the
// demo and the scale benchmark need: the manager's own metrics and probes are off.
package manager

import (
	"context"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/tminus-dev/tminus/internal/controller"
	"github.com/tminus-dev/tminus/internal/operator"
)

// Manager is a running controller.
type Manager struct {
	// Done closes when the manager has stopped.
	Done <-chan struct{}
	// Cache reads from the manager's informers: what a harness can poll without
	// loading the API server.
	Cache client.Reader
}

// Webhooks is where the API server expects the admission webhooks (testbed.Bed.Webhook,
// with the test bed started with config/webhook installed).
type Webhooks struct {
	Host    string
	Port    int
	CertDir string
	// TrustedApprovalWriters may write approvals naming someone else.
	TrustedApprovalWriters []string
}

// Start runs the controller with the given metric source until ctx ends and returns
// once its cache has synced. onStop, if set, hears why it stopped.
func Start(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, metrics controller.MetricSource,
	onStop func(error)) (*Manager, error) {
	return StartWithWebhooks(ctx, cfg, scheme, metrics, nil, onStop)
}

// StartWithWebhooks is Start serving the admission webhooks too, when wh is set.
func StartWithWebhooks(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, metrics controller.MetricSource,
	wh *Webhooks, onStop func(error)) (*Manager, error) {
	return StartWithOptions(ctx, cfg, scheme, metrics, Options{Webhooks: wh}, onStop)
}

// Options are what a harness may set beyond Start's defaults.
type Options struct {
	// Webhooks, when set, serves the admission webhooks there.
	Webhooks *Webhooks
	// HistoryLimit is --checklist-history-limit (0: every ended checklist kept, as
	// Start does; the manager binary's default is history.DefaultLimit).
	HistoryLimit int
	// HistoryQPS is --checklist-history-qps: the deletes of the history limit per
	// second (0: paced by the client's rate limiter alone).
	HistoryQPS float64
}

// StartWithOptions is Start with Options.
func StartWithOptions(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, metrics controller.MetricSource,
	o Options, onStop func(error)) (*Manager, error) {
	wh := o.Webhooks
	opts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOptions(wh != nil),
		// A harness may run several managers in one process, one after the other.
		Controller: config.Controller{SkipNameValidation: new(true)},
	}
	tminus := operator.Options{Metrics: metrics, MaxConcurrentReconciles: 4, HistoryLimit: o.HistoryLimit,
		HistoryQPS: o.HistoryQPS}
	if wh != nil {
		opts.WebhookServer = webhook.NewServer(webhook.Options{Host: wh.Host, Port: wh.Port, CertDir: wh.CertDir})
		tminus.Webhooks, tminus.TrustedApprovalWriters = true, wh.TrustedApprovalWriters
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, err
	}
	if _, err := operator.Setup(mgr, tminus); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil && onStop != nil {
			onStop(err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the manager's cache did not sync")
	}
	return &Manager{Done: done, Cache: mgr.GetClient()}, nil
}

// cacheOptions are the manager binary's cache settings (ended checklists stripped, as
// --strip-ended-checklists defaults); with TMINUS_STRIP_ENDED_CHECKLISTS=0 in the
// environment, --strip-ended-checklists=false's (make bench-scale compares both).
// webhooks: the approval webhook is served (the reconciler trusts its verifications).
func cacheOptions(webhooks bool) cache.Options {
	if os.Getenv("TMINUS_STRIP_ENDED_CHECKLISTS") == "0" {
		return controller.WholeCacheOptions()
	}
	return controller.StrippingCacheOptions(webhooks)
}
