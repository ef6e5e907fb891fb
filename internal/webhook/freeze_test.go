package webhook_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	engine "github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/test/testbed"
)

func TestABreakGlassReleasesDuringAFreezeWithTwoVerifiedSignOffsAndAReason(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	d := testbed.Deployment(ns, "hotfix", "checkout:v1", 1)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	// The Deployment is gated in Git, so the new image is held in the write that brings
	// it, whatever the reconciler is doing at that moment (without the label, whether v2
	// rolled would depend on the checklist's first reconcile winning a race with it).
	label(t, d)
	// The namespace is frozen for the holidays (for checklists labelled so: the other
	// tests of this namespace run beside it); release managers may break the glass.
	freeze := &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "holidays"},
		Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "holiday freeze", ExceptionRole: "release-manager",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"freeze": "holidays"}},
			Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(time.Now().Add(-time.Hour))),
				End: new(metav1.NewTime(time.Now().Add(24 * time.Hour)))}}},
	}
	g.Expect(bed.Client.Create(ctx, freeze)).To(Succeed())
	c := checklist("hotfix")
	c.Labels = map[string]string{"freeze": "holidays"}
	g.Expect(as(t, "alice").Create(ctx, c)).To(Succeed())
	g.Expect(setImage(t, d, "checkout:v2").Spec.Paused).To(BeTrue(), "the gate holds the new image in the write that brings it")
	g.Expect(annotate(as(t, "alice"), "hotfix", map[string]string{"approve.tminus.dev/deployment-lead": "alice for v2"})).To(Succeed())
	g.Expect(annotate(as(t, "bob"), "hotfix", map[string]string{"approve.tminus.dev/deployment-lead.bob": "bob for v2"})).To(Succeed())

	status := func(g Gomega) deployv1alpha1.DeploymentChecklistStatus {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		return cur.Status
	}
	frozen := func(g Gomega) *metav1.Condition {
		cond := meta.FindStatusCondition(status(g).Conditions, engine.CondFrozen)
		g.Expect(cond).NotTo(BeNil())
		return cond
	}
	g.Eventually(func(g Gomega) {
		g.Expect(frozen(g).Message).To(ContainSubstring("break-glass: 0 of 2 sign-offs of release-manager"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// One release manager is not enough.
	g.Expect(annotate(as(t, "alice"), "hotfix", map[string]string{"approve.tminus.dev/release-manager.alice": "alice for v2"})).
		To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(frozen(g).Message).To(ContainSubstring("break-glass: 1 of 2 sign-offs of release-manager"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	// A second, verified by the webhook; the reason is still missing.
	g.Expect(annotate(as(t, "bob"), "hotfix", map[string]string{"approve.tminus.dev/release-manager.bob": "bob for v2"})).
		To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(frozen(g).Message).To(ContainSubstring("has no annotation deploy.tminus.dev/break-glass-reason"))
		g.Expect(status(g).Phase).To(Equal(deployv1alpha1.PhaseHolding))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	var sets appsv1.ReplicaSetList
	g.Expect(bed.Client.List(ctx, &sets, client.InNamespace(ns))).To(Succeed())
	for _, rs := range sets.Items {
		if len(rs.OwnerReferences) > 0 && rs.OwnerReferences[0].Name == "hotfix" {
			g.Expect(rs.Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v1"), "nothing rolled during the freeze")
		}
	}

	g.Expect(annotate(as(t, "alice"), "hotfix", map[string]string{deployv1alpha1.BreakGlassReasonAnnotation: "INC-4211 payment outage fix"})).
		To(Succeed())
	var st deployv1alpha1.DeploymentChecklistStatus
	g.Eventually(func(g Gomega) {
		st = status(g)
		g.Expect(st.BreakGlass).NotTo(BeNil())
		g.Expect(st.Targets).NotTo(BeEmpty())
		g.Expect(st.Targets[0].ReleasedAt).NotTo(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	waitRolledOut(t, d, "checkout:v2")
	g.Expect(st.BreakGlass.Approvers).To(Equal([]string{"alice", "bob"}))
	g.Expect(st.BreakGlass.Reason).To(Equal("INC-4211 payment outage fix"))
	g.Expect(st.BreakGlass.Freezes).To(Equal([]string{"ChangeFreeze shop/holidays (holiday freeze)"}))
	for _, a := range st.Approvals {
		if a.Role == "release-manager" {
			g.Expect(a.Verified).To(BeTrue(), "%s's sign-off was verified by the webhook", a.Approver)
		}
	}
	var events corev1.EventList
	g.Expect(bed.Client.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	broken := 0
	for _, e := range events.Items {
		if e.Reason == engine.ReasonFreezeBroken && e.InvolvedObject.Name == "hotfix" {
			broken++
			g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
			g.Expect(e.Message).To(ContainSubstring("break-glass by alice, bob: INC-4211 payment outage fix"))
		}
	}
	g.Expect(broken).To(Equal(1))
}

// TestAnEditorCannotTakeAChecklistOutOfAFreezeByItsLabels: a freeze in force selects
// checklists labelled freeze=quarter-close. Mallory, who may edit checklists but not the
// freeze, removes the label, then tries to change it: both are refused, naming the field
// and the freeze. Whoever may update the freeze may do it (it is lifting it).
func TestAnEditorCannotTakeAChecklistOutOfAFreezeByItsLabels(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quarter-close"},
		Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "quarter close",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"freeze": "quarter-close"}},
			Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(time.Now().Add(-time.Hour))),
				End: new(metav1.NewTime(time.Now().Add(24 * time.Hour)))}}},
	}
	g.Expect(bed.Client.Create(ctx, f)).To(Succeed())
	t.Cleanup(func() { _ = bed.Client.Delete(context.Background(), f) })
	c := checklist("relabel")
	c.Labels = map[string]string{"freeze": "quarter-close", "team": "shop"}
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())

	relabel := func(cl client.Client, labels map[string]any) error {
		raw, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
		g.Expect(err).NotTo(HaveOccurred())
		return cl.Patch(ctx, &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "relabel"}},
			client.RawPatch(types.MergePatchType, raw))
	}
	mallory := as(t, "mallory")
	err := relabel(mallory, map[string]any{"freeze": nil})
	g.Expect(err).To(MatchError(ContainSubstring("metadata.labels: this change takes checklist relabel out of ChangeFreeze " + ns +
		"/quarter-close (quarter close), which holds or will hold its release; user \"mallory\" may not lift that freeze: " +
		"it needs the verb update on changefreezes quarter-close")))
	g.Expect(relabel(mallory, map[string]any{"freeze": "none"})).To(MatchError(ContainSubstring("takes checklist relabel out of")))
	// Labels that keep it in the freeze are hers to change.
	g.Expect(relabel(mallory, map[string]any{"team": "checkout"})).To(Succeed())

	// The freeze's owner may.
	g.Expect(relabel(bed.Client, map[string]any{"freeze": nil})).To(Succeed())
	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
	g.Expect(cur.Labels).To(Equal(map[string]string{"team": "checkout"}))
}

// TestAChecklistCreatedWithoutTheFreezesLabelIsHeldByItsWorkloadsLabel: creating the
// checklist without the label is the same escape as removing it; a freeze also selects by
// the target Deployment's labels, which a checklist's author does not write.
func TestAChecklistCreatedWithoutTheFreezesLabelIsHeldByItsWorkloadsLabel(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments-freeze"},
		Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "payments freeze",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "payments"}},
			Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(time.Now().Add(-time.Hour))),
				End: new(metav1.NewTime(time.Now().Add(24 * time.Hour)))}}},
	}
	g.Expect(bed.Client.Create(ctx, f)).To(Succeed())
	t.Cleanup(func() { _ = bed.Client.Delete(context.Background(), f) })
	d := testbed.Deployment(ns, "ledger", "checkout:v1", 1)
	d.Labels = map[string]string{"tier": "payments"}
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")

	// Mallory writes the checklist without the label, pushes and gets her sign-offs.
	g.Expect(as(t, "mallory").Create(ctx, oneSignOff("ledger"))).To(Succeed())
	setImage(t, d, "checkout:v2")
	g.Expect(annotate(as(t, "alice"), "ledger", map[string]string{"approve.tminus.dev/deployment-lead": "alice for v2"})).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ledger"}, &cur)).To(Succeed())
		frozen := meta.FindStatusCondition(cur.Status.Conditions, engine.CondFrozen)
		g.Expect(frozen).NotTo(BeNil())
		g.Expect(frozen.Message).To(ContainSubstring("ChangeFreeze " + ns + "/payments-freeze (payments freeze) is in force"))
		g.Expect(cur.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
		g.Expect(cur.Status.Phases[0].Checks[0].Outcome).To(Equal(deployv1alpha1.OutcomePass))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(get(t, d).Spec.Paused).To(BeTrue())
}

// TestALabelEditKeepingAStatefulSetsChecklistInAFreezeByItsWorkloadIsAllowed: a freeze
// selects tier=ledger-db, the label the StatefulSet ledger-db carries and its checklist
// too. Mallory, who may not lift the freeze, drops the label from the checklist: the
// StatefulSet's own label keeps the checklist in the freeze, so nothing is escaped and
// the edit is hers, as it is for a Deployment's checklist. The workload's labels are read
// from the StatefulSet, not from a Deployment of that name (there is none).
func TestALabelEditKeepingAStatefulSetsChecklistInAFreezeByItsWorkloadIsAllowed(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	f := &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger-db-freeze"},
		Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "ledger migration",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "ledger-db"}},
			Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(time.Now().Add(-time.Hour))),
				End: new(metav1.NewTime(time.Now().Add(24 * time.Hour)))}}},
	}
	g.Expect(bed.Client.Create(ctx, f)).To(Succeed())
	t.Cleanup(func() { _ = bed.Client.Delete(context.Background(), f) })
	s := testbed.StatefulSet(ns, "ledger-db", "ledger-db:v1", 1)
	s.Labels = map[string]string{"tier": "ledger-db"}
	g.Expect(bed.Client.Create(ctx, s)).To(Succeed())
	c := checklist("ledger-db")
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "ledger-db"}
	c.Labels = map[string]string{"tier": "ledger-db"}
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())

	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{"tier": nil}}})
	g.Expect(err).NotTo(HaveOccurred())
	// The webhook reads the StatefulSet from the manager's cache, which sees it a moment
	// after its create.
	g.Eventually(func() error {
		return as(t, "mallory").Patch(ctx, &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger-db"}},
			client.RawPatch(types.MergePatchType, raw))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
	g.Expect(cur.Labels).NotTo(HaveKey("tier"))
}
