package controller

import (
	"context"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/testbed"
)

// p95Query is the p95 latency of the released pods only, over 5s windows.
const p95Query = `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{` +
	`namespace="{{namespace}}",app="{{target}}",pod_template_hash="{{podTemplateHash}}"}[5s])))`

// version starts the instrumented process that serves one version's pods.
func version(t *testing.T, errorRate float64, latency time.Duration) *app.App {
	t.Helper()
	svc, err := app.Start(200)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(svc.Close)
	svc.Set(errorRate, latency)
	return svc
}

// podsPrometheus starts a real Prometheus that discovers ns's pods through the API
// server and labels their series with pod_template_hash, as docs/prometheus.md shows,
// and a manager measuring through it.
func podsPrometheus(t *testing.T, ns string) *testbed.Prometheus {
	t.Helper()
	prom, err := testbed.StartPrometheus(context.Background(), testbed.PrometheusOptions{
		ScrapeConfigs: testbed.PodScrapeConfig(bed.Kubeconfig, ns)})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(prom.Close)
	startManagerIn(t, ns, &prometheus.Provider{Secrets: bed.Client}, nil)
	return prom
}

// waitScraped waits until Prometheus has rates for ns's pods, as a Prometheus that has
// scraped the service for long has.
func waitScraped(t *testing.T, prom *testbed.Prometheus, ns string) {
	t.Helper()
	NewWithT(t).Eventually(func() (string, error) {
		return prom.Query(context.Background(), `sum(rate(http_requests_total{namespace="`+ns+`"}[5s])) > 0`)
	}, time.Minute, 250*time.Millisecond).ShouldNot(BeEmpty())
}

// versionedDeployment is the checkout Deployment running v1, its pods served by svc.
func versionedDeployment(t *testing.T, ns string, svc *app.App) *appsv1.Deployment {
	t.Helper()
	d := deploymentSpec(ns, "checkout:v1")
	d.Spec.Template.Annotations = map[string]string{testbed.ScrapeAddressAnnotation: svc.Addr}
	NewWithT(t).Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	waitRunning(t, d, "checkout:v1")
	return d
}

// setVersion pushes a new image whose pods svc serves, as a pipeline would.
func setVersion(t *testing.T, d *appsv1.Deployment, image string, svc *app.App) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		cur := getDeployment(t, d)
		cur.Spec.Template.Spec.Containers[0].Image = image
		cur.Spec.Template.Annotations[testbed.ScrapeAddressAnnotation] = svc.Addr
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

// podTemplateHash is the pod-template-hash label of d's ReplicaSet running image.
func podTemplateHash(t *testing.T, d *appsv1.Deployment, image string) string {
	t.Helper()
	var rss appsv1.ReplicaSetList
	NewWithT(t).Expect(bed.Client.List(context.Background(), &rss, client.InNamespace(d.Namespace))).To(Succeed())
	for _, rs := range rss.Items {
		if rs.Spec.Template.Spec.Containers[0].Image == image {
			return rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	t.Fatalf("no ReplicaSet runs %s", image)
	return ""
}

func recordOf(c *deployv1alpha1.DeploymentChecklist, phase, check string) deployv1alpha1.CheckStatus {
	for _, p := range c.Status.Phases {
		for _, cr := range p.Checks {
			if p.Name == phase && cr.Name == check {
				return cr
			}
		}
	}
	return deployv1alpha1.CheckStatus{}
}

// TestAP95RegressionUnderTheAbsoluteLimitIsCaughtByTheBaseline: p95 goes from 100 ms
// to 200 ms with the release, well under "p95 < 2 s". The absolute check passes, the
// check relative to the baseline fails, and the trigger at 1.5 × the baseline rolls
// back. The queries name the released pods by their pod-template-hash, so they see
// the new version alone from the first measurement; the baseline is the same query
// at T-0, asked of the pods that served before.
func TestAP95RegressionUnderTheAbsoluteLimitIsCaughtByTheBaseline(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	v1 := version(t, 0.001, 100*time.Millisecond)
	v2 := version(t, 0.001, 200*time.Millisecond)
	d := versionedDeployment(t, ns, v1)
	prom := podsPrometheus(t, ns)
	waitScraped(t, prom, ns)

	c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Prometheus.Address = prom.URL
		c.Spec.Metrics = []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: errorRateQuery}, {Name: "p95", Query: p95Query}}
		c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+1s", "1s"
		c.Spec.Phases[1].Checks = []deployv1alpha1.CheckSpec{
			{Name: "p95-absolute", Metric: "p95", Below: new("2")},
			{Name: "p95-regression", Metric: "p95", BelowBaseline: new("1.5")},
		}
		// Held for a few seconds, so the checks are judged before it fires.
		c.Spec.RollbackTriggers = []deployv1alpha1.RollbackTrigger{
			{Name: "p95-regression", Metric: "p95", AboveBaseline: new("1.5"), For: "4s"}}
	})
	create(t, c)
	waitPaused(t, d)
	setVersion(t, d, "checkout:v2", v2)
	approve(t, c, "deployment-lead", "alice for v2")
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, d, "checkout:v1")

	oldHash, newHash := podTemplateHash(t, d, "checkout:v1"), podTemplateHash(t, d, "checkout:v2")
	g.Expect(rolled.Status.Targets[0].PreDeployPodTemplateHash).To(Equal(oldHash))
	g.Expect(rolled.Status.Targets[0].ReleasedPodTemplateHash).To(Equal(newHash))

	// The baseline: v1's p95 at T-0, asked of v1's pods.
	g.Expect(rolled.Status.Baselines).To(HaveLen(1))
	base := rolled.Status.Baselines[0]
	g.Expect(base.Metric).To(Equal("p95"))
	g.Expect(base.Result).To(Equal(checklist.BaselineValue))
	g.Expect(base.At.Time).To(Equal(rolled.Status.Targets[0].T0At.Time))
	g.Expect(base.Query).To(ContainSubstring(`pod_template_hash="` + oldHash + `"`))
	g.Expect(strconv.ParseFloat(base.Value, 64)).To(BeNumerically("~", 0.0975, 0.001), "100 ms in the (0.05, 0.1] bucket")

	abs, rel := recordOf(rolled, "T+1s", "p95-absolute"), recordOf(rolled, "T+1s", "p95-regression")
	g.Expect(abs.Outcome).To(Equal(deployv1alpha1.OutcomePass), "200 ms is under 2 s")
	g.Expect(rel.Outcome).To(Equal(deployv1alpha1.OutcomeFail))
	g.Expect(rel.Threshold).To(MatchRegexp(`^< 1\.5 × baseline 0\.097\d* \(0\.146\d*\)$`))
	g.Expect(rel.Query).To(ContainSubstring(`pod_template_hash="` + newHash + `"`))
	// Only the released pods' series, from the first measurement: never a blend with v1.
	g.Expect(rel.History).NotTo(BeEmpty())
	for _, m := range rel.History {
		if m.Outcome == deployv1alpha1.OutcomeNoData {
			continue // before Prometheus discovered the new pods
		}
		g.Expect(strconv.ParseFloat(m.Value, 64)).To(BeNumerically("~", 0.2425, 0.001), "200 ms in the (0.1, 0.25] bucket")
	}
	g.Expect(rolled.Status.Rollback.Message).To(MatchRegexp(`^rollback trigger p95-regression fired: 0\.242\d* > 1\.5 × baseline 0\.097`))
}

// TestAReleaseThatFixesErrorsIsJudgedAfterItsGracePeriod: the old version fails 8 % of
// requests, the release none. The error rate is a rate over 5 s windows of the whole
// service, so for a while after the rollout it still averages in the old version's
// errors. Without `after` the trigger rolls the fix back for the old version's sins;
// with `after` longer than the window (and Prometheus's discovery lag) it does not.
func TestAReleaseThatFixesErrorsIsJudgedAfterItsGracePeriod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, after string
		want        deployv1alpha1.ChecklistPhase
	}{
		{"without after, rolled back for the old version's errors", "", deployv1alpha1.PhaseRolledBack},
		{"with after past the window, it succeeds", "15s", deployv1alpha1.PhaseSucceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			broken := version(t, 0.08, 100*time.Millisecond)
			fixed := version(t, 0, 100*time.Millisecond)
			d := versionedDeployment(t, ns, broken)
			prom := podsPrometheus(t, ns)
			waitScraped(t, prom, ns)
			c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) {
				c.Spec.Prometheus.Address = prom.URL
				c.Spec.Metrics[0].Query = errorRateQuery
				// Before the release the error rate is what it is: the fix is the point.
				c.Spec.Phases[0].Checks = c.Spec.Phases[0].Checks[:1]
				c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+1s", "1s"
				c.Spec.Phases[1].Checks[0].After = "17s"
				c.Spec.RollbackTriggers[0].After = tc.after
			})
			create(t, c)
			waitPaused(t, d)
			setVersion(t, d, "checkout:v2", fixed)
			approve(t, c, "deployment-lead", "alice for v2")
			done := waitPhase(t, c, tc.want)
			if tc.want == deployv1alpha1.PhaseRolledBack {
				g.Expect(done.Status.Rollback.Message).To(ContainSubstring("errors-5pct fired"))
				return
			}
			g.Expect(done.Status.Rollback).To(BeNil())
			g.Expect(done.Status.Targets[0].AvailableAt).NotTo(BeNil())
			g.Expect(done.Status.Triggers[0].LastEvaluated.Time).To(BeTemporally(">=",
				done.Status.Targets[0].AvailableAt.Add(15*time.Second)), "judged only after its grace period")
			g.Expect(time.Since(done.Status.Targets[0].AvailableAt.Time)).To(BeNumerically("<", 2*time.Minute))
		})
	}
}
