package faults

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// deadPrometheus accepts connections and never answers.
func deadPrometheus(t *testing.T) string {
	t.Helper()
	b, err := testbed.StartBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.URL
}

// hangingEndpoint never answers a request.
func hangingEndpoint(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(s.Close)
	return s.URL + "/health"
}

// brokenTeam is a checklist gating another team's release on two queries to a dead
// Prometheus and a health check that hangs: it holds, and reports why.
func brokenTeam(t *testing.T, prom, hang string) string {
	t.Helper()
	ns := newNamespace(t, "broken")
	g := NewWithT(t)
	g.Expect(bed.Client.Create(context.Background(), testbed.Deployment(ns, "checkout", "checkout:v1", 1))).To(Succeed())
	c := checklistFor(ns, hang)
	c.Spec.Prometheus = &deployv1alpha1.PrometheusSpec{Address: prom}
	c.Spec.Metrics = []deployv1alpha1.MetricSpec{{Name: "errors", Query: "errors{ns=\"" + ns + "\"}"},
		{Name: "p95", Query: "p95{ns=\"" + ns + "\"}"}}
	c.Spec.Phases[0].Checks = append(c.Spec.Phases[0].Checks,
		deployv1alpha1.CheckSpec{Name: "errors", Metric: "errors", Below: new("0.01")},
		deployv1alpha1.CheckSpec{Name: "p95", Metric: "p95", Below: new("2")},
		deployv1alpha1.CheckSpec{Name: "health", HTTP: &deployv1alpha1.HTTPCheck{URL: hang, Timeout: "5s"}})
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	return ns
}

// TestADeadPrometheusAndAHangingEndpointNeverDelayAnotherTeamsRollback: ten teams'
// checklists measure a Prometheus that never answers and a health endpoint that hangs,
// on a manager with two workers. A healthy team's release beside them must still roll
// back within a few intervals of its health check failing: the others' measurements
// run concurrently under the interval, and their circuits open, so no worker waits
// for them.
func TestADeadPrometheusAndAHangingEndpointNeverDelayAnotherTeamsRollback(t *testing.T) {
	g := NewWithT(t)
	bins := buildManager(t, "tminus-isolation")
	prom, hang := deadPrometheus(t), hangingEndpoint(t)
	broken := make([]string, 0, 10)
	for range 10 {
		broken = append(broken, brokenTeam(t, prom, hang))
	}

	var failing atomic.Bool
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(health.Close)
	ns := newNamespace(t, "healthy")
	g.Expect(bed.Client.Create(context.Background(), testbed.Deployment(ns, "checkout", "checkout:v1", 1))).To(Succeed())
	waitRolledOut(t, ns, "checkout:v1")
	c := checklistFor(ns, health.URL+"/health")
	c.Spec.Phases[1].At = "1h" // verifying long enough to break
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())

	runManagerWith(t, bins[0], "--allowed-hosts", "127.0.0.1/32", "--webhooks=false", "--max-concurrent-reconciles=2")
	g.Eventually(func(g Gomega) { g.Expect(getDeployment(g, ns).Spec.Paused).To(BeTrue()) }, time.Minute, 100*time.Millisecond).Should(Succeed())
	_, err := setImageOf(ns, "checkout:v2")
	g.Expect(err).NotTo(HaveOccurred())
	approve(t, ns)
	waitPhase(t, ns, deployv1alpha1.PhaseVerifying)

	// The broken teams report what is wrong, and hold.
	g.Eventually(func(g Gomega) {
		for _, b := range broken {
			cur := getChecklist(g, b)
			g.Expect(cur.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
			g.Expect(getDeployment(g, b).Spec.Paused).To(BeTrue())
		}
	}, time.Minute, 250*time.Millisecond).Should(Succeed())

	failing.Store(true)
	broke := time.Now()
	waitPhase(t, ns, deployv1alpha1.PhaseRolledBack)
	fired := getChecklist(g, ns).Status.Rollback.FiredAt.Time
	// One-second interval: the trigger fires at the first measurement after the break.
	// Ten seconds is margin for a loaded machine, far under what waiting behind the
	// broken teams would take (ten checklists × (2 queries + a hanging check) each
	// interval on two workers).
	g.Expect(fired.Sub(broke)).To(BeNumerically("<", 10*time.Second), "fired %s after the break", fired.Sub(broke))

	// And the broken teams' checklists say why they hold: the circuit.
	for _, b := range broken {
		cur := getChecklist(g, b)
		msgs := make([]string, 0, len(cur.Status.Phases[0].Checks))
		for _, cr := range cur.Status.Phases[0].Checks {
			msgs = append(msgs, cr.Message)
		}
		g.Expect(msgs).To(ContainElement(ContainSubstring("circuit open for " + prom)))
	}
}
