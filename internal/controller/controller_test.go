package controller

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	tminusmetrics "github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/record"
)

const errorQuery = "error_rate"

type option func(*deployv1alpha1.DeploymentChecklist)

// newChecklist: T-10m needs a deployment-lead sign-off and an error rate below 1 %;
// T+2s needs the error rate below 1 %; any error rate above 5 % rolls back at once.
// Everything is measured every second.
func newChecklist(ns string, opts ...option) *deployv1alpha1.DeploymentChecklist {
	c := &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Interval:   "1s",
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.invalid:9090", Timeout: "1s"},
				Metrics:    []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: errorQuery}},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
						{Name: "errors", Metric: "error-rate", Below: new("0.01")},
					}},
					{Name: "T+2s", At: "2s", Checks: []deployv1alpha1.CheckSpec{
						{Name: "errors", Metric: "error-rate", Below: new("0.01")},
					}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{
					{Name: "errors-5pct", Metric: "error-rate", Above: new("0.05")},
				},
			},
		},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// healthyMetrics measures an error rate of 0.1 %: every gate passes, no trigger fires.
func healthyMetrics() *fakeMetrics {
	m := newFakeMetrics()
	m.set(errorQuery, 0.001)
	return m
}

func create(t *testing.T, c *deployv1alpha1.DeploymentChecklist) {
	t.Helper()
	NewWithT(t).Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
}

func waitPaused(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	NewWithT(t).Eventually(func() bool { return getDeployment(t, d).Spec.Paused }, time.Minute, 100*time.Millisecond).Should(BeTrue())
}

// images lists the image of every ReplicaSet of the Deployment's namespace that ever
// ran pods: a template that was never rolled out has none.
func rolledImages(t *testing.T, ns string) []string {
	t.Helper()
	var list appsv1.ReplicaSetList
	NewWithT(t).Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	out := make([]string, 0, len(list.Items))
	for _, rs := range list.Items {
		out = append(out, rs.Spec.Template.Spec.Containers[0].Image)
	}
	return out
}

func TestHoldsWhileApprovalsAreMissingThenReleasesAtT0AndSucceeds(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := newChecklist(ns)
	create(t, c)

	waitPaused(t, d)
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, checklist.CondAwaitingApproval)).To(BeTrue())
		g.Expect(cur.Status.CurrentPhase).To(Equal("T-10m"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// The pipeline pushes the new image while approvals are missing: nothing rolls.
	setImage(t, d, "checkout:v2")
	g.Eventually(func() int64 {
		cur := getDeployment(t, d)
		return cur.Generation - cur.Status.ObservedGeneration
	}, time.Minute, 100*time.Millisecond).Should(BeZero())
	g.Consistently(func() []string { return rolledImages(t, ns) }, 2*time.Second, 200*time.Millisecond).
		Should(Equal([]string{"checkout:v1"}), "a held Deployment must not roll out the new image")
	g.Expect(getChecklist(g, c).Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))

	approve(t, c, "deployment-lead", "alice for v2")
	waitRunning(t, d, "checkout:v2")
	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(meta.IsStatusConditionTrue(done.Status.Conditions, checklist.CondReady)).To(BeTrue())
	g.Expect(done.Status.Targets[0].PreDeployTemplateHash).NotTo(BeEmpty())
	g.Expect(done.Status.Targets[0].ReleasedAt).NotTo(BeNil())
	g.Expect(done.Status.Approvals).To(HaveLen(1))
	g.Expect(done.Status.Approvals[0].Approver).To(Equal("alice"))

	// kstatus-compatible: kubectl wait works on the checklist.
	out, err := bed.Kubectl(context.Background(), "wait", "-n", ns, "--for=condition=Ready", "dcl/checkout-v2", "--timeout=30s")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("condition met"))
}

// releaseV2 creates the checklist, pushes v2 while it holds, approves and waits until
// v2 runs and is being verified.
func releaseV2(t *testing.T, ns string, d *appsv1.Deployment, c *deployv1alpha1.DeploymentChecklist) {
	t.Helper()
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")
	approve(t, c, "deployment-lead", "alice for v2")
	waitRunning(t, d, "checkout:v2")
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)
}

func withLongVerification(c *deployv1alpha1.DeploymentChecklist) {
	c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+10m", "10m"
}

func TestABreachedTriggerRollsBackToTheOldImageExactlyOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := newChecklist(ns, withLongVerification)
	releaseV2(t, ns, d, c)
	rollbacksBefore := testutil.ToFloat64(tminusmetrics.Rollbacks.WithLabelValues(checklist.ReasonTriggerFired, "false"))
	rolledBackBefore := testutil.ToFloat64(tminusmetrics.Releases.WithLabelValues("RolledBack", "true"))
	restoresBefore := sampleCount(tminusmetrics.TimeToRestore)

	metrics.set(errorQuery, 0.07)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, d, "checkout:v1")
	g.Expect(rolled.Status.Rollback.Reason).To(Equal(checklist.ReasonTriggerFired))
	g.Expect(rolled.Status.Rollback.Message).To(ContainSubstring("errors-5pct fired: 0.07 > 0.05"))

	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets[0].RestoredAt).NotTo(BeNil())
		g.Expect(cur.Status.Rollback.CompletedAt).NotTo(BeNil())
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, checklist.CondRolledBack)).To(BeTrue())
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, checklist.CondStalled)).To(BeTrue())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// Its record names the trigger, the value and when the old version was back.
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Record).NotTo(BeEmpty())
		var cm corev1.ConfigMap
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cur.Status.Record}, &cm)).
			To(Succeed())
		kept, err := record.Parse(&cm)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(kept.Result).To(Equal("RolledBack"))
		g.Expect(kept.Rollback.Message).To(ContainSubstring("errors-5pct fired: 0.07 > 0.05"))
		g.Expect(kept.Timings.Restored).NotTo(BeNil())
		g.Expect(kept.Triggers[0].Value).To(Equal("0.07"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// Exactly once: the template changes no more, even while the metric stays bad.
	gen := getDeployment(t, d).Generation
	g.Consistently(func() int64 { return getDeployment(t, d).Generation }, 3*time.Second, 200*time.Millisecond).Should(Equal(gen))
	var events corev1.EventList
	g.Expect(bed.Client.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	rolledBack := 0
	for _, e := range events.Items {
		if e.Reason == checklist.ReasonRolledBack {
			rolledBack++
			g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
		}
	}
	g.Expect(rolledBack).To(Equal(1))

	// The operator's metrics say so too.
	g.Expect(testutil.ToFloat64(tminusmetrics.Rollbacks.WithLabelValues(checklist.ReasonTriggerFired, "false"))).
		To(Equal(rollbacksBefore + 1))
	// Delivery metrics: a release that went out and was rolled back, and how long the
	// bad version was out after its first breach.
	g.Expect(testutil.ToFloat64(tminusmetrics.Releases.WithLabelValues("RolledBack", "true"))).
		To(BeNumerically(">=", rolledBackBefore+1))
	g.Expect(sampleCount(tminusmetrics.TimeToRestore)).To(BeNumerically(">=", restoresBefore+1))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tminusmetrics.NewStateCollector(bed.Client, nil))
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	rolledBackGauge := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == "tminus_checklists" && m.GetLabel()[0].GetValue() == "RolledBack" {
				rolledBackGauge = m.GetGauge().GetValue()
			}
		}
	}
	g.Expect(rolledBackGauge).To(BeNumerically(">=", 1))
}

func TestAMissedTMinusDeadlineFailsWithTheWorkloadOnWhatItRanAndTheNewTemplateHeld(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, newFakeMetrics(), nil)
	c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Phases[0].Timeout = "3s" })
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")

	failed := waitPhase(t, c, deployv1alpha1.PhaseFailed)
	g.Expect(meta.FindStatusCondition(failed.Status.Conditions, checklist.CondReady).Reason).To(Equal(checklist.ReasonPhaseTimedOut))
	// v1 keeps serving; v2, which nothing released, stays held and says why, and it
	// never rolled out.
	g.Eventually(func(g Gomega) {
		cur := getDeployment(t, d)
		g.Expect(cur.Spec.Paused).To(BeTrue())
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
		g.Expect(cur.Annotations[deployv1alpha1.HoldReasonAnnotation]).To(ContainSubstring("checkout:v2) is released by no checklist"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(rolledImages(t, ns)).To(Equal([]string{"checkout:v1"}))
	g.Expect(getDeployment(t, d).Status.AvailableReplicas).To(BeEquivalentTo(3))
}

// TestAChangeHeldForADeletedChecklistIsHeldInTheAdmissionsNameNamingItsTemplate: the
// checklist held the Deployment (its own hold names no template); v2 is pushed under
// that hold; the checklist is deleted. The change stays held in the admission's name,
// and the hold names the template it holds, as every held change does (found by
// test/chaos, seed 5: the mark was left empty).
func TestAChangeHeldForADeletedChecklistIsHeldInTheAdmissionsNameNamingItsTemplate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, newFakeMetrics(), nil)
	c := newChecklist(ns)
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")
	v2 := getDeployment(t, d)
	g.Expect(bed.Client.Delete(context.Background(), c)).To(Succeed())

	g.Eventually(func(g Gomega) {
		cur := getDeployment(t, d)
		g.Expect(cur.Spec.Paused).To(BeTrue())
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldTemplateAnnotation, gate.TemplateHash(&v2.Spec.Template)))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(rolledImages(t, ns)).To(Equal([]string{"checkout:v1"}))
}

func TestDeployAtInTheFutureHoldsUntilTheClockReachesIt(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	deployAt := metav1.NewTime(time.Now().Add(10 * time.Second).Truncate(time.Second))
	c := newChecklist(ns, withLongVerification, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.DeployAt = &deployAt
		c.Spec.Window = "5m"
		c.Annotations = map[string]string{deployv1alpha1.ApprovalAnnotationPrefix + "deployment-lead": "alice for v2"}
	})
	create(t, c)
	holding := waitPhase(t, c, deployv1alpha1.PhaseHolding)
	g.Expect(time.Now().Before(deployAt.Time)).To(BeTrue(), "holding must be reached before deployAt for this test to mean anything")
	g.Expect(holding.Status.NextAction).To(Equal("release at " + deployAt.UTC().Format(time.RFC3339)))
	// The status is written before the hold it decided (a failed hold is retried from
	// it): the pause follows the Holding phase, not the other way round.
	g.Eventually(func() bool { return getDeployment(t, d).Spec.Paused }, 30*time.Second, 100*time.Millisecond).
		Should(BeTrue())
	g.Expect(time.Now().Before(deployAt.Time)).To(BeTrue(), "held before deployAt")
	setImage(t, d, "checkout:v2")

	released := waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	g.Expect(released.Status.Targets[0].ReleasedAt.Time).NotTo(BeTemporally("<", deployAt.Time))
}

// crashAfterRestore makes the manager die right after its rollback patch reached the
// API server, before anything else is written.
func crashAfterRestore(c client.Client, cancel context.CancelFunc) client.Client {
	return &crashingClient{Client: c, cancel: cancel}
}

type crashingClient struct {
	client.Client
	cancel  context.CancelFunc
	crashed atomic.Bool
}

var errCrashed = errors.New("manager crashed (injected)")

func (c *crashingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if c.crashed.Load() {
		return errCrashed
	}
	_, ok := obj.(*appsv1.Deployment)
	data, _ := patch.Data(obj)
	restore := ok && bytes.Contains(data, []byte(`"template"`)) && bytes.Contains(data, []byte("checkout:v1"))
	if err := c.Client.Patch(ctx, obj, patch, opts...); err != nil {
		return err
	}
	if restore {
		c.crashed.Store(true)
		c.cancel()
		return errCrashed
	}
	return nil
}

// Status: a dead manager writes nothing more.
func (c *crashingClient) Status() client.SubResourceWriter {
	if c.crashed.Load() {
		return deadWriter{}
	}
	return c.Client.Status()
}

type deadWriter struct{ client.SubResourceWriter }

func (deadWriter) Patch(context.Context, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
	return errCrashed
}

func TestARestartRightAfterTheRollbackPatchDoesNotRollBackTwice(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	first := startManagerIn(t, ns, metrics, crashAfterRestore)
	c := newChecklist(ns, withLongVerification)
	releaseV2(t, ns, d, c)

	metrics.set(errorQuery, 0.07)
	<-first.done // the injected crash stopped the first manager
	restored := getDeployment(t, d)
	g.Expect(restored.Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v1"))
	crashed := getChecklist(g, c)
	g.Expect(crashed.Status.Phase).To(Equal(deployv1alpha1.PhaseRolledBack), "the intent is written before the patch")
	g.Expect(crashed.Status.Targets[0].RestoredAt).To(BeNil(), "the crash came before the completion was recorded")

	startManagerIn(t, ns, metrics, nil)
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets[0].RestoredAt).NotTo(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	waitRunning(t, d, "checkout:v1")
	g.Expect(getDeployment(t, d).Generation).To(Equal(restored.Generation), "the restarted manager must not patch again")
	g.Expect(getChecklist(g, c).Status.Rollback.FiredAt).To(Equal(crashed.Status.Rollback.FiredAt))
}

func TestAJobCheckRunsOneJobAcrossAManagerRestart(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	first := startManagerIn(t, ns, metrics, nil)
	c := newChecklist(ns, withLongVerification, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Annotations = map[string]string{deployv1alpha1.ApprovalAnnotationPrefix + "deployment-lead": "alice for v2"}
		c.Spec.Phases[0].Checks = append(c.Spec.Phases[0].Checks, deployv1alpha1.CheckSpec{
			Name: "db-backup",
			Job: &deployv1alpha1.JobCheck{Template: deployv1alpha1.JobTemplate{Spec: batchv1.JobSpec{
				// Suspended, so the Job is still running when the manager restarts.
				Suspend:      new(true),
				BackoffLimit: new(int32(0)),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "backup", Image: "db-backup:1"}},
				}},
			}}},
		})
	})
	create(t, c)

	jobs := func(g Gomega) []batchv1.Job {
		var list batchv1.JobList
		g.Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{LabelChecklist: c.Name})).To(Succeed())
		return list.Items
	}
	var uid string
	g.Eventually(func(g Gomega) {
		items := jobs(g)
		g.Expect(items).To(HaveLen(1))
		uid = string(items[0].UID)
		g.Expect(items[0].Name).To(Equal("checkout-v2-tm10m-db-backup"))
		g.Expect(metav1.IsControlledBy(&items[0], getChecklist(g, c))).To(BeTrue())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	first.stop()
	startManagerIn(t, ns, metrics, nil)
	g.Consistently(func(g Gomega) {
		items := jobs(g)
		g.Expect(items).To(HaveLen(1), "a restart must not create a second Job")
		g.Expect(string(items[0].UID)).To(Equal(uid))
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(getChecklist(g, c).Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))

	// The Job runs and completes through kwok; the check passes, and the new template
	// is released.
	setImage(t, getDeployment(t, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"}}), "checkout:v2")
	g.Eventually(func() error {
		var job batchv1.Job
		if err := bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "checkout-v2-tm10m-db-backup"}, &job); err != nil {
			return err
		}
		job.Spec.Suspend = new(false)
		return bed.Client.Update(context.Background(), &job)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	g.Expect(jobs(g)).To(HaveLen(1))
}

func TestATargetDeletedMidRunIsReportedAndNothingPanics(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns, withLongVerification)
	releaseV2(t, ns, d, c)

	g.Expect(bed.Client.Delete(context.Background(), d)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.NextAction).To(Equal("Deployment checkout is gone; cannot verify the release"))
		g.Expect(meta.FindStatusCondition(cur.Status.Conditions, checklist.CondReady).Message).
			To(Equal("Deployment checkout is gone; cannot verify the release"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) deployv1alpha1.ChecklistPhase {
		return getChecklist(g, c).Status.Phase
	}, 2*time.Second, 200*time.Millisecond).Should(Equal(deployv1alpha1.PhaseVerifying), "no rollback of a Deployment that is gone")
}

// sampleCount is how many observations a histogram has.
func sampleCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}
