package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/freeze"
)

func TestAReleaseHeldByAFreezeStartsWhenTheFreezeEnds(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	// The on-call declared a freeze for an incident, lifted in 8 seconds.
	end := time.Now().Add(8 * time.Second).Truncate(time.Second)
	g.Expect(bed.Client.Create(ctx, &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "inc-4211"},
		Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "INC-4211 storage degraded",
			Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(time.Now().Add(-time.Hour))),
				End: new(metav1.NewTime(end))}}},
	})).To(Succeed())

	c := newChecklist(ns)
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")
	approve(t, c, "deployment-lead", "alice for v2")

	// Every T-minus phase passes, and T-0 waits for the freeze: nothing rolls.
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		frozen := meta.FindStatusCondition(cur.Status.Conditions, checklist.CondFrozen)
		g.Expect(frozen).NotTo(BeNil())
		g.Expect(frozen.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(frozen.Message).To(ContainSubstring("ChangeFreeze " + ns + "/inc-4211 (INC-4211 storage degraded) is in force until " +
			end.UTC().Format(time.RFC3339)))
		g.Expect(cur.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
		g.Expect(cur.Status.NextActionAt.Time).To(BeTemporally("==", end))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(getDeployment(t, d).Spec.Paused).To(BeTrue())
	out, err := kubectlChecklist(ns, "freezes")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(MatchRegexp(`ChangeFreeze %s/inc-4211\s+Freeze\s+holding\s+%s\s+-\s+none\s+all\s+INC-4211 storage degraded`,
		ns, end.UTC().Format(time.RFC3339)))
	out, err = kubectlChecklist(ns, "freezes", "--at", end.UTC().Format(time.RFC3339))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(MatchRegexp(`inc-4211\s+Freeze\s+open\s+-`))
	g.Expect(rolledImages(t, ns)).NotTo(ContainElement("checkout:v2"))

	// The freeze ends: the release starts by itself.
	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	waitRunning(t, d, "checkout:v2")
	g.Expect(done.Status.Targets[0].ReleasedAt.Time).To(BeTemporally(">=", end))
	g.Expect(meta.FindStatusCondition(done.Status.Conditions, checklist.CondFrozen).Reason).To(Equal(checklist.ReasonNotFrozen))
}

func TestARollbackDuringAClusterFreezeStillHappens(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := newChecklist(ns, withLongVerification)
	releaseV2(t, ns, d, c)

	// A platform-wide freeze for this namespace (by its label) is declared while v2
	// verifies; v2 breaches its trigger.
	var nsObj corev1.Namespace
	g.Expect(bed.Client.Get(ctx, client.ObjectKey{Name: ns}, &nsObj)).To(Succeed())
	nsObj.Labels["tier"] = "payments"
	g.Expect(bed.Client.Update(ctx, &nsObj)).To(Succeed())
	ccf := &deployv1alpha1.ClusterChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Name: "payments-" + ns},
		Spec: deployv1alpha1.ClusterChangeFreezeSpec{
			ChangeFreezeSpec: deployv1alpha1.ChangeFreezeSpec{Reason: "quarter close",
				Windows: []deployv1alpha1.FreezeWindow{{Cron: "* * * * *", Duration: "24h"}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "payments"}},
		},
	}
	g.Expect(bed.Client.Create(ctx, ccf)).To(Succeed())
	t.Cleanup(func() { _ = bed.Client.Delete(context.Background(), ccf) })
	metrics.set(errorQuery, 0.07)

	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, d, "checkout:v1")
	g.Expect(rolled.Status.Rollback.Message).To(ContainSubstring("errors-5pct fired"))
	g.Expect(meta.FindStatusCondition(rolled.Status.Conditions, checklist.CondFrozen)).To(BeNil(),
		"a release already out is never judged against a freeze")
}

func TestAnInvalidChangeFreezeIsRefusedNamingTheField(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	now := metav1.NewTime(time.Now())
	for _, tc := range []struct {
		window deployv1alpha1.FreezeWindow
		want   string
	}{
		{deployv1alpha1.FreezeWindow{Start: &now}, "spec.windows[0]: Invalid value: give start and end together"},
		{deployv1alpha1.FreezeWindow{RRule: "FREQ=DAILY", Cron: "0 9 * * *", Duration: "1h"},
			"spec.windows[0]: Invalid value: give rrule or cron, not both"},
		{deployv1alpha1.FreezeWindow{Cron: "0 9 * * 1-4"},
			"spec.windows[0]: Invalid value: a recurring window needs a duration; a one-off one takes none"},
		{deployv1alpha1.FreezeWindow{Start: &now, End: new(metav1.NewTime(now.Add(-time.Hour)))},
			"spec.windows[0]: Invalid value: end must be after start"},
		{deployv1alpha1.FreezeWindow{Cron: "0 9 * *", Duration: "1h"}, "spec.windows[0].cron: Invalid value"},
		{deployv1alpha1.FreezeWindow{RRule: "FREQ=SECONDLY", Duration: "1h"}, "spec.windows[0].rrule: Invalid value"},
	} {
		err := bed.Client.Create(context.Background(), &deployv1alpha1.ChangeFreeze{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
			Spec:       deployv1alpha1.ChangeFreezeSpec{Reason: "r", Windows: []deployv1alpha1.FreezeWindow{tc.window}},
		})
		g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
	}
	// The shipped sample is accepted.
	var sample deployv1alpha1.ChangeFreeze
	createSample(t, ns, "deploy_v1alpha1_changefreeze.yaml", &sample)
	f := freeze.Of(&sample)
	// Thursday 26 November 2026, 17:00 in Berlin: after hours; Monday 10:00: allowed.
	_, held := f.At(time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC))
	g.Expect(held).To(BeTrue())
	_, held = f.At(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
	g.Expect(held).To(BeFalse())
}

func TestAnImageThatLandsInAFreezeAfterT0IsHeldUntilTheFreezeEnds(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)

	// Sign-offs committed up front: T-0 passes while the image is still being built.
	c := newChecklist(ns, withSignOff)
	create(t, c)
	holding := waitPhase(t, c, deployv1alpha1.PhaseHolding)
	g.Expect(holding.Status.NextAction).To(HavePrefix("T-0 passed: waiting for the new template"))

	// An incident freeze is declared.
	cf := &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "inc-4212"},
		Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "INC-4212 payments degraded",
			Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(time.Now().Add(-time.Hour))),
				End: new(metav1.NewTime(time.Now().Add(time.Hour)))}}},
	}
	g.Expect(bed.Client.Create(ctx, cf)).To(Succeed())
	g.Eventually(func(g Gomega) {
		frozen := condition(g, c, checklist.CondFrozen)
		g.Expect(frozen.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(frozen.Message).To(ContainSubstring("ChangeFreeze " + ns + "/inc-4212 (INC-4212 payments degraded)"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	waitPaused(t, d)

	// The image lands in the freeze: it is the candidate, held, and does not roll.
	setImage(t, d, "checkout:v2")
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
		g.Expect(cur.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
		g.Expect(condition(g, c, checklist.CondReady).Reason).To(Equal(checklist.ReasonFrozen))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func() []string { return rolledImages(t, ns) }, 2*time.Second, 200*time.Millisecond).
		ShouldNot(ContainElement("checkout:v2"))
	g.Expect(getDeployment(t, d).Spec.Paused).To(BeTrue())

	// The freeze is lifted: v2 is released, rolls out and is verified.
	g.Expect(bed.Client.Delete(ctx, cf)).To(Succeed())
	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	waitRunning(t, d, "checkout:v2")
	g.Expect(meta.FindStatusCondition(done.Status.Conditions, checklist.CondFrozen).Reason).To(Equal(checklist.ReasonNotFrozen))
}

func TestAFreezeWhoseSelectorCannotBeReadHoldsTheReleaseAndSaysWhy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	g.Expect(bed.Client.Create(ctx, &deployv1alpha1.ChangeFreeze{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "holidays"},
		Spec: deployv1alpha1.ChangeFreezeSpec{Reason: "holiday freeze",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier frontend": "web"}},
			Windows: []deployv1alpha1.FreezeWindow{{Start: new(metav1.NewTime(time.Now().Add(-time.Hour))),
				End: new(metav1.NewTime(time.Now().Add(24 * time.Hour)))}}},
	})).To(Succeed())

	c := newChecklist(ns)
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")
	approve(t, c, "deployment-lead", "alice for v2")
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		frozen := meta.FindStatusCondition(cur.Status.Conditions, checklist.CondFrozen)
		g.Expect(frozen).NotTo(BeNil())
		g.Expect(frozen.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(frozen.Message).To(ContainSubstring("ChangeFreeze " + ns + "/holidays (holiday freeze) cannot be read, and holds " +
			"until it is fixed: selector: "))
		g.Expect(frozen.Message).To(ContainSubstring(`"tier frontend"`))
		g.Expect(cur.Status.Phase).To(Equal(deployv1alpha1.PhaseHolding))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(getDeployment(t, d).Spec.Paused).To(BeTrue())
	g.Expect(rolledImages(t, ns)).NotTo(ContainElement("checkout:v2"))
}

func TestAFreezeSelectorWithAnOperatorOrValuesOfTheWrongFormIsRefusedNamingTheField(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	windows := []deployv1alpha1.FreezeWindow{{Cron: "0 9 * * *", Duration: "1h"}}
	for _, tc := range []struct {
		req  metav1.LabelSelectorRequirement
		want string
	}{
		{req: metav1.LabelSelectorRequirement{Key: "tier", Operator: "in", Values: []string{"web"}},
			want: "spec.selector: Invalid value: matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"},
		{req: metav1.LabelSelectorRequirement{Key: "tier", Operator: metav1.LabelSelectorOpIn},
			want: "spec.selector: Invalid value: matchExpressions: In and NotIn need at least one value"},
		{req: metav1.LabelSelectorRequirement{Key: "tier", Operator: metav1.LabelSelectorOpExists, Values: []string{"web"}},
			want: "Exists and DoesNotExist take none"},
	} {
		sel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{tc.req}}
		err := bed.Client.Create(context.Background(), &deployv1alpha1.ChangeFreeze{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
			Spec:       deployv1alpha1.ChangeFreezeSpec{Reason: "r", Windows: windows, Selector: sel},
		})
		g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		err = bed.Client.Create(context.Background(), &deployv1alpha1.ClusterChangeFreeze{
			ObjectMeta: metav1.ObjectMeta{Name: "bad-" + ns},
			Spec: deployv1alpha1.ClusterChangeFreezeSpec{NamespaceSelector: sel,
				ChangeFreezeSpec: deployv1alpha1.ChangeFreezeSpec{Reason: "r", Windows: windows}},
		})
		g.Expect(err).To(MatchError(ContainSubstring(strings.Replace(tc.want, "spec.selector", "spec.namespaceSelector", 1))))
	}
}
