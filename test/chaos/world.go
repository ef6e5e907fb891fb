package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/testbed"
)

// World is what every run shares on one test bed: the two manager replicas and the
// webhook front that reaches them, Prometheus, the instrumented processes the pods
// point Prometheus at, the recorder of what the API server said and the audit log's
// tail. The faults a run draws (Prometheus stopped, a replica killed) hit them all.
type World struct {
	Bed  *testbed.Bed
	Prom *testbed.Prometheus
	// Good and Bad serve the metrics of good and bad versions' pods: none and half of
	// their requests fail.
	Good, Bad *app.App
	// Receiver takes every run's notifications, each run's on a path of its own (the
	// namespace's).
	Receiver *testbed.Receiver

	rec       *recorder
	audit     *auditTail
	promProxy *promProxy
	replicas  []*replica
	front     *frontend
	// users impersonated for sign-offs: alice holds the approve right, mallory does not.
	users map[string]client.Client
	log   func(format string, args ...any)

	// stop ends the recorder's watches.
	stop context.CancelFunc

	promMu   sync.Mutex
	promDown int
	// downOutage is the index in outages of the stop going on while promDown > 0.
	downOutage int
	// outages are the times Prometheus was stopped, or answered through its proxy
	// with a fault: the measurements did not answer.
	outages []outage
	// webhookOutages are the times the webhook front refused.
	webhookOutages []outage
}

// outage is a time Prometheus was down: from when its process was gone to when it
// answered again (zero while it is still down).
type outage struct {
	Stopped, Ready time.Time
}

// StartWorld starts, on bed (started with Cluster and Audit), everything the runs
// share. Close stops it.
func StartWorld(ctx context.Context, bed *testbed.Bed, log func(format string, args ...any)) (_ *World, err error) {
	w := &World{Bed: bed, log: log, users: map[string]client.Client{}}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if bed.AuditLog == "" {
		return nil, errors.New("the test bed needs Audit: true")
	}
	w.audit = newAuditTail(bed.AuditLog)
	if err := client.IgnoreAlreadyExists(bed.Client.Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}})); err != nil {
		return nil, err
	}
	if err := w.addUsers(ctx); err != nil {
		return nil, err
	}
	if w.Good, err = app.Start(100); err != nil {
		return nil, err
	}
	w.Good.Set(0, 50*time.Millisecond)
	if w.Bad, err = app.Start(100); err != nil {
		return nil, err
	}
	w.Bad.Set(0.5, 50*time.Millisecond)
	w.Receiver = testbed.NewReceiver(nil)
	if w.Prom, err = testbed.StartPrometheus(ctx,
		testbed.PrometheusOptions{ScrapeConfigs: testbed.PodScrapeConfig(bed.Kubeconfig, "")}); err != nil {
		return nil, err
	}
	if w.promProxy, err = startPromProxy(w.Prom.URL); err != nil {
		return nil, err
	}
	// The recorder watches until Close, not until ctx (the start's deadline) ends.
	watching, stop := context.WithCancel(context.Background())
	w.stop = stop
	synced, cancel := context.WithTimeout(watching, time.Minute)
	defer cancel()
	if w.rec, err = startRecorder(watching, synced, bed.Config, testbed.DefaultScheme()); err != nil {
		return nil, err
	}
	if err := w.startManagers(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// addUsers grants alice the sign-off (approve on checklists) and mallory only what
// writing an annotation needs, and makes a client authenticated as each (the test
// bed's users).
func (w *World) addUsers(ctx context.Context) error {
	edit := rbacv1.PolicyRule{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
		Verbs: []string{"get", "list", "watch", "update", "patch"}}
	approve := rbacv1.PolicyRule{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"},
		Verbs: []string{"approve"}}
	for user, rules := range map[string][]rbacv1.PolicyRule{approver: {edit, approve}, nonApprover: {edit}} {
		name := "chaos-" + user
		if err := client.IgnoreAlreadyExists(w.Bed.Client.Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules})); err != nil {
			return err
		}
		if err := client.IgnoreAlreadyExists(w.Bed.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		})); err != nil {
			return err
		}
		cfg, err := w.Bed.AddUser(user)
		if err != nil {
			return err
		}
		c, err := client.New(cfg, client.Options{Scheme: w.Bed.Client.Scheme()})
		if err != nil {
			return err
		}
		w.users[user] = c
	}
	return nil
}

// startManagers installs the webhook configuration pointed at the front, builds the
// manager binary as tminus-chaos-a and tminus-chaos-b and runs both, each serving the
// webhooks on its own port behind the front; it returns once the CA bundle is
// installed and every shard is held.
func (w *World) startManagers(ctx context.Context) error {
	frontPort, err := testbed.FreePort()
	if err != nil {
		return err
	}
	if err := w.installWebhooks(ctx, frontPort); err != nil {
		return err
	}
	bins, err := testbed.BuildManager(w.Bed.Dir, userAgentPrefix+"a", userAgentPrefix+"b")
	if err != nil {
		return err
	}
	var backends []string
	for _, bin := range bins {
		port, err := testbed.FreePort()
		if err != nil {
			return err
		}
		r := &replica{name: filepath.Base(bin), bin: bin, args: managerArgs(w.Bed.Kubeconfig, port),
			log: filepath.Join(w.Bed.Dir, filepath.Base(bin)+".log")}
		r.onExit = func(err error) { w.log("restarting %s after it ended on its own: %v", r.name, err) }
		if err := r.start(); err != nil {
			return err
		}
		w.replicas = append(w.replicas, r)
		backends = append(backends, fmt.Sprintf("127.0.0.1:%d", port))
	}
	if w.front, err = startFrontend(frontPort, backends); err != nil {
		return err
	}
	return poll(ctx, 2*time.Minute, func() error {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		if err := w.Bed.Client.Get(ctx, client.ObjectKey{Name: webhookConfiguration}, &cfg); err != nil {
			return err
		}
		for _, wh := range cfg.Webhooks {
			if len(wh.ClientConfig.CABundle) == 0 {
				return fmt.Errorf("webhook %s has no CA bundle yet", wh.Name)
			}
		}
		for i := range shardCount {
			var l coordinationv1.Lease
			if err := w.Bed.Client.Get(ctx, client.ObjectKey{Namespace: managerNamespace,
				Name: fmt.Sprintf("tminus-shard-%d", i)}, &l); err != nil {
				return err
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
				return fmt.Errorf("shard %d is held by no replica", i)
			}
		}
		return nil
	})
}

const webhookConfiguration = "tminus-admission"

// installWebhooks installs config/webhook's configuration as tminus-admission, pointed
// at https://localhost:port, with no CA bundle: the managers write it.
func (w *World) installWebhooks(ctx context.Context, port int) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		return err
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return err
	}
	cfg.Name = webhookConfiguration
	for i := range cfg.Webhooks {
		url := fmt.Sprintf("https://localhost:%d%s", port, *cfg.Webhooks[i].ClientConfig.Service.Path)
		cfg.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	}
	return w.Bed.Client.Create(ctx, &cfg)
}

// prometheusDown stops Prometheus for d (it stays down while any run's outage lasts)
// and starts it again afterwards; done is called once it is back.
func (w *World) prometheusDown(d time.Duration, done func()) {
	w.promMu.Lock()
	if w.promDown == 0 {
		w.Prom.Stop()
		w.downOutage = len(w.outages)
		w.outages = append(w.outages, outage{Stopped: time.Now()})
		w.log("prometheus stopped")
	}
	w.promDown++
	w.promMu.Unlock()
	go func() {
		defer done()
		time.Sleep(d)
		w.promMu.Lock()
		defer w.promMu.Unlock()
		if w.promDown--; w.promDown > 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := w.Prom.Restart(ctx); err != nil {
			w.log("restarting prometheus: %v", err)
		}
		w.outages[w.downOutage].Ready = time.Now()
		w.log("prometheus back after %s", time.Since(w.outages[w.downOutage].Stopped).Round(time.Millisecond))
	}()
}

// prometheusFault has the Prometheus proxy answer with fault for d; done is called
// once it answers normally again.
func (w *World) prometheusFault(fault PromFault, d time.Duration, done func()) {
	w.promMu.Lock()
	w.promProxy.set(fault, true)
	i := len(w.outages)
	w.outages = append(w.outages, outage{Stopped: time.Now()})
	w.promMu.Unlock()
	w.log("prometheus answers %s", fault)
	go func() {
		defer done()
		time.Sleep(d)
		w.promMu.Lock()
		defer w.promMu.Unlock()
		w.promProxy.set(fault, false)
		w.outages[i].Ready = time.Now()
	}()
}

// webhookDown has the webhook front refuse every connection for d; done is called once
// it passes them again.
func (w *World) webhookDown(d time.Duration, done func()) {
	w.promMu.Lock()
	w.front.refuse(true)
	i := len(w.webhookOutages)
	w.webhookOutages = append(w.webhookOutages, outage{Stopped: time.Now()})
	w.promMu.Unlock()
	w.log("webhook refused")
	go func() {
		defer done()
		time.Sleep(d)
		w.promMu.Lock()
		defer w.promMu.Unlock()
		w.front.refuse(false)
		w.webhookOutages[i].Ready = time.Now()
	}()
}

// thief is the holder a stolen shard Lease names: no replica, and it never renews.
const thief = "chaos-thief"

// stealLease takes shard i's Lease from its holder: rewritten to name the thief, renewed
// now, or deleted. It says whom it was taken from.
func (w *World) stealLease(ctx context.Context, i int, del bool) (string, error) {
	var l coordinationv1.Lease
	key := client.ObjectKey{Namespace: managerNamespace, Name: fmt.Sprintf("tminus-shard-%d", i)}
	if err := w.Bed.Client.Get(ctx, key, &l); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	from := "from nobody"
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
		from = "from " + *l.Spec.HolderIdentity
	}
	if del {
		return from, client.IgnoreNotFound(w.Bed.Client.Delete(ctx, &l,
			client.Preconditions{ResourceVersion: &l.ResourceVersion}))
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Spec.RenewTime = new(thief), &now, &now
	return from, w.Bed.Client.Update(ctx, &l)
}

// Outages returns the times Prometheus was down so far.
func (w *World) Outages() []outage {
	w.promMu.Lock()
	defer w.promMu.Unlock()
	return append([]outage(nil), w.outages...)
}

// SelfExits says how many times each replica ended on its own (not by a kill) and was
// started again.
func (w *World) SelfExits() map[string]int {
	out := map[string]int{}
	for _, r := range w.replicas {
		r.mu.Lock()
		out[r.name] = r.exits
		r.mu.Unlock()
	}
	return out
}

// ManagerLogs are the replicas' log files.
func (w *World) ManagerLogs() []string {
	out := make([]string, 0, len(w.replicas))
	for _, r := range w.replicas {
		out = append(out, r.log)
	}
	return out
}

// Close stops what StartWorld started (the test bed is its caller's).
func (w *World) Close() {
	if w.stop != nil {
		w.stop()
	}
	for _, r := range w.replicas {
		r.stop()
	}
	if w.front != nil {
		w.front.close()
	}
	if w.Prom != nil {
		w.Prom.Close()
	}
	if w.Receiver != nil {
		w.Receiver.Close()
	}
	if w.promProxy != nil {
		w.promProxy.close()
	}
	for _, a := range []*app.App{w.Good, w.Bad} {
		if a != nil {
			a.Close()
		}
	}
}

// poll calls f until it returns nil or timeout passes, and returns its last error.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
