/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package main

import (
	"cmp"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"

	// Root certificates for HTTPS (Slack, Teams, webhooks, Prometheus) when the image
	// has none: it is a static binary on an empty base.
	_ "golang.org/x/crypto/x509roots/fallback"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/breaker"
	"github.com/tminus-dev/tminus/internal/certs"
	"github.com/tminus-dev/tminus/internal/controller"
	"github.com/tminus-dev/tminus/internal/history"
	"github.com/tminus-dev/tminus/internal/httpcheck"
	"github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/netguard"
	"github.com/tminus-dev/tminus/internal/operator"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/internal/version"
	// +kubebuilder:scaffold:imports
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))

	utilruntime.Must(deployv1alpha1.AddToScheme(scheme))
	// +kubebuilder:scaffold:scheme
}

// nolint:gocyclo
func main() {
	var metricsAddr string
	var metricsCertPath, metricsCertName, metricsCertKey string
	var webhookCertPath, webhookCertName, webhookCertKey string
	var webhookPort int
	var enableLeaderElection bool
	var probeAddr string
	var secureMetrics bool
	var enableHTTP2 bool
	var tlsOpts []func(*tls.Config)
	var maxConcurrentReconciles, maxQueriesPerPrometheus, kubeAPIBurst, circuitFailures, shards int
	var circuitCooldown time.Duration
	var kubeAPIQPS float64
	var statusRefresh, leaseDuration, renewDeadline, retryPeriod time.Duration
	var leaderElectionNamespace string
	var allowedHosts, trustedApprovalWriters string
	var webhooks, requireVerified bool
	var namespace, webhookHost, webhookSecret, webhookService, webhookConfiguration, webhookDNSNames string
	var webhookCertValidity, webhookCertCheck time.Duration
	var historyLimit int
	var historyQPS float64
	var recordRetention time.Duration
	var stripEnded bool
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	flag.StringVar(&leaderElectionNamespace, "leader-elect-namespace", "",
		"Namespace of the leader election Lease; the manager's own namespace when it runs in a cluster.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"How long a standby waits after the leader's last renewal before it takes over.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew before it stops leading (and exits).")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second,
		"How often candidates try to acquire or renew the lease.")
	flag.IntVar(&shards, "shards", 0,
		"Split the checklists into this many shards (by the namespace/name of the workload they gate) and run "+
			"every replica: each holds the Leases (tminus-shard-<i>, in the leader election namespace) of about "+
			"shards/replicas of them, "+
			"with the --leader-elect-* timings, and reconciles only theirs; a dead replica's shards are taken over when "+
			"their Leases expire. 0: one active replica (--leader-elect makes the others standbys). "+
			"Webhooks are served by every replica either way.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	flag.StringVar(&webhookCertPath, "webhook-cert-path", "", "The directory that contains the webhook certificate.")
	flag.StringVar(&webhookCertName, "webhook-cert-name", "tls.crt", "The name of the webhook certificate file.")
	flag.StringVar(&webhookCertKey, "webhook-cert-key", "tls.key", "The name of the webhook key file.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port the webhook server listens on. "+
		"Defaults to 9443. Set -1 to disable the webhook server.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"The directory that contains the metrics server certificate.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "The name of the metrics server certificate file.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "The name of the metrics server key file.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics and webhook servers")
	opts := zap.Options{
		// JSON logs; --zap-devel switches to the console format.
		Development: false,
	}
	opts.BindFlags(flag.CommandLine)
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", 100,
		"Queries per second to the API server. A checklist writes its status when an outcome changes, "+
			"and when only values moved at most once per --status-refresh.")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", 200, "Burst of queries to the API server.")
	flag.DurationVar(&statusRefresh, "status-refresh", controller.DefaultStatusRefresh,
		"How often at most a checklist's status is rewritten when values moved but no outcome changed. "+
			"Outcomes, phases and conditions are written at once; an unchanged checklist is never rewritten.")
	flag.IntVar(&historyLimit, "checklist-history-limit", history.DefaultLimit,
		"Ended checklists (Succeeded, Failed, RolledBack) kept per target workload; the manager deletes older ended "+
			"ones (never a live one), paced by --checklist-history-qps. A checklist's or template's spec.historyLimit "+
			"overrides it for its target. 0 keeps them all. A rolled-back template stays refused after its checklist "+
			"is deleted.")
	flag.Float64Var(&historyQPS, "checklist-history-qps", history.DefaultQPS,
		"Deletes per second at most of the history limit (--checklist-history-limit), inside --kube-api-qps: trimming "+
			"a large past at start leaves the rest of the client's budget to live releases. 0: paced by --kube-api-qps alone.")
	flag.DurationVar(&recordRetention, "record-retention", 0,
		"Delete release records (ConfigMaps) older than this, e.g. 8760h; 0 (the default) keeps them all: change "+
			"management decides. Only records the manager created while it was set are deleted (their UIDs are kept in "+
			"ConfigMaps tminus-record-ledger-<day> of --namespace), paced by --kube-api-qps.")
	flag.BoolVar(&stripEnded, "strip-ended-checklists", true,
		"Cache ended checklists that owe nothing more (restored, recorded, every sign-off and request answered) "+
			"without what no decision reads (phases, checks, approvals, the resolved template): memory stops growing with "+
			"their statuses, and they cost no reconcile (one still holding a workload in its name is read whole from the "+
			"API server). false caches every checklist whole.")
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", 4,
		"How many checklists are reconciled at once.")
	flag.IntVar(&circuitFailures, "circuit-failures", breaker.DefaultThreshold,
		"Consecutive failures (no answer, refused, server error) of a Prometheus address or HTTP check URL that open "+
			"its circuit: measurements against it then fail at once until a probe after --circuit-cooldown.")
	flag.DurationVar(&circuitCooldown, "circuit-cooldown", breaker.DefaultCooldown,
		"How long an open circuit refuses measurements before one probe decides whether it closes.")
	flag.IntVar(&maxQueriesPerPrometheus, "max-queries-per-prometheus", prometheus.DefaultMaxInFlight,
		"How many queries may be in flight to one Prometheus address.")
	flag.StringVar(&allowedHosts, "allowed-hosts", "",
		"Comma-separated host names (exact or *.suffix), IPs and CIDRs that Prometheus queries, HTTP checks and "+
			"notifications "+
			"may connect to. Empty: any host but link-local, cloud metadata, loopback, unspecified and NAT64 "+
			"addresses, which are only reachable when a CIDR listed here covers them (docs/prometheus.md).")
	flag.BoolVar(&webhooks, "webhooks", true,
		"Serve the admission webhooks: the workload gates (hold a gated Deployment's, StatefulSet's or DaemonSet's new "+
			"pod template in the write that makes it, refuse a template a checklist rolled back) and the checklist webhook "+
			"(verifies approvals, refuses a second live checklist for a workload). Without them tminus holds changes "+
			"only after the fact, and approvals are reported unverified.")
	flag.BoolVar(&requireVerified, "require-verified-approvals", true,
		"The default of spec.requireVerifiedApprovals: only sign-offs the approval webhook verified count. "+
			"Takes effect with --webhooks (without them nothing can be verified).")
	flag.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"),
		"The manager's namespace, where the webhook certificate's Secret lives (default: $POD_NAMESPACE).")
	flag.StringVar(&webhookHost, "webhook-host", "", "Address the webhook server binds to (all by default).")
	flag.StringVar(&webhookSecret, "webhook-secret", "tminus-webhook-cert",
		"Secret in --namespace where the manager keeps the webhook CA and serving certificate "+
			"(when --webhook-cert-path is empty).")
	flag.StringVar(&webhookService, "webhook-service", "tminus-webhook-service",
		"Service in --namespace that fronts the webhook server; the serving certificate is made for its DNS names.")
	flag.StringVar(&webhookDNSNames, "webhook-dns-names", "",
		"Comma-separated extra DNS names for the serving certificate.")
	flag.StringVar(&webhookConfiguration, "webhook-configuration", "tminus-admission",
		"MutatingWebhookConfiguration holding tminus's webhooks; the manager writes its CA bundle into it.")
	flag.DurationVar(&webhookCertValidity, "webhook-cert-validity", certs.DefaultValidity,
		"Validity of the serving certificate the manager makes (its CA: ten times that); each is renewed with a third left.")
	flag.DurationVar(&webhookCertCheck, "webhook-cert-check", certs.DefaultCheckEvery,
		"How often the manager checks the webhook certificate and the configuration's CA bundle.")
	flag.StringVar(&trustedApprovalWriters, "trusted-approval-writers", "",
		"Comma-separated usernames (GitOps controllers' service accounts) whose approvals naming "+
			"someone else are accepted as committed.")
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String("tminus"))
		return
	}
	guard, err := netguard.New(splitList(allowedHosts))
	if err != nil {
		fmt.Fprintf(os.Stderr, "--allowed-hosts: %v\n", err)
		os.Exit(2)
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	// The Go runtime's soft memory limit at 90 % of the container's (its cgroup's)
	// memory limit: near the limit the collector works harder, instead of the container
	// being killed while what the manager holds still fits (docs/operations.md). An
	// explicit GOMEMLIMIT, or AUTOMEMLIMIT=off, is left as it is; with no limit there is
	// no soft limit.
	if _, err := memlimit.Set(memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(logr.ToSlogHandler(setupLog)))); err != nil {
		setupLog.Info("no soft memory limit set from the container's", "reason", err.Error())
	}

	// if the enable-http2 flag is false (the default), http/2 should be disabled
	// due to its vulnerabilities. More specifically, disabling http/2 will
	// prevent from being vulnerable to the HTTP/2 Stream Cancellation and
	// Rapid Reset CVEs. For more information see:
	// - https://github.com/advisories/GHSA-qppj-fm5r-hxr3
	// - https://github.com/advisories/GHSA-4374-p667-p6c8
	disableHTTP2 := func(c *tls.Config) {
		setupLog.Info("Disabling HTTP/2")
		c.NextProtos = []string{"http/1.1"}
	}

	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, disableHTTP2)
	}

	// Initial webhook TLS options
	webhookTLSOpts := tlsOpts
	webhookServerOptions := webhook.Options{
		TLSOpts: webhookTLSOpts,
		Port:    webhookPort,
		Host:    webhookHost,
	}

	var certManager *certs.Manager
	if len(webhookCertPath) > 0 {
		setupLog.Info("Initializing webhook certificate watcher using provided certificates",
			"webhook-cert-path", webhookCertPath, "webhook-cert-name", webhookCertName, "webhook-cert-key", webhookCertKey)

		webhookServerOptions.CertDir = webhookCertPath
		webhookServerOptions.CertName = webhookCertName
		webhookServerOptions.KeyName = webhookCertKey
	} else if webhooks {
		if namespace == "" {
			fmt.Fprintln(os.Stderr, "--namespace (or $POD_NAMESPACE) is needed for the webhook certificate's Secret; "+
				"or pass --webhook-cert-path, or --webhooks=false")
			os.Exit(2)
		}
		svc := webhookService + "." + namespace + ".svc"
		certManager = &certs.Manager{
			Secret:     types.NamespacedName{Namespace: namespace, Name: webhookSecret},
			DNSNames:   append([]string{svc, svc + ".cluster.local"}, splitList(webhookDNSNames)...),
			Webhooks:   []string{webhookConfiguration},
			Validity:   webhookCertValidity,
			CheckEvery: webhookCertCheck,
			Log:        ctrl.Log.WithName("webhook-certificate"),
		}
		webhookServerOptions.TLSOpts = append(webhookServerOptions.TLSOpts, func(c *tls.Config) {
			c.GetCertificate = certManager.GetCertificate
		})
	}

	webhookServer := webhook.NewServer(webhookServerOptions)

	// Metrics endpoint is enabled in 'config/default/kustomization.yaml'. The Metrics options configure the server.
	// More info:
	// - https://pkg.go.dev/sigs.k8s.io/controller-runtime@v0.25.0/pkg/metrics/server
	// - https://book.kubebuilder.io/reference/metrics.html
	metricsServerOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}

	if secureMetrics {
		// FilterProvider is used to protect the metrics endpoint with authn/authz.
		// These configurations ensure that only authorized users and service accounts
		// can access the metrics endpoint. The RBAC are configured in 'config/rbac/kustomization.yaml'. More info:
		// https://pkg.go.dev/sigs.k8s.io/controller-runtime@v0.25.0/pkg/metrics/filters#WithAuthenticationAndAuthorization
		metricsServerOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	// If the certificate is not specified, controller-runtime will automatically
	// generate self-signed certificates for the metrics server. While convenient for development and testing,
	// this setup is not recommended for production.
	//
	// TODO(user): If you enable certManager, uncomment the following lines:
	// - [METRICS-WITH-CERTS] at config/default/kustomization.yaml to generate and use certificates
	// managed by cert-manager for the metrics server.
	// - [PROMETHEUS-WITH-CERTS] at config/prometheus/kustomization.yaml for TLS certification.
	if len(metricsCertPath) > 0 {
		setupLog.Info("Initializing metrics certificate watcher using provided certificates",
			"metrics-cert-path", metricsCertPath, "metrics-cert-name", metricsCertName, "metrics-cert-key", metricsCertKey)

		metricsServerOptions.CertDir = metricsCertPath
		metricsServerOptions.CertName = metricsCertName
		metricsServerOptions.KeyName = metricsCertKey
	}

	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(kubeAPIQPS), kubeAPIBurst
	var shardSet *shard.Set
	if shards > 0 {
		if enableLeaderElection {
			setupLog.Info("--shards given: every replica runs and takes shards by Lease; --leader-elect is not used")
			enableLeaderElection = false
		}
		shardSet, err = newShardSet(restConfig, shards, cmp.Or(leaderElectionNamespace, namespace),
			leaseDuration, renewDeadline, retryPeriod)
		if err != nil {
			fmt.Fprintf(os.Stderr, "--shards: %v\n", err)
			os.Exit(2)
		}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsServerOptions,
		WebhookServer:           webhookServer,
		HealthProbeBindAddress:  probeAddr,
		Cache:                   cacheOptions(stripEnded, webhooks),
		LeaderElection:          enableLeaderElection,
		LeaderElectionID:        "5ac64af1.tminus.dev",
		LeaderElectionNamespace: leaderElectionNamespace,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		// The process exits as soon as the manager stops, and every write the
		// reconciler makes is done by then, so handing the lease over at once on a
		// clean shutdown (a rolling update) is safe: the standby need not wait out the
		// lease. A killed leader's lease still has to expire.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		setupLog.Error(err, "Failed to start manager")
		os.Exit(1)
	}

	tminus := operator.Options{
		Metrics: &prometheus.Provider{
			Secrets:     mgr.GetAPIReader(),
			Guard:       guard,
			MaxInFlight: maxQueriesPerPrometheus,
			Breakers:    &breaker.Set{Threshold: circuitFailures, Cooldown: circuitCooldown, OnChange: metrics.CircuitChanged},
		},
		HTTP: &httpcheck.Prober{Client: &http.Client{Transport: &http.Transport{
			DialContext: guard.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		}}, Breakers: &breaker.Set{Threshold: circuitFailures, Cooldown: circuitCooldown,
			OnChange: metrics.HTTPCircuitChanged}},
		MaxConcurrentReconciles:  maxConcurrentReconciles,
		StatusRefresh:            statusRefresh,
		HistoryLimit:             historyLimit,
		HistoryQPS:               historyQPS,
		RecordRetention:          recordRetention,
		Namespace:                namespace,
		Webhooks:                 webhooks,
		TrustedApprovalWriters:   splitList(trustedApprovalWriters),
		RequireVerifiedApprovals: new(requireVerified && webhooks),
		Shards:                   shardSet,
		NotifyHTTP: &http.Client{Transport: &http.Transport{
			DialContext: guard.DialContext, TLSHandshakeTimeout: 10 * time.Second,
		}},
	}
	if webhooks {
		if certManager != nil {
			certManager.Client, certManager.Reader = mgr.GetClient(), mgr.GetAPIReader()
			if err := mgr.Add(certManager); err != nil {
				setupLog.Error(err, "Failed to add the webhook certificate manager")
				os.Exit(1)
			}
			tminus.AdmissionGate = certManager.Installed
		} else {
			probe := &certs.Probe{Reader: mgr.GetAPIReader(), Webhooks: []string{webhookConfiguration},
				CheckEvery: webhookCertCheck, Log: ctrl.Log.WithName("webhook-probe")}
			if err := mgr.Add(probe); err != nil {
				setupLog.Error(err, "Failed to add the webhook probe")
				os.Exit(1)
			}
			tminus.AdmissionGate = probe.Installed
		}
	}
	if _, err := operator.Setup(mgr, tminus); err != nil {
		setupLog.Error(err, "Failed to set up tminus")
		os.Exit(1)
	}
	// +kubebuilder:scaffold:builder
	var owns func(namespace, name string) bool
	if shardSet != nil {
		owns = shardSet.Owns
		if err := mgr.Add(shardSet); err != nil {
			setupLog.Error(err, "Failed to add the shards")
			os.Exit(1)
		}
	}
	metrics.Register(mgr.GetCache(), owns)

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("Starting manager", "version", version.Version)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "Failed to run manager")
		os.Exit(1)
	}
}

// newShardSet makes this replica's part of n shards, its Leases in namespace. Lease
// renewals go through a client of their own, so that they never queue behind the
// reconcilers' requests.
func newShardSet(cfg *rest.Config, n int, namespace string, lease, renew, retry time.Duration) (*shard.Set, error) {
	if namespace == "" {
		return nil, errors.New("the Leases need a namespace: --leader-elect-namespace, --namespace or $POD_NAMESPACE")
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	leaseCfg := rest.CopyConfig(cfg)
	leaseCfg.QPS, leaseCfg.Burst = float32(max(20, 4*n)), max(40, 8*n)
	cs, err := kubernetes.NewForConfig(rest.AddUserAgent(leaseCfg, "shard-leases"))
	if err != nil {
		return nil, err
	}
	return &shard.Set{
		Leases: cs.CoordinationV1(), Namespace: namespace, Name: "tminus-shard", Shards: n,
		Identity:      host + "_" + string(uuid.NewUUID()),
		LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
		OnChange: metrics.ShardChanged, Log: ctrl.Log.WithName("shards"),
		OnLost: func(err error) {
			setupLog.Error(err, "Exiting: a shard's work must not go on once another replica may take it")
			os.Exit(1)
		},
	}, nil
}

// splitList reads a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// cacheOptions are the manager's cache settings, stripping ended checklists that owe
// nothing unless told not to; webhooks: the approval webhook is served (operator.Setup
// then trusts its verifications, and so does the cache's rule for what is owed).
func cacheOptions(stripEnded, webhooks bool) cache.Options {
	if stripEnded {
		return controller.StrippingCacheOptions(webhooks)
	}
	return controller.WholeCacheOptions()
}
