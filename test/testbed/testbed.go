// Package testbed starts the real components tminus is tested against: kube-apiserver
// and etcd (through envtest) with tminus's CRDs, and on request kube-controller-manager,
// kube-scheduler and kwok with a simulated Node, so Deployments really roll out and
// Jobs really complete. Prometheus is started separately (StartPrometheus) because
// tests stop and restart it on their own schedule.
//
// The binaries are built from Go modules by hack/build-testbins.sh; nothing is
// downloaded from a release site.
package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// NodeName is the simulated Node that kwok keeps Ready.
const NodeName = "kwok-node-0"

// FailLabel on a Job's pod template makes kwok finish its pods with exit code 1, so
// tests can make a Job fail. Without it, Job pods complete with exit code 0.
const FailLabel = "testbed.tminus.dev/fail"

// Options choose what the test bed starts.
type Options struct {
	// CRDDirectoryPaths are installed into the API server; by default the repository's
	// config/crd/bases.
	CRDDirectoryPaths []string
	// Cluster also starts kube-controller-manager, kube-scheduler and kwok with one
	// simulated Node, so that Deployments roll out and Jobs run.
	Cluster bool
	// Scheme for Client; by default client-go's scheme plus deploy.tminus.dev/v1alpha1.
	Scheme *runtime.Scheme
	// Log receives one line per component started; may be nil.
	Log func(format string, args ...any)
	// WebhookPaths are directories of webhook configurations to install, pointed at a
	// local webhook server (see Bed.Webhook).
	WebhookPaths []string
	// Audit makes the API server log every write (create, update, patch, delete) at
	// the Metadata level, with its user agent and times, to Bed.AuditLog.
	Audit bool
	// EtcdQuotaBytes, when set, is etcd's --quota-backend-bytes (2 GiB by default): a
	// benchmark that writes a hundred thousand objects needs more room.
	EtcdQuotaBytes int64
}

// Bed is a running test bed.
type Bed struct {
	// Config is an admin rest.Config for the API server.
	Config *rest.Config
	// Client is a direct (uncached) client using Config.
	Client client.Client
	// Kubeconfig is the path of an admin kubeconfig, for kubectl and the components.
	Kubeconfig string
	// Dir holds the kubeconfig, the components' logs and scratch files.
	Dir string
	// AuditLog is the API server's audit log (Options.Audit), one JSON event per line.
	AuditLog string

	env   *envtest.Environment
	procs []*process
	log   func(format string, args ...any)
}

// DefaultScheme knows the built-in kinds and tminus's own.
func DefaultScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(deployv1alpha1.AddToScheme(s))
	return s
}

// New starts a test bed for t and stops it when t ends. When t failed, the directory
// with the components' logs is kept and its path logged.
func New(t testing.TB, opts Options) *Bed {
	t.Helper()
	if opts.Log == nil {
		opts.Log = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting test bed: %v", err)
	}
	t.Cleanup(func() {
		keep := t.Failed() || os.Getenv("TMINUS_TESTBED_KEEP") != ""
		if keep {
			t.Logf("test bed logs kept in %s", b.Dir)
		}
		b.stop(keep)
	})
	return b
}

// Start starts a test bed. The caller must call Stop, also when a test fails.
func Start(ctx context.Context, opts Options) (b *Bed, err error) {
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if opts.Scheme == nil {
		opts.Scheme = DefaultScheme()
	}
	if len(opts.CRDDirectoryPaths) == 0 {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		opts.CRDDirectoryPaths = []string{filepath.Join(root, "config", "crd", "bases")}
	}
	assets, err := assetsDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tminus-testbed-")
	if err != nil {
		return nil, err
	}
	b = &Bed{Dir: dir, log: opts.Log}
	defer func() {
		if err != nil {
			b.stop(true)
			err = fmt.Errorf("%w (logs in %s)", err, dir)
		}
	}()

	start := time.Now()
	b.env = &envtest.Environment{
		CRDDirectoryPaths:     opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                opts.Scheme,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: opts.WebhookPaths},
	}
	if opts.EtcdQuotaBytes > 0 {
		b.env.ControlPlane.Etcd = &envtest.Etcd{}
		b.env.ControlPlane.Etcd.Configure().Set("quota-backend-bytes", strconv.FormatInt(opts.EtcdQuotaBytes, 10))
	}
	if opts.Audit {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return b, err
		}
		b.AuditLog = filepath.Join(dir, "audit.log")
		b.env.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", b.AuditLog).
			Set("audit-log-mode", "blocking")
	}
	if _, err := b.env.Start(); err != nil {
		// What started before the failure (a webhook configuration the API server
		// refused comes after etcd and kube-apiserver) is not left running.
		_ = b.env.Stop()
		b.env = nil
		return b, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	admin, err := b.env.AddUser(envtest.User{Name: "testbed-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return b, fmt.Errorf("adding admin user: %w", err)
	}
	b.Config = admin.Config()
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return b, err
	}
	b.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(b.Kubeconfig, kubeconfig, 0o600); err != nil {
		return b, err
	}
	if b.Client, err = client.New(b.Config, client.Options{Scheme: opts.Scheme}); err != nil {
		return b, err
	}
	b.log("kube-apiserver and etcd up in %s", time.Since(start).Round(time.Millisecond))

	if opts.Cluster {
		if err := b.startCluster(ctx); err != nil {
			return b, err
		}
	}
	return b, nil
}

// Webhook is where the API server expects the webhook server: host, port and the
// directory holding its certificate.
func (b *Bed) Webhook() (host string, port int, certDir string) {
	o := b.env.WebhookInstallOptions
	return o.LocalServingHost, o.LocalServingPort, o.LocalServingCertDir
}

// AddUser returns a client config authenticated as a user of the given name and groups
// (RBAC decides what it may do; it has no rights until bound to a role).
func (b *Bed) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := b.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return u.Config(), nil
}

// UserKubeconfig writes a kubeconfig authenticating as a user of the given name and
// groups into the test bed's directory and returns its path: for kubectl and plugins
// run as that user.
func (b *Bed) UserKubeconfig(name string, groups ...string) (string, error) {
	u, err := b.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", err
	}
	raw, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.Dir, "kubeconfig-"+name)
	return path, os.WriteFile(path, raw, 0o600)
}

// Stop stops every process the test bed started and removes its directory.
func (b *Bed) Stop() { b.stop(false) }

// StopKeepingLogs stops every process the test bed started and keeps its directory,
// with the components' logs, for a failed run.
func (b *Bed) StopKeepingLogs() { b.stop(true) }

func (b *Bed) stop(keepDir bool) {
	for _, p := range slices.Backward(b.procs) {
		p.stop()
	}
	b.procs = nil
	if b.env != nil {
		if err := b.env.Stop(); err != nil {
			b.log("stopping kube-apiserver and etcd: %v", err)
		}
		b.env = nil
	}
	if !keepDir {
		_ = os.RemoveAll(b.Dir)
	}
}

func (b *Bed) startCluster(ctx context.Context) error {
	start := time.Now()
	kcm, err := controllerManagerBinary()
	if err != nil {
		return err
	}
	certDir := b.env.ControlPlane.APIServer.CertDir
	p, err := startProcess(b.Dir, "kube-controller-manager", kcm,
		"--kubeconfig="+b.Kubeconfig,
		"--authentication-kubeconfig="+b.Kubeconfig,
		"--authorization-kubeconfig="+b.Kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--controllers=deployment,replicaset,statefulset,daemonset,garbagecollector,namespace,job,"+
			"serviceaccount,serviceaccount-token,nodelifecycle,ttl-after-finished",
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--use-service-account-credentials=false",
		// kwok's heartbeats come every 20-45s; never let the node flap NotReady.
		"--node-monitor-grace-period=5m",
		"--concurrent-deployment-syncs=10",
		"--v=1",
	)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)

	sched, err := schedulerBinary()
	if err != nil {
		return err
	}
	schedPort, err := FreePort()
	if err != nil {
		return err
	}
	p, err = startProcess(b.Dir, "kube-scheduler", sched,
		"--kubeconfig="+b.Kubeconfig,
		"--authentication-kubeconfig="+b.Kubeconfig,
		"--authorization-kubeconfig="+b.Kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedPort),
		"--leader-elect=false",
		"--v=1",
	)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)

	if err := b.startKwok(); err != nil {
		return err
	}
	if err := b.createNode(ctx); err != nil {
		return err
	}
	if err := b.waitNodeSchedulable(ctx); err != nil {
		return err
	}
	b.log("kube-controller-manager, kube-scheduler, kwok and node %s ready in %s",
		NodeName, time.Since(start).Round(time.Millisecond))
	return nil
}

// failingPodStage finishes pods carrying FailLabel with exit code 1. Its positive
// weight makes kwok prefer it over the stock pod-complete stage, which has none.
const failingPodStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: testbed-pod-fail
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  weight: 100
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.labels["` + FailLabel + `"]'
      operator: 'In'
      values: ['true']
  next:
    statusTemplate: |
      {{ $now := Now }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 1
            finishedAt: {{ $now | Quote }}
            reason: Error
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
`

func (b *Bed) startKwok() error {
	kwok, err := kwokBinary()
	if err != nil {
		return err
	}
	stages, err := kwokStagesDir()
	if err != nil {
		return err
	}
	failStage := filepath.Join(b.Dir, "stage-pod-fail.yaml")
	if err := os.WriteFile(failStage, []byte(failingPodStage), 0o600); err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + b.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.244.0.1",
		"--node-lease-duration-seconds=40",
		"--server-address=" + hostPort(port),
		"-c=" + failStage,
	}
	for _, f := range []string{
		"node/fast/node-initialize.yaml",
		"node/heartbeat/node-heartbeat.yaml",
		"pod/fast/pod-ready.yaml",
		"pod/fast/pod-complete.yaml",
		"pod/fast/pod-delete.yaml",
	} {
		args = append(args, "-c="+filepath.Join(stages, f))
	}
	p, err := startProcess(b.Dir, "kwok", kwok, args...)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)
	return nil
}

func (b *Bed) createNode(ctx context.Context) error {
	if err := b.createNodeNamed(ctx, NodeName, nil); err != nil {
		return err
	}
	// The DaemonSet nodes: tainted, so only pods tolerating DaemonSetNodeTaint (a
	// DaemonSet's) run there, and every other pod stays on NodeName.
	for i := 1; i < DaemonSetNodes; i++ {
		taints := []corev1.Taint{{Key: DaemonSetNodeTaint, Effect: corev1.TaintEffectNoSchedule}}
		if err := b.createNodeNamed(ctx, fmt.Sprintf("kwok-node-%d", i), taints); err != nil {
			return err
		}
	}
	return nil
}

// DaemonSetNodes is how many nodes a DaemonSet tolerating DaemonSetNodeTaint runs on:
// NodeName and the nodes tainted with it.
const DaemonSetNodes = 3

// DaemonSetNodeTaint keeps every pod but a DaemonSet's (tolerating it) off the nodes
// beside NodeName.
const DaemonSetNodeTaint = "testbed.tminus.dev/daemonsets-only"

func (b *Bed) createNodeNamed(ctx context.Context, name string, taints []corev1.Taint) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Spec:   corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if err := b.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("creating node %s: %w", name, err)
	}
	// Status is not taken on create; kwok's node stage fills in conditions, but the
	// scheduler also needs allocatable resources. A merge patch, not an update: kwok and
	// kube-controller-manager write the node as soon as it exists, and an update carrying
	// the create's resourceVersion then conflicts (seen on a loaded machine).
	status := corev1.NodeStatus{Capacity: capacity, Allocatable: capacity}
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	if err := b.Client.Status().Patch(ctx, node, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("setting node %s's capacity: %w", name, err)
	}
	return nil
}

// waitNodeSchedulable waits until kwok reports the node Ready and kube-controller-manager
// has lifted the not-ready taint the API server put on it.
func (b *Bed) waitNodeSchedulable(ctx context.Context) error {
	var last string
	for {
		for _, p := range b.procs {
			if ended, err := p.exited(); ended {
				return fmt.Errorf("%s exited (%v):\n%s", p.name, err, p.logTail())
			}
		}
		var node corev1.Node
		if err := b.Client.Get(ctx, client.ObjectKey{Name: NodeName}, &node); err == nil {
			ready := false
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			if ready && len(node.Spec.Taints) == 0 {
				return nil
			}
			last = fmt.Sprintf("ready=%v taints=%v", ready, node.Spec.Taints)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not schedulable (%s): %w", NodeName, last, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kubectl runs the kubectl built beside kube-apiserver against the test bed and returns
// its combined output.
func (b *Bed) Kubectl(ctx context.Context, args ...string) (string, error) {
	bin, err := KubectlBinary()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig=" + b.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := errors.AsType[*exec.ExitError](err); ok {
			return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return string(out), err
	}
	return string(out), nil
}

// auditPolicy logs writes, nothing else: who changed what, and when.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete"]
- level: None
`
