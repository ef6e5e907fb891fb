package webhook_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// observeRelease is release() with gate Observe: it holds nothing.
func observeRelease(ns, rev string) *deployv1alpha1.DeploymentChecklist {
	c := release(ns, rev, time.Hour)
	c.Spec.Gate = deployv1alpha1.GateObserve
	return c
}

// waitHeld waits until a checklist holds d: tminus's label on it (the admission gate
// sees it) and its pause.
func waitHeld(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		cur := get(t, d)
		g.Expect(cur.Labels).To(HaveKey(deployv1alpha1.GatedLabel))
		g.Expect(cur.Spec.Paused).To(BeTrue())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
}

// unpause takes the pause off d, as `kubectl rollout resume` would, and returns what the
// API server stored.
func unpause(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	var stored *appsv1.Deployment
	NewWithT(t).Eventually(func() error {
		cur := get(t, d)
		cur.Spec.Paused = false
		if err := bed.Client.Update(context.Background(), cur); err != nil {
			return err
		}
		stored = cur
		return nil
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	return stored
}

// TestAnObserveChecklistDoesNotSwitchOffTheGateOfADeploymentItsOwnerLabelled: checkout is
// labelled gated=true in Git. Mallory, who may write checklists and push images but not
// label Deployments, writes a checklist with gate: Observe to get her image out
// unreleased: refused, naming the break-glass. An Observe checklist written before the
// label (the Deployment was not gated then) does not switch the label's gate off
// either: her image is held in the write that makes it, and her resume is held again.
func TestAnObserveChecklistDoesNotSwitchOffTheGateOfADeploymentItsOwnerLabelled(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	gated(t, ns, "checkout:v1")

	err := bed.Client.Create(ctx, observeRelease(ns, "v2"))
	g.Expect(err).To(MatchError(ContainSubstring("spec.gate: Observe holds nothing, and Deployment checkout is labelled deploy.tminus.dev/gated=true")))
	g.Expect(err).To(MatchError(ContainSubstring("setting the label to off (the break-glass")))

	// The order that gets an Observe checklist onto a labelled Deployment: the checklist
	// first, the label after.
	other := testbed.Deployment(ns, "payments", "payments:v1", 3)
	g.Expect(bed.Client.Create(ctx, other)).To(Succeed())
	waitRolledOut(t, other, "payments:v1")
	c := observeRelease(ns, "v2")
	c.Name, c.Spec.Target.Name = "payments-v2", "payments"
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	waitFor(t, c, deployv1alpha1.PhaseRunning)
	label(t, other)

	stored := setImage(t, other, "payments:v2")
	g.Expect(stored.Spec.Paused).To(BeTrue(), "held in the write that changed the template: the label gates it")
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
	g.Expect(unpause(t, other).Spec.Paused).To(BeTrue(), "a resume of the held change is held again")
	g.Consistently(func(g Gomega) int { return podsOf(g, ns, "payments:v2") }, 2*time.Second, 200*time.Millisecond).Should(BeZero())
}

// TestAnObserveChecklistCannotTakeOverAHeldChange: a release was rolled back, so tminus
// keeps gating checkout (its own label) and holds the next change pushed without a
// checklist. Mallory writes an Observe checklist to let it roll: refused while the
// change is held.
func TestAnObserveChecklistCannotTakeOverAHeldChange(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 3)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	waitHeld(t, d)
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitRolledOut(t, d, "checkout:v1")
	g.Expect(get(t, d).Labels).To(HaveKeyWithValue(deployv1alpha1.GatedLabel, deployv1alpha1.GatedByChecklist))

	g.Expect(setImage(t, d, "checkout:v3").Spec.Paused).To(BeTrue(), "released by no checklist: held")
	err := bed.Client.Create(ctx, observeRelease(ns, "v3"))
	g.Expect(err).To(MatchError(ContainSubstring("spec.gate: Observe holds nothing, and Deployment checkout holds a change tminus paused")))
	g.Expect(get(t, d).Spec.Paused).To(BeTrue())
}

// TestARunningPauseChecklistCannotBeSwitchedToAnObserveTemplate: the checklist holds
// checkout until T-0 with the new image held; an editor replaces its phases with a
// templateRef to a template whose gate is Observe, which would switch the hold off
// mid-release. The gate is fixed at creation: refused, and the hold stays.
func TestARunningPauseChecklistCannotBeSwitchedToAnObserveTemplate(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 3)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	body := release(ns, "x", time.Hour).Spec.ChecklistBody
	body.Gate = deployv1alpha1.GateObserve
	observe := &deployv1alpha1.ChecklistTemplate{ObjectMeta: metav1.ObjectMeta{Name: "observe-only", Namespace: ns},
		Spec: deployv1alpha1.ChecklistTemplateSpec{Template: body}}
	g.Expect(bed.Client.Create(ctx, observe)).To(Succeed())

	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	waitHeld(t, d)
	g.Expect(setImage(t, d, "checkout:v2").Spec.Paused).To(BeTrue())

	var err error
	g.Eventually(func(g Gomega) bool {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		cur.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ChecklistTemplate", Name: "observe-only"}
		cur.Spec.Phases, cur.Spec.Metrics, cur.Spec.Prometheus, cur.Spec.RollbackTriggers = nil, nil, nil, nil
		err = bed.Client.Update(ctx, &cur)
		return apierrors.IsConflict(err)
	}, 10*time.Second, 100*time.Millisecond).Should(BeFalse(), "the controller writes status meanwhile")
	g.Expect(err).To(MatchError(ContainSubstring("spec.gate: this checklist gates with Pause, fixed when it was created; this change would make it Observe")))
	g.Expect(unpause(t, d).Spec.Paused).To(BeTrue(), "still held until T-0")

	// Made from a template, a checklist records the template's gate at creation.
	fromObserve := &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Name: "other-v1", Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{Target: &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "other"}, Revision: "v1",
			TemplateRef: &deployv1alpha1.TemplateRef{Kind: "ChecklistTemplate", Name: "observe-only"}}}
	g.Expect(bed.Client.Create(ctx, fromObserve)).To(Succeed())
	g.Expect(fromObserve.Spec.Gate).To(Equal(deployv1alpha1.GateObserve))
}
