package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

func errorsCheck(g Gomega, c *deployv1alpha1.DeploymentChecklist, phase string) deployv1alpha1.CheckStatus {
	cur := getChecklist(g, c)
	for _, p := range cur.Status.Phases {
		if p.Name != phase {
			continue
		}
		for _, cr := range p.Checks {
			if cr.Name == "errors" {
				return cr
			}
		}
	}
	return deployv1alpha1.CheckStatus{}
}

func (f *fakeMetrics) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries
}

func TestAChecklistThatKeepsGivingTheSameAnswerIsNotRewritten(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil, func(r *DeploymentChecklistReconciler) { r.StatusRefresh = 3 * time.Second })
	// No sign-off: it holds at T-10m, measuring the error rate every second.
	c := newChecklist(ns)
	create(t, c)
	g.Eventually(func(g Gomega) {
		g.Expect(errorsCheck(g, c, "T-10m").Outcome).To(Equal(deployv1alpha1.OutcomePass))
		g.Expect(getChecklist(g, c).Status.NextAction).To(Equal("waiting for T-10m: lead Pending: waiting for deployment-lead sign-off (0 of 1)"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	before := getChecklist(g, c)
	queries := metrics.count()
	g.Eventually(metrics.count, 30*time.Second, 100*time.Millisecond).Should(BeNumerically(">=", queries+5),
		"it keeps measuring every second")
	after := getChecklist(g, c)
	g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "five measurements of the same answer wrote nothing")
	g.Expect(errorsCheck(g, c, "T-10m").LastEvaluated).To(Equal(errorsCheck(g, before, "T-10m").LastEvaluated))

	// A new value on the same side of the threshold is written within the refresh period.
	metrics.set(errorQuery, 0.002)
	g.Eventually(func(g Gomega) string { return errorsCheck(g, c, "T-10m").Value }, 30*time.Second, 100*time.Millisecond).
		Should(Equal("0.002"))
	cr := errorsCheck(g, c, "T-10m")
	g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomePass))
	g.Expect(len(cr.History)).To(BeNumerically(">", 2), "the history holds the measurements taken between writes")

	// A changed outcome is written at once (long before a refresh would be due).
	metrics.set(errorQuery, 0.02)
	g.Eventually(func(g Gomega) deployv1alpha1.Outcome { return errorsCheck(g, c, "T-10m").Outcome }, 30*time.Second, 100*time.Millisecond).
		Should(Equal(deployv1alpha1.OutcomeFail))
}

func TestATargetScaledToZeroDuringVerificationHoldsAndSaysWhy(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+5s", "5s" })
	releaseV2(t, ns, d, c)

	g.Eventually(func() error {
		cur := getDeployment(t, d)
		cur.Spec.Replicas = new(int32(0))
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	want := "Deployment checkout is scaled to zero: nothing serves the release, so T+5s cannot pass; scale it up to go on"
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.NextAction).To(Equal(want))
		g.Expect(meta.FindStatusCondition(cur.Status.Conditions, checklist.CondReady).Message).To(Equal(want))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) deployv1alpha1.ChecklistPhase { return getChecklist(g, c).Status.Phase },
		2*time.Second, 200*time.Millisecond).Should(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(getDeployment(t, d).Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v2"), "no rollback")

	g.Eventually(func() error {
		cur := getDeployment(t, d)
		cur.Spec.Replicas = new(int32(3))
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(d), d)).To(Succeed())
}

func TestAFinishedChecklistCostsNoWriteWhenTheManagerStarts(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// A finished checklist, as a restarted manager finds thousands of them.
	c := newChecklist(ns)
	c.Spec.Metrics[0].Query = "finished_" + ns
	create(t, c)
	c.Status = deployv1alpha1.DeploymentChecklistStatus{Phase: deployv1alpha1.PhaseSucceeded}
	c.Status = checklist.Decide(checklist.MustWhole(c), checklist.Observations{}, time.Now()).Status
	g.Expect(bed.Client.Status().Update(context.Background(), c)).To(Succeed())
	before := getChecklist(g, c)

	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	g.Consistently(func(g Gomega) string { return getChecklist(g, c).ResourceVersion }, 3*time.Second, 200*time.Millisecond).
		Should(Equal(before.ResourceVersion), "no finalizer, no status write: it guards nothing and nothing changed")
	metrics.mu.Lock()
	defer metrics.mu.Unlock()
	g.Expect(metrics.byQuery).NotTo(HaveKey("finished_"+ns), "nothing is measured for a finished checklist")
}
