package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/testbed"
)

// errorRateQuery is the sample's error rate over 5s windows, for the checklist's target.
const errorRateQuery = `(sum(rate(http_requests_total{namespace="{{namespace}}",app="{{target}}",code=~"5.."}[5s])) or vector(0))` +
	` / sum(rate(http_requests_total{namespace="{{namespace}}",app="{{target}}"}[5s]))`

// realPrometheus starts the instrumented service (0.1 % errors, 100ms) and a real
// Prometheus scraping it as the checkout app of ns, and a manager measuring through it.
// Both stop when the test ends.
func realPrometheus(t *testing.T, ns string) (*app.App, *testbed.Prometheus) {
	t.Helper()
	g := NewWithT(t)
	svc, err := app.Start(200)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(svc.Close)
	svc.Set(0.001, 100*time.Millisecond)
	prom, err := testbed.StartPrometheus(context.Background(), testbed.PrometheusOptions{ScrapeConfigs: fmt.Sprintf(`- job_name: checkout
  static_configs:
  - targets: [%q]
    labels: {namespace: %s, app: checkout}
`, svc.Addr, ns)})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(prom.Close)
	startManagerIn(t, ns, &prometheus.Provider{Secrets: bed.Client}, nil)
	return svc, prom
}

// TestARealPrometheusGatesTheReleaseHoldsThroughAnOutageAndRollsBackOnABreach runs the
// whole loop on real parts: the service's error rate, scraped by Prometheus, gates the
// release; Prometheus going away marks the checklist Degraded and holds it (never a
// pass, never a rollback); the error rate breaching the trigger rolls the Deployment back.
func TestARealPrometheusGatesTheReleaseHoldsThroughAnOutageAndRollsBackOnABreach(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")

	svc, prom := realPrometheus(t, ns)
	c := newChecklist(ns, withLongVerification, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Prometheus.Address = prom.URL
		c.Spec.Metrics[0].Query = errorRateQuery
		c.Spec.ConsecutiveErrorLimit = 2
	})
	releaseV2(t, ns, d, c)
	verifying := getChecklist(g, c)
	cr := verifying.Status.Phases[0].Checks[1]
	g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomePass))
	g.Expect(cr.Query).To(ContainSubstring(`namespace="` + ns + `",app="checkout"`))

	// Prometheus goes away: errors, Degraded, and nothing else happens.
	prom.Stop()
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, checklist.CondDegraded)).To(BeTrue())
		g.Expect(cur.Status.Triggers[0].Outcome).To(Equal(deployv1alpha1.OutcomeError))
		g.Expect(cur.Status.Triggers[0].Message).To(ContainSubstring("connection refused"))
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
	gen := getDeployment(t, d).Generation
	g.Consistently(func(g Gomega) {
		g.Expect(getChecklist(g, c).Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
		g.Expect(getDeployment(t, d).Generation).To(Equal(gen))
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed(), "an outage neither passes nor rolls back")

	// It comes back; then the service breaks and the trigger rolls it back.
	g.Expect(prom.Restart(ctx)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, checklist.CondDegraded)).To(BeFalse())
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
	svc.Set(0.2, 100*time.Millisecond)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(rolled.Status.Rollback.Message).To(ContainSubstring("errors-5pct fired"))
	waitRunning(t, d, "checkout:v1")
	g.Expect(rolled.Status.Rollback.FiredAt.Time).To(BeTemporally(">", metav1.Now().Add(-time.Minute)))
}

// TestAPrometheusOutageAcrossAPhaseDeadlineDoesNotRollBack: a healthy release, and the
// real Prometheus stopped across the deadline of its first T-plus phase (the opening of
// the next one). When it comes back its rate windows are empty for a while (no data).
// An outage is not a failure: the phase holds, says Degraded, and passes once
// Prometheus answers; the release ends Succeeded, never rolled back.
func TestAPrometheusOutageAcrossAPhaseDeadlineDoesNotRollBack(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")

	_, prom := realPrometheus(t, ns)
	c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Prometheus.Address = prom.URL
		c.Spec.Metrics[0].Query = errorRateQuery
		c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+3s", "3s"
		c.Spec.Phases = append(c.Spec.Phases, deployv1alpha1.PhaseSpec{Name: "T+12s", At: "12s", Checks: c.Spec.Phases[1].Checks})
	})
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")
	approve(t, c, "deployment-lead", "alice for v2")
	// Released: Deploying lasts as long as kwok takes to make the pod ready, which a
	// 100 ms poll can miss; Verifying before T+12s is as good (the outage still spans
	// the first T-plus phase's deadline).
	g.Eventually(func(g Gomega) deployv1alpha1.ChecklistPhase {
		return getChecklist(g, c).Status.Phase
	}, 2*time.Minute, 100*time.Millisecond).Should(BeElementOf(deployv1alpha1.PhaseDeploying, deployv1alpha1.PhaseVerifying))
	prom.Stop()
	verifying := waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	deadline := verifying.Status.Targets[0].AvailableAt.Add(12 * time.Second)

	// Down past T+3s's deadline: it holds and says why.
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(time.Now()).To(BeTemporally(">", deadline.Add(2*time.Second)))
		g.Expect(cur.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
		cond := meta.FindStatusCondition(cur.Status.Conditions, checklist.CondDegraded)
		g.Expect(cond.Reason).To(Equal(checklist.ReasonMeasurementsDown))
		g.Expect(cond.Message).To(ContainSubstring("T+3s reached its deadline"))
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
	g.Expect(getChecklist(g, c).Status.Rollback).To(BeNil())

	g.Expect(prom.Restart(ctx)).To(Succeed())
	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.Status.Rollback).To(BeNil())
	g.Expect(done.Status.Phases[1].DeadlineExtendedBy).NotTo(BeEmpty(), "the deadline moved by the outage")
	waitRunning(t, d, "checkout:v2")
}
