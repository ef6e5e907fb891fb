// The tminus demo: a local control plane (kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler, kwok), a Prometheus scraping every second, the tminus manager with its
// admission webhooks, and a demo service whose error rate and latency follow the image
// its Deployment runs. It walks the seed checklist, compressed from minutes to fractions
// of seconds, through a good release that passes every phase, a bad one that tminus
// rolls back, and a GitOps writer re-applying the bad one, which the admission gate
// refuses.
//
//	go run ./hack/demo            # what `make demo` runs
//	go run ./hack/demo --keep     # leave everything running afterwards, to poke at
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/notify"
	"github.com/tminus-dev/tminus/internal/plugin"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/internal/record"
	"github.com/tminus-dev/tminus/internal/report"
	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/manager"
	"github.com/tminus-dev/tminus/test/testbed"
)

const (
	ns   = "shop"
	name = "checkout"
	good = "v2.7.0"
	bad  = "v2.8.0"
	slow = "v2.9.0"
)

// behaviours are how each version serves: error rate and latency. v2.8.0 fails a
// quarter of requests; v2.9.0 doubles latency, still far under "p95 < 2s".
var behaviours = map[string]struct {
	errors  float64
	latency time.Duration
}{
	"v2.6.0": {0.001, 100 * time.Millisecond},
	good:     {0.001, 100 * time.Millisecond},
	bad:      {0.25, 3 * time.Second},
	slow:     {0.001, 200 * time.Millisecond},
}

// versions are the instrumented processes serving each version's pods (kwok's pods run
// nothing); Prometheus discovers the pods and scrapes the process their template names.
var versions = map[string]*app.App{}

func main() {
	keep := flag.Bool("keep", false, "keep the environment running after the demo, until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, keep bool) error {
	start := time.Now()
	say("starting kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok (built from Go modules)")
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	bed, err := testbed.Start(ctx, testbed.Options{Cluster: true, Log: func(f string, a ...any) { say(f, a...) },
		WebhookPaths: []string{filepath.Join(root, "config", "webhook")}})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping everything the demo started")
		bed.Stop()
	}()
	c := bed.Client

	for v, b := range behaviours {
		svc, err := app.Start(200)
		if err != nil {
			return err
		}
		defer svc.Close()
		svc.Set(b.errors, b.latency)
		versions[v] = svc
	}
	prom, err := testbed.StartPrometheus(ctx,
		testbed.PrometheusOptions{ScrapeConfigs: testbed.PodScrapeConfig(bed.Kubeconfig, ns)})
	if err != nil {
		return err
	}
	defer prom.Close()
	say("Prometheus at %s discovers the pods of %s through the API server and labels their series pod and "+
		"pod_template_hash; one instrumented process per version serves its pods' metrics", prom.URL, ns)

	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone, err := startManager(mgrCtx, bed)
	if err != nil {
		stopMgr()
		return err
	}
	defer func() {
		stopMgr()
		<-mgrDone
	}()
	say("tminus manager running with its admission webhooks (logs in %s)", filepath.Join(bed.Dir, "tminus-manager.log"))

	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	kubeconfigs, err := approvers(ctx, bed)
	if err != nil {
		return err
	}
	rcv, err := notifications(ctx, c)
	if err != nil {
		return err
	}
	defer rcv.Close()
	deploy := testbed.Deployment(ns, name, "checkout:v2.6.0", 3)
	deploy.Spec.Template.Annotations = map[string]string{testbed.ScrapeAddressAnnotation: versions["v2.6.0"].Addr}
	if err := c.Create(ctx, deploy); err != nil {
		return err
	}
	if err := waitRolledOut(ctx, c, "checkout:v2.6.0"); err != nil {
		return err
	}
	say("Deployment shop/checkout runs checkout:v2.6.0 on 3 pods (kwok); error rate ~0.1 %%, p95 ~100ms")
	if err := labelGated(ctx, c, name); err != nil {
		return err
	}
	say("labelled it %s=true, as it would be in Git: from now on a new pod template is held in the write that makes it",
		deployv1alpha1.GatedLabel)

	tmpl, err := seedTemplate(versions["v2.6.0"].Addr, prom.URL)
	if err != nil {
		return err
	}
	if err := c.Create(ctx, tmpl); err != nil {
		return err
	}
	say("applied ClusterChecklistTemplate %s: the seed checklist, written once (minutes compressed to half-seconds)",
		tmpl.Name)

	var summary []string
	for _, rel := range []struct {
		version string
		expect  deployv1alpha1.ChecklistPhase
	}{{good, deployv1alpha1.PhaseSucceeded}, {bad, deployv1alpha1.PhaseRolledBack}} {
		got, err := release(ctx, bed, rel.version, kubeconfigs)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%-8s %-10s %s", rel.version, got.Status.Phase, report.Why(got, time.Now()))
		summary = append(summary, line)
		if got.Status.Phase != rel.expect {
			return fmt.Errorf("release %s ended %s, expected %s", rel.version, got.Status.Phase, rel.expect)
		}
		if rel.expect == deployv1alpha1.PhaseRolledBack {
			if err := printRecord(ctx, c, got); err != nil {
				return err
			}
		}
	}

	line, err := selfHeal(ctx, bed)
	if err != nil {
		return err
	}
	summary = append(summary, line)

	fmt.Printf("\n=== a slower release: p95 from 100 ms to 200 ms, well under \"p95 < 2s\" ===\n")
	got, err := release(ctx, bed, slow, kubeconfigs)
	if err != nil {
		return err
	}
	summary = append(summary, fmt.Sprintf("%-8s %-10s %s", slow, got.Status.Phase, report.Why(got, time.Now())))
	if got.Status.Phase != deployv1alpha1.PhaseRolledBack {
		return fmt.Errorf("release %s ended %s, expected %s: only the baseline check should catch it", slow,
			got.Status.Phase, deployv1alpha1.PhaseRolledBack)
	}

	line, err = twoTier(ctx, bed, kubeconfigs, prom.URL)
	if err != nil {
		return err
	}
	summary = append(summary, line)

	if err := printNotifications(ctx, c, rcv); err != nil {
		return err
	}

	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKeyFromObject(deploy), &d); err != nil {
		return err
	}
	fmt.Printf("\n=== summary (%s) ===\n", time.Since(start).Round(time.Second))
	for _, l := range summary {
		fmt.Println(l)
	}
	fmt.Printf("Deployment shop/checkout now runs %s.\n", d.Spec.Template.Spec.Containers[0].Image)

	if keep {
		fmt.Printf("\nThe environment stays up until Ctrl-C:\n  export KUBECONFIG=%s\n  kubectl get dcl -n %s\n"+
			"  go run ./cmd/kubectl-checklist status checkout-v2-8-0 -n %s\n"+
			"  go run ./cmd/kubectl-checklist dashboard -n %s --allowed-hosts 127.0.0.0/8  (Prometheus is on loopback)\n"+
			"  Prometheus: %s\n",
			bed.Kubeconfig, ns, ns, ns, prom.URL)
		<-ctx.Done()
	} else {
		fmt.Println("\nRun `make demo DEMO_ARGS=--keep` to keep the environment up and poke at it with kubectl.")
	}
	return nil
}

func startManager(ctx context.Context, bed *testbed.Bed) (<-chan struct{}, error) {
	logFile, err := os.Create(filepath.Join(bed.Dir, "tminus-manager.log"))
	if err != nil {
		return nil, err
	}
	logf.SetLogger(zap.New(zap.WriteTo(logFile), zap.JSONEncoder()))
	host, port, certDir := bed.Webhook()
	m, err := manager.StartWithWebhooks(ctx, bed.Config, bed.Client.Scheme(), &prometheus.Provider{Secrets: bed.Client},
		&manager.Webhooks{Host: host, Port: port, CertDir: certDir}, func(err error) { say("manager stopped: %v", err) })
	if err != nil {
		return nil, err
	}
	return m.Done, nil
}

// release walks one release through its checklist: hold, push the image, sign off,
// release at T-0, verify, and succeed or roll back.
func release(ctx context.Context, bed *testbed.Bed,
	version string, kubeconfigs map[string]string) (*deployv1alpha1.DeploymentChecklist, error) {
	c := bed.Client
	fmt.Printf("\n=== release %s ===\n", version)
	dcl := releaseOf(version)
	// Printed as written, before the API server adds its defaults.
	raw, err := yaml.Marshal(dcl.Spec)
	if err != nil {
		return nil, err
	}
	if err := c.Create(ctx, dcl); err != nil {
		return nil, err
	}
	say("applied DeploymentChecklist %s, made from the template: its spec is\n%s", dcl.Name,
		"    "+strings.ReplaceAll(strings.TrimSpace(strings.Replace(string(raw), "rollback: {}\n", "", 1)), "\n", "\n    "))
	if err := waitFor(ctx, c, dcl, func(d *deployv1alpha1.DeploymentChecklist) bool {
		return d.Status.CurrentPhase == "T-60m"
	}); err != nil {
		return nil, err
	}
	var deploy appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &deploy); err != nil {
		return nil, err
	}
	say("held: Deployment paused=%t; the pipeline pushes checkout:%s, and nothing rolls", deploy.Spec.Paused, version)
	if err := setImage(ctx, c, "checkout:"+version); err != nil {
		return nil, err
	}
	go watch(ctx, c, dcl)

	if err := signOff(ctx, dcl.Name, kubeconfigs, lead, reviewer, security, operator); err != nil {
		return nil, err
	}

	var done *deployv1alpha1.DeploymentChecklist
	err = waitFor(ctx, c, dcl, func(d *deployv1alpha1.DeploymentChecklist) bool {
		done = d
		return d.Status.Phase == deployv1alpha1.PhaseSucceeded ||
			(d.Status.Phase == deployv1alpha1.PhaseRolledBack && d.Status.Rollback != nil &&
				d.Status.Rollback.CompletedAt != nil) ||
			d.Status.Phase == deployv1alpha1.PhaseFailed
	})
	if err != nil {
		return nil, err
	}
	fmt.Println()
	if err := report.Timeline(os.Stdout, done, time.Now()); err != nil {
		return nil, err
	}
	return done, nil
}

// signer is one person's sign-off: a role, and who gives it.
type signer struct{ role, who string }

// The demo's four approvers, one role each.
var (
	lead     = signer{"deployment-lead", "alice"}
	reviewer = signer{"technical-review", "bob"}
	security = signer{"security-review", "carol"}
	operator = signer{"operations", "dave"}
)

// signOff has each signer approve their role on checklist name with the kubectl plugin,
// as themselves (the webhook verifies it), a second apart.
func signOff(ctx context.Context, name string, kubeconfigs map[string]string, signers ...signer) error {
	for _, s := range signers {
		time.Sleep(time.Second)
		cmd := plugin.NewCommand(os.Stdout, os.Stderr)
		cmd.SetArgs([]string{"--kubeconfig", kubeconfigs[s.who], "-n", ns, "approve", name, "--role", s.role})
		fmt.Printf("%s  $ kubectl checklist approve %s --role %s  (as %s; the webhook verifies it)\n         ",
			time.Now().Format("15:04:05"), name, s.role, s.who)
		if err := cmd.ExecuteContext(ctx); err != nil {
			return err
		}
	}
	return nil
}

// seedTemplate is config/samples' ClusterChecklistTemplate (the seed checklist, written
// once), compressed for the demo: every offset and duration divided by 120 (T+60m is
// 30s), metric windows of 10s, evaluated every second, its HTTP checks pointed at the
// demo service and its queries at the demo's Prometheus.
func seedTemplate(svcAddr, promURL string) (*deployv1alpha1.ClusterChecklistTemplate, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", "deploy_v1alpha1_clusterchecklisttemplate.yaml"))
	if err != nil {
		return nil, err
	}
	var tmpl deployv1alpha1.ClusterChecklistTemplate
	if err := yaml.UnmarshalStrict(raw, &tmpl); err != nil {
		return nil, err
	}
	compressTemplate(&tmpl, svcAddr, promURL)
	return &tmpl, nil
}

// compressTemplate points a template's queries at the demo's Prometheus and its HTTP
// checks at svcAddr, and divides every offset and duration by 120 (T+60m is 30s), with
// metric windows of 10s evaluated every second.
func compressTemplate(tmpl *deployv1alpha1.ClusterChecklistTemplate, svcAddr, promURL string) {
	for i := range tmpl.Spec.Parameters {
		if p := &tmpl.Spec.Parameters[i]; p.Name == "prometheus" {
			p.Default = &promURL
		}
	}
	b := &tmpl.Spec.Template
	b.Interval = "1s"
	b.Prometheus.Timeout = "1s"
	for i := range b.Metrics {
		b.Metrics[i].Query = strings.ReplaceAll(b.Metrics[i].Query, "[5m]", "[10s]")
	}
	for i := range b.Phases {
		p := &b.Phases[i]
		p.At = compress(p.At)
		if p.Timeout != "" {
			p.Timeout = compress(p.Timeout)
		}
		for j := range p.Checks {
			if h := p.Checks[j].HTTP; h != nil {
				h.URL = localURL(h.URL, svcAddr)
			}
			if p.Checks[j].After != "" {
				p.Checks[j].After = compress(p.Checks[j].After)
			}
		}
	}
	for i := range b.RollbackTriggers {
		t := &b.RollbackTriggers[i]
		if t.For != "" {
			t.For = compress(t.For)
		}
		if t.After != "" {
			t.After = compress(t.After)
		}
		if t.HTTP != nil {
			t.HTTP.URL = localURL(t.HTTP.URL, svcAddr)
		}
	}
}

// releaseOf is the ten-line release of version, made from the template.
func releaseOf(version string) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		TypeMeta:   metav1.TypeMeta{APIVersion: deployv1alpha1.GroupVersion.String(), Kind: "DeploymentChecklist"},
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-" + strings.ReplaceAll(version, ".", "-"), Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			TemplateRef: &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"},
			Parameters:  map[string]string{"smokeTestsTag": strings.TrimPrefix(version, "v")},
			Target:      &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindDeployment, Name: name},
			Revision:    version,
		},
	}
}

func compress(d string) string {
	v, err := time.ParseDuration(d)
	if err != nil || v == 0 {
		return d
	}
	return (v / 120).String()
}

// localURL keeps the path of a check's URL and sends it to the demo service.
func localURL(u, addr string) string {
	path := "/"
	if i := strings.Index(strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://"), "/"); i >= 0 {
		rest := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
		path = rest[i:]
	}
	return "http://" + addr + path
}

func setImage(ctx context.Context, c client.Client, image string) error {
	return setImageOf(ctx, c, image, versions[strings.TrimPrefix(image, name+":")].Addr)
}

func waitRolledOut(ctx context.Context, c client.Client, image string) error {
	return poll(ctx, 2*time.Minute, func() (bool, error) {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return false, err
		}
		return testbed.RolledOut(&d, image) == nil, nil
	})
}

func waitFor(ctx context.Context, c client.Client, dcl *deployv1alpha1.DeploymentChecklist,
	done func(*deployv1alpha1.DeploymentChecklist) bool) error {
	return poll(ctx, 3*time.Minute, func() (bool, error) {
		var cur deployv1alpha1.DeploymentChecklist
		if err := c.Get(ctx, client.ObjectKeyFromObject(dcl), &cur); err != nil {
			return false, err
		}
		return done(&cur), nil
	})
}

func poll(ctx context.Context, limit time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watch prints a line whenever the checklist's phase, open phase or next action
// changes: the live timeline.
func watch(ctx context.Context, c client.Client, dcl *deployv1alpha1.DeploymentChecklist) {
	last := ""
	for ctx.Err() == nil {
		var cur deployv1alpha1.DeploymentChecklist
		if err := c.Get(ctx, client.ObjectKeyFromObject(dcl), &cur); err != nil {
			return
		}
		st := cur.Status
		line := fmt.Sprintf("[%s] %-10s %-6s %s", cur.Name, st.Phase, st.CurrentPhase, trim(st.NextAction, 110))
		if line != last {
			say("%s", line)
			last = line
		}
		switch st.Phase {
		case deployv1alpha1.PhaseSucceeded, deployv1alpha1.PhaseFailed:
			return
		case deployv1alpha1.PhaseRolledBack:
			if st.Rollback != nil && st.Rollback.CompletedAt != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(150 * time.Millisecond):
		}
	}
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

// approvers gives alice, bob, carol and dave the right to sign off one role each (the
// RBAC verb approve on deploymentchecklists/<role>) and a kubeconfig each: the approval
// webhook verifies that whoever writes a sign-off may give that role's and names
// themselves.
func approvers(ctx context.Context, bed *testbed.Bed) (map[string]string, error) {
	people := []signer{lead, reviewer, security, operator}
	out := map[string]string{}
	var said []string
	for _, p := range people {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "approve-" + p.role, Namespace: ns},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{deployv1alpha1.GroupVersion.Group}, Resources: []string{"deploymentchecklists"},
					Verbs: []string{"get", "list", "watch", "patch"}},
				{APIGroups: []string{deployv1alpha1.GroupVersion.Group}, Resources: []string{"deploymentchecklists/" + p.role},
					Verbs: []string{"approve"}},
			}}
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: p.who}}}
		for _, o := range []client.Object{role, binding} {
			if err := bed.Client.Create(ctx, o); err != nil {
				return nil, err
			}
		}
		path, err := bed.UserKubeconfig(p.who)
		if err != nil {
			return nil, err
		}
		out[p.who] = path
		said = append(said, p.who+" "+p.role)
	}
	say("sign-off rights, one role each (verb approve on deploymentchecklists/<role>): %s", strings.Join(said, ", "))
	return out, nil
}

func labelGated(ctx context.Context, c client.Client, deployment string) error {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: deployment}}
	return c.Patch(ctx, d, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+deployv1alpha1.GatedLabel+`":"true"}}}`)))
}

// selfHeal is act three: Git still says the bad version, and a GitOps tool with
// self-heal re-applies it every 100 ms (server-side apply, as Argo CD's application
// controller). Every write is refused at admission, naming the checklist that rolled it
// back, and no pod of it starts.
func selfHeal(ctx context.Context, bed *testbed.Bed) (string, error) {
	fmt.Printf("\n=== self-heal re-applies %s ===\n", bad)
	say("Git still says checkout:%s; a GitOps writer re-applies it every 100 ms for 5 s "+
		"(server-side apply, field manager argocd-controller)", bad)
	d := testbed.Deployment(ns, name, "checkout:"+bad, 3)
	d.Labels = map[string]string{deployv1alpha1.GatedLabel: "true"}
	d.Spec.Template.Annotations = map[string]string{testbed.ScrapeAddressAnnotation: versions[bad].Addr}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		return "", err
	}
	u := &unstructured.Unstructured{Object: raw}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	writes, refused, started := 0, 0, 0
	var first string
	began := time.Now().Truncate(time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); <-tick.C {
		writes++
		err := bed.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
			client.FieldOwner("argocd-controller"), client.ForceOwnership)
		if err != nil {
			refused++
			if first == "" {
				first = err.Error()
				say("refused: %s", first)
			}
		}
		if writes%5 != 0 {
			continue
		}
		var pods corev1.PodList
		if err := bed.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return "", err
		}
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image == "checkout:"+bad && !p.CreationTimestamp.Time.Before(began) {
				started++
			}
		}
	}
	say("%d writes, %d refused; pods of checkout:%s started meanwhile: %d", writes, refused, bad, started)
	if refused != writes || started != 0 {
		return "", fmt.Errorf("self-heal got through: %d of %d writes refused, %d pods of %s started",
			refused, writes, started, bad)
	}
	if err := waitRolledOut(ctx, bed.Client, "checkout:"+good); err != nil {
		return "", err
	}
	return fmt.Sprintf("%-8s %-10s %d self-heal writes of the rolled-back template refused at admission; %s still serves",
		bad, "Refused", writes, good), nil
}

// printRecord prints the release record tminus kept of dcl, as `kubectl checklist
// record` does: what a change ticket would take.
func printRecord(ctx context.Context, c client.Client, dcl *deployv1alpha1.DeploymentChecklist) error {
	deadline := time.Now().Add(30 * time.Second)
	for dcl.Status.Record == "" {
		if time.Now().After(deadline) {
			return fmt.Errorf("checklist %s ended %s but kept no record", dcl.Name, dcl.Status.Phase)
		}
		time.Sleep(200 * time.Millisecond)
		if err := c.Get(ctx, client.ObjectKeyFromObject(dcl), dcl); err != nil {
			return err
		}
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: dcl.Namespace, Name: dcl.Status.Record}, &cm); err != nil {
		return err
	}
	r, err := record.Parse(&cm)
	if err != nil {
		return err
	}
	fmt.Printf("\n=== the record tminus kept (ConfigMap %s; kubectl checklist record %s) ===\n%s", cm.Name, dcl.Name,
		record.Markdown(r))
	return nil
}

// signingKey signs the demo's webhook notifications, kept in the Secret notifySecret.
const (
	signingKey   = "demo-hmac-key"
	notifySecret = "release-notifications"
)

// notifications starts a local receiver and a NotificationPolicy of the namespace that
// sends every transition to it twice: as Slack would take it, and as tminus's signed
// JSON (docs/notifications.md).
func notifications(ctx context.Context, c client.Client) (*testbed.Receiver, error) {
	rcv := testbed.NewReceiver([]byte(signingKey))
	err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: notifySecret},
		StringData: map[string]string{"slack-url": rcv.URL + "/slack", "hmac-key": signingKey}})
	if err == nil {
		err = c.Create(ctx, &deployv1alpha1.NotificationPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "release-team"},
			Spec: deployv1alpha1.NotificationPolicySpec{Receivers: []deployv1alpha1.NotificationReceiver{
				{Name: "channel", Slack: &deployv1alpha1.SlackReceiver{
					URLSecretRef: deployv1alpha1.SecretKeyRef{Name: notifySecret, Key: "slack-url"}}},
				{Name: "change-log", Webhook: &deployv1alpha1.WebhookReceiver{URL: rcv.URL + "/hook",
					SigningSecretRef: &deployv1alpha1.SecretKeyRef{Name: notifySecret, Key: "hmac-key"}}},
			}},
		})
	}
	if err != nil {
		rcv.Close()
		return nil, err
	}
	say("NotificationPolicy release-team sends each transition to a local receiver at %s: Slack's payload "+
		"on /slack, tminus's HMAC-signed JSON on /hook", rcv.URL)
	return rcv, nil
}

// printNotifications waits until every message the checklists owe is settled and prints
// what the receiver got on its signed webhook.
func printNotifications(ctx context.Context, c client.Client, rcv *testbed.Receiver) error {
	err := poll(ctx, 30*time.Second, func() (bool, error) {
		var list deployv1alpha1.DeploymentChecklistList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, dcl := range list.Items {
			if notify.Pending(&dcl.Status) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the notifications to be sent: %w", err)
	}
	got := rcv.Accepted("/hook")
	fmt.Printf("\n=== notifications tminus sent (%d signed webhook messages, %d Slack messages; "+
		"docs/notifications.md) ===\n", len(got), len(rcv.Accepted("/slack")))
	for _, r := range got {
		var m notify.Message
		if err := r.Decode(&m); err != nil {
			return err
		}
		signed := "signature ok"
		if !r.SignatureOK {
			signed = "SIGNATURE BAD"
		}
		fmt.Printf("%-16s %-22s %-13s %s\n", m.Checklist.Name, m.Key, signed, trim(m.Summary, 140))
	}
	return nil
}
