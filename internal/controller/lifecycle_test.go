package controller

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// The target's lifecycle in the orders of events GitOps produces, without the
// admission webhook (tminus holds after the fact and says so); test/admission has the
// same orders with the webhook called by the API server.

func withSignOff(c *deployv1alpha1.DeploymentChecklist) {
	c.Annotations = map[string]string{deployv1alpha1.ApprovalAnnotationPrefix + "deployment-lead": "alice for v2"}
}

func condition(g Gomega, c *deployv1alpha1.DeploymentChecklist, typ string) metav1.Condition {
	cond := meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, typ)
	g.Expect(cond).NotTo(BeNil(), typ)
	return *cond
}

func eventsOf(g Gomega, ns, reason string) []corev1.Event {
	var list corev1.EventList
	g.Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []corev1.Event
	for _, e := range list.Items {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func TestSignOffsCommittedUpFrontWaitForTheNewTemplateAndReleaseIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns, withSignOff)
	create(t, c)

	// Every T-minus phase passes at once; the Deployment still holds v1, so T-0 waits
	// for the new template, with the Deployment not paused.
	holding := waitPhase(t, c, deployv1alpha1.PhaseHolding)
	g.Expect(holding.Status.NextAction).To(Equal("T-0 passed: waiting for the new template (Deployment checkout serves checkout:v1)"))
	g.Eventually(func() bool { return getDeployment(t, d).Spec.Paused }, 30*time.Second, 100*time.Millisecond).Should(BeFalse())
	g.Consistently(func(g Gomega) deployv1alpha1.ChecklistPhase { return getChecklist(g, c).Status.Phase },
		2*time.Second, 200*time.Millisecond).Should(Equal(deployv1alpha1.PhaseHolding), "nothing is released")

	// The pipeline pushes the image: released at once, rolled out, verified.
	setImage(t, d, "checkout:v2")
	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.Status.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
	waitRunning(t, d, "checkout:v2")
	cur := getDeployment(t, d)
	g.Expect(cur.Spec.Paused).To(BeFalse())
	g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.ReleasedRevisionsAnnotation, "v2"))
}

// holdBlocker holds back the manager's pauses of the Deployment until released: the
// pipeline's push lands before the first pause does.
type holdBlocker struct {
	client.Client
	once    sync.Once
	release chan struct{}
}

func (h *holdBlocker) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if _, ok := obj.(*appsv1.Deployment); ok {
		if data, _ := patch.Data(obj); bytes.Contains(data, []byte(`"paused":true`)) {
			<-h.release
		}
	}
	return h.Client.Patch(ctx, obj, patch, opts...)
}

func TestAnImageThatLandedBeforeThePauseIsNotTheTemplateRestored(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	blocker := &holdBlocker{release: make(chan struct{})}
	startManagerIn(t, ns, metrics, func(c client.Client, _ context.CancelFunc) client.Client { blocker.Client = c; return blocker })
	t.Cleanup(func() { blocker.once.Do(func() { close(blocker.release) }) })
	c := newChecklist(ns, withLongVerification)
	create(t, c)
	g.Eventually(func(g Gomega) string {
		targets := getChecklist(g, c).Status.Targets
		g.Expect(targets).NotTo(BeEmpty())
		return targets[0].PreDeployTemplateHash
	}, time.Minute, 100*time.Millisecond).ShouldNot(BeEmpty())

	// v2 lands before the pause, and rolls out completely.
	setImage(t, d, "checkout:v2")
	waitRunning(t, d, "checkout:v2")
	blocker.once.Do(func() { close(blocker.release) })
	waitPaused(t, d)
	st := getChecklist(g, c).Status.Targets[0]
	g.Expect(string(st.PreDeployTemplate.Raw)).To(ContainSubstring("checkout:v1"), "what served when the checklist started")
	g.Expect(st.CandidateImages).To(Equal([]string{"checkout:v2"}))

	approve(t, c, "deployment-lead", "alice for v2")
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	metrics.set(errorQuery, 0.07)
	waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, d, "checkout:v1")
}

func TestATemplateChangedDuringVerificationIsHeldAndReported(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+8s", "8s"
	})
	releaseV2(t, ns, d, c)

	setImage(t, d, "checkout:v3")
	g.Eventually(func(g Gomega) {
		cond := condition(g, c, checklist.CondHeldChange)
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(cond.Message).To(ContainSubstring("checkout:v3"))
		g.Expect(getDeployment(t, d).Spec.Paused).To(BeTrue(), "held after the fact: there is no admission gate here")
		g.Expect(eventsOf(g, ns, checklist.ReasonHeldChange)).To(HaveLen(1))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(condition(g, c, checklist.CondAdmissionGate).Reason).To(Equal(checklist.ReasonWebhookNotServed))

	// Verification of v2 goes on to the end; v3 stays held, waiting for a checklist of
	// its own, and says so on the Deployment.
	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.Status.Targets[0].ReleasedTemplateHash).To(Equal(done.Status.Targets[0].CandidateTemplateHash))
	g.Eventually(func(g Gomega) {
		cur := getDeployment(t, d)
		g.Expect(cur.Spec.Paused).To(BeTrue())
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
		g.Expect(cur.Annotations[deployv1alpha1.HoldReasonAnnotation]).To(ContainSubstring("checkout:v3) is released by no checklist"))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func() bool { return getDeployment(t, d).Spec.Paused }, 2*time.Second, 200*time.Millisecond).Should(BeTrue())
}

// TestEveryEndingLeavesTheTargetUnpaused: whichever way a checklist ends, tminus takes
// its own pause off (the one exception, a change nothing released, is pinned by
// TestAMissedTMinusDeadlineFailsWithTheWorkloadOnWhatItRanAndTheNewTemplateHeld and
// TestATemplateChangedDuringVerificationIsHeldAndReported).
func TestEveryEndingLeavesTheTargetUnpaused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, ns string, d *appsv1.Deployment, c *deployv1alpha1.DeploymentChecklist, m *fakeMetrics) string
		// guards: the checklist keeps the Deployment gated after it ended (a rolled-back
		// template stays refused while it exists).
		guards bool
	}{
		{"success", func(t *testing.T, ns string, d *appsv1.Deployment, c *deployv1alpha1.DeploymentChecklist, _ *fakeMetrics) string {
			releaseV2(t, ns, d, c)
			waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
			return "checkout:v2"
		}, false},
		{"rollback", func(t *testing.T, ns string, d *appsv1.Deployment, c *deployv1alpha1.DeploymentChecklist, m *fakeMetrics) string {
			releaseV2(t, ns, d, c)
			m.set(errorQuery, 0.07)
			waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
			return "checkout:v1"
		}, true},
		{"failure before T-0", func(t *testing.T, _ string, d *appsv1.Deployment, c *deployv1alpha1.DeploymentChecklist, _ *fakeMetrics) string {
			c.Spec.Phases[0].Timeout = "2s"
			create(t, c)
			waitPaused(t, d)
			waitPhase(t, c, deployv1alpha1.PhaseFailed)
			return "checkout:v1"
		}, false},
		{"deletion before T-0", func(t *testing.T, _ string, d *appsv1.Deployment, c *deployv1alpha1.DeploymentChecklist, _ *fakeMetrics) string {
			create(t, c)
			waitPaused(t, d)
			NewWithT(t).Expect(bed.Client.Delete(context.Background(), c)).To(Succeed())
			return "checkout:v1"
		}, false},
		{"deletion during verification", func(t *testing.T, ns string, d *appsv1.Deployment, c *deployv1alpha1.DeploymentChecklist, _ *fakeMetrics) string {
			c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+10m", "10m"
			releaseV2(t, ns, d, c)
			NewWithT(t).Expect(bed.Client.Delete(context.Background(), c)).To(Succeed())
			return "checkout:v2"
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			d := deployment(t, ns, "checkout:v1")
			m := healthyMetrics()
			startManagerIn(t, ns, m, nil)
			image := tc.run(t, ns, d, newChecklist(ns), m)
			waitRunning(t, d, image)
			NewWithT(t).Eventually(func(g Gomega) {
				cur := getDeployment(t, d)
				g.Expect(cur.Spec.Paused).To(BeFalse())
				g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.HeldByAnnotation))
				if tc.guards {
					g.Expect(cur.Labels).To(HaveKeyWithValue(deployv1alpha1.GatedLabel, deployv1alpha1.GatedByChecklist))
				} else {
					g.Expect(cur.Labels).NotTo(HaveKey(deployv1alpha1.GatedLabel), "tminus's mark goes with its last live checklist")
				}
			}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
		})
	}
}

func TestARollbackWithNothingToRestoreSaysSo(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	// A brand-new Deployment created paused (as the admission gate creates a gated
	// one): nothing served when the checklist started.
	d := deploymentPaused(t, ns, "checkout:v2")
	c := newChecklist(ns, withLongVerification, withSignOff)
	create(t, c)
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	waitRunning(t, d, "checkout:v2")
	metrics.set(errorQuery, 0.07)

	failed := waitPhase(t, c, deployv1alpha1.PhaseFailed)
	g.Expect(failed.Status.Rollback.NothingToRestore).To(BeTrue())
	ready := meta.FindStatusCondition(failed.Status.Conditions, checklist.CondReady)
	g.Expect(ready.Reason).To(Equal(checklist.ReasonNothingToRestore))
	g.Expect(ready.Message).To(ContainSubstring("checkout:v2 still runs"))
	g.Expect(meta.IsStatusConditionTrue(failed.Status.Conditions, checklist.CondRolledBack)).To(BeFalse())
	g.Eventually(func(g Gomega) { g.Expect(eventsOf(g, ns, checklist.ReasonNothingToRestore)).NotTo(BeEmpty()) },
		10*time.Second, 100*time.Millisecond).Should(Succeed())
	waitRunning(t, d, "checkout:v2")
}

func deploymentPaused(t *testing.T, ns, image string) *appsv1.Deployment {
	t.Helper()
	d := deploymentSpec(ns, image)
	d.Spec.Paused = true
	NewWithT(t).Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	return d
}

func TestAStaleProgressDeadlineDoesNotRollBackAtT0(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns)
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")

	// A ProgressDeadlineExceeded left over from an earlier rollout, an hour old: a
	// paused Deployment keeps it (the Deployment controller does not overwrite a
	// timed-out condition with "paused").
	g.Eventually(func() error {
		cur := getDeployment(t, d)
		cur.Status.Conditions = append(slicesWithout(cur.Status.Conditions, appsv1.DeploymentProgressing), appsv1.DeploymentCondition{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
			Message: "ReplicaSet has timed out progressing.", LastUpdateTime: metav1.NewTime(time.Now().Add(-time.Hour)),
			LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour)),
		})
		return bed.Client.Status().Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	approve(t, c, "deployment-lead", "alice for v2")

	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.Status.Rollback).To(BeNil(), "the stale condition says nothing about the release")
	waitRunning(t, d, "checkout:v2")
}

func slicesWithout(conds []appsv1.DeploymentCondition, typ appsv1.DeploymentConditionType) []appsv1.DeploymentCondition {
	out := conds[:0]
	for _, c := range conds {
		if c.Type != typ {
			out = append(out, c)
		}
	}
	return out
}

func TestASecondLiveChecklistIsBlocked(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	first := newChecklist(ns)
	create(t, first)
	waitPaused(t, d)

	second := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) { c.Name, c.Spec.Revision = "checkout-v3", "v3" })
	create(t, second)
	blocked := waitPhase(t, second, deployv1alpha1.PhaseBlocked)
	g.Expect(blocked.Status.NextAction).To(ContainSubstring("checklist checkout-v2 is live on Deployment checkout"))
	g.Expect(blocked.Status.Targets).To(BeEmpty(), "it captured nothing and touches nothing")
	g.Expect(meta.FindStatusCondition(blocked.Status.Conditions, checklist.CondReady).Reason).To(Equal(checklist.ReasonBlocked))

	// The first one releases and ends; the second starts.
	setImage(t, d, "checkout:v2")
	approve(t, first, "deployment-lead", "alice for v2")
	waitPhase(t, first, deployv1alpha1.PhaseSucceeded)
	running := waitPhase(t, second, deployv1alpha1.PhaseRunning)
	g.Expect(running.Status.Targets[0].PreDeployImages).To(Equal([]string{"checkout:v2"}))
}

func TestAnOldChecklistReappliedAfterItsReleaseNeverPausesTheTargetAgain(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns, withSignOff)
	create(t, c)
	waitPhase(t, c, deployv1alpha1.PhaseHolding)
	setImage(t, d, "checkout:v2")
	waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(bed.Client.Delete(context.Background(), c)).To(Succeed())
	g.Eventually(func() error {
		return bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &deployv1alpha1.DeploymentChecklist{})
	}, 30*time.Second, 100*time.Millisecond).ShouldNot(Succeed())
	// The Deployment moves on, ungated.
	setImage(t, d, "checkout:v3")
	waitRunning(t, d, "checkout:v3")

	// Git re-applies the old checklist with an empty status.
	again := newChecklist(ns, withSignOff)
	create(t, again)
	failed := waitPhase(t, again, deployv1alpha1.PhaseFailed)
	g.Expect(meta.FindStatusCondition(failed.Status.Conditions, checklist.CondReady).Reason).To(Equal(checklist.ReasonAlreadyReleased))
	g.Consistently(func() bool { return getDeployment(t, d).Spec.Paused }, 2*time.Second, 100*time.Millisecond).Should(BeFalse())
	waitRunning(t, d, "checkout:v3")
}

// TestARefusedJobDoesNotDelayARollback: a T-plus Job the API server refuses (here: no
// containers) is recorded on its check with the API server's message, and the rollback
// trigger is still evaluated on schedule: the rollback follows the breach within the
// interval plus a second (timestamps in status keep whole seconds: one more).
func TestARefusedJobDoesNotDelayARollback(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := newChecklist(ns, withLongVerification, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.Phases[1].Name, c.Spec.Phases[1].At = "T+1s", "1s"
		c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks, deployv1alpha1.CheckSpec{
			Name: "smoke", Job: &deployv1alpha1.JobCheck{Template: deployv1alpha1.JobTemplate{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever}},
			}}},
		})
	})
	releaseV2(t, ns, d, c)
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		cr := cur.Status.Phases[1].Checks[1]
		g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomeError))
		g.Expect(cr.Message).To(ContainSubstring("the API server refused Job"))
		g.Expect(cr.Message).To(ContainSubstring("spec.template.spec.containers: Required value"))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(eventsOf(g, ns, checklist.ReasonJobRefused)).NotTo(BeEmpty()) },
		10*time.Second, 100*time.Millisecond).Should(Succeed())

	breach := time.Now()
	metrics.set(errorQuery, 0.07)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	took := rolled.Status.Rollback.FiredAt.Sub(breach.Truncate(time.Second))
	t.Logf("breach to rollback: %s (interval 1s)", took)
	g.Expect(took).To(BeNumerically("<=", 2*time.Second+time.Second))
}

func TestLongRollbackMessagesStillMakeAnEvent(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	// Fifteen long-named checks of a T-plus phase fail, so the rollback message names
	// them all. Their metric fails from the start: only T+2s reads it, and the phase
	// fails however late the test gets to look.
	metrics.set("late_error_rate", 0.02)
	c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Spec.RollbackTriggers = nil
		c.Spec.Phases[1].Timeout = "3s"
		c.Spec.Metrics = append(c.Spec.Metrics, deployv1alpha1.MetricSpec{Name: "late-error-rate", Query: "late_error_rate"})
		for i := range 15 {
			c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks, deployv1alpha1.CheckSpec{
				Name: "errors-" + strings.Repeat("x", 50) + string(rune('a'+i)), Metric: "late-error-rate", Below: new("0.01"),
			})
		}
	})
	releaseV2(t, ns, d, c)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(len(rolled.Status.Rollback.Message)).To(BeNumerically(">", checklist.MaxEventNote))
	g.Eventually(func(g Gomega) {
		events := eventsOf(g, ns, checklist.ReasonRolledBack)
		g.Expect(events).To(HaveLen(1), "the API server kept the event")
		g.Expect(len(events[0].Message)).To(BeNumerically("<=", checklist.MaxEventNote))
		g.Expect(events[0].Message).To(HavePrefix("rolling back: T+2s did not pass"))
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	waitRunning(t, d, "checkout:v1")
}

// TestASignOffWrittenWithoutTheWebhookDoesNotCountWhenVerifiedOnesAreRequired: the
// webhook is not served here, so no sign-off is verified; with verified sign-offs
// required, the one committed in Git holds nothing open, and status says why.
func TestASignOffWrittenWithoutTheWebhookDoesNotCountWhenVerifiedOnesAreRequired(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil, func(r *DeploymentChecklistReconciler) { r.RequireVerifiedApprovals = true })
	c := newChecklist(ns, withSignOff)
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Approvals).To(HaveLen(1))
		g.Expect(cur.Status.Approvals[0].Verified).To(BeFalse())
		g.Expect(cur.Status.Approvals[0].NotCounted).To(ContainSubstring("not verified by the approval webhook"))
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, checklist.CondAwaitingApproval)).To(BeTrue())
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) deployv1alpha1.ChecklistPhase { return getChecklist(g, c).Status.Phase },
		2*time.Second, 200*time.Millisecond).Should(Equal(deployv1alpha1.PhaseRunning))
	g.Expect(rolledImages(t, ns)).To(Equal([]string{"checkout:v1"}))
}

// TestARollbackRequestWithoutAReasonIsReportedAndNothingRollsBack: where the checklist
// webhook is not served (it refuses such a request at admission), a request committed
// without its reason is read, reported in status.approvalErrors with an InvalidRequest
// event, and not acted on: the release goes on verifying the new version.
func TestARollbackRequestWithoutAReasonIsReportedAndNothingRollsBack(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns, withLongVerification)
	releaseV2(t, ns, d, c)

	g.Eventually(func(g Gomega) error {
		cur := getChecklist(g, c)
		cur.Annotations[deployv1alpha1.RollbackRequestedAnnotation] = "carol: "
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())

	g.Eventually(func(g Gomega) {
		got := getChecklist(g, c)
		g.Expect(got.Status.ApprovalErrors).To(ContainElement(ContainSubstring(
			"annotation deploy.tminus.dev/rollback-requested: a request needs a reason")))
		g.Expect(eventsOf(g, ns, checklist.ReasonInvalidRequest)).To(HaveLen(1))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	got := getChecklist(g, c)
	g.Expect(got.Status.Phase).To(Equal(deployv1alpha1.PhaseVerifying))
	g.Expect(got.Status.Request).To(BeNil(), "nothing was asked that tminus could read")
	g.Expect(getDeployment(t, d).Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v2"))
}
