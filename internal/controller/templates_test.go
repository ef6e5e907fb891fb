package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/deputy"
	"github.com/tminus-dev/tminus/internal/templates"
)

// webRelease is newChecklist's checklist as a ClusterChecklistTemplate: the error
// budget of T+ a parameter (default 1 %), the verification offset too.
func webRelease(name string) *deployv1alpha1.ClusterChecklistTemplate {
	body := newChecklist("").Spec.ChecklistBody
	body.Phases[1].Name, body.Phases[1].At = "T+5m", "{{params.soak}}"
	body.Phases[1].Checks[0].Below = new("{{params.errorBudget}}")
	return &deployv1alpha1.ClusterChecklistTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: deployv1alpha1.ChecklistTemplateSpec{
			Parameters: []deployv1alpha1.TemplateParameter{
				{Name: "errorBudget", Default: new("0.01")},
				{Name: "soak", Default: new("2s")},
			},
			Template: body,
		},
	}
}

// fromTemplate is the ten-line release of checkout v2 made from the template.
func fromTemplate(ns, tmpl string, params map[string]string) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:      &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision:    "v2",
			TemplateRef: &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: tmpl},
			Parameters:  params,
		},
	}
}

func createTemplate(t *testing.T, tmpl *deployv1alpha1.ClusterChecklistTemplate) {
	t.Helper()
	NewWithT(t).Expect(bed.Client.Create(context.Background(), tmpl)).To(Succeed())
	t.Cleanup(func() { _ = bed.Client.Delete(context.Background(), tmpl) })
}

func threshold(g Gomega, c *deployv1alpha1.DeploymentChecklist, phase, check string) string {
	for _, p := range getChecklist(g, c).Status.Phases {
		if p.Name == phase {
			for _, cr := range p.Checks {
				if cr.Name == check {
					return cr.Threshold
				}
			}
		}
	}
	return ""
}

func TestAChecklistFromAClusterTemplateReleasesAndSucceeds(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	createTemplate(t, webRelease("web-release-"+ns))
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := fromTemplate(ns, "web-release-"+ns, map[string]string{"errorBudget": "0.02"})
	create(t, c)
	waitPaused(t, d)

	cur := getChecklist(g, c)
	g.Expect(cur.Status.Template.Name).To(Equal("web-release-" + ns))
	g.Expect(cur.Status.Template.Generation).To(BeEquivalentTo(1))
	g.Expect(cur.Status.Template.Parameters).To(Equal(map[string]string{"errorBudget": "0.02", "soak": "2s"}))
	eff, err := templates.Effective(cur)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*eff.Spec.Phases[1].Checks[0].Below).To(Equal("0.02"))

	setImage(t, d, "checkout:v2")
	approve(t, c, "deployment-lead", "alice for v2")
	waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(threshold(g, c, "T+5m", "errors")).To(Equal("< 0.02"))
	waitRunning(t, d, "checkout:v2")
}

func TestEditingOrDeletingTheTemplateMidReleaseChangesNothing(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	tmpl := webRelease("web-release-" + ns)
	createTemplate(t, tmpl)
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := fromTemplate(ns, tmpl.Name, map[string]string{"soak": "6s"})
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")
	approve(t, c, "deployment-lead", "alice for v2")
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)

	// The platform team tightens the template, then deletes it.
	g.Eventually(func() error {
		var cur deployv1alpha1.ClusterChecklistTemplate
		if err := bed.Client.Get(context.Background(), client.ObjectKeyFromObject(tmpl), &cur); err != nil {
			return err
		}
		cur.Spec.Parameters[0].Default = new("0.001")
		cur.Spec.Template.RollbackTriggers[0].Above = new("0.002")
		return bed.Client.Update(context.Background(), &cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	// An error rate the edited template would roll back on, and the release's passes.
	metrics.set(errorQuery, 0.004)
	g.Consistently(func(g Gomega) string { return threshold(g, c, "T+5m", "errors") }, 2*time.Second, 200*time.Millisecond).
		Should(Equal("< 0.01"))
	g.Expect(bed.Client.Delete(context.Background(), tmpl)).To(Succeed())
	done := waitPhase(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.Status.Rollback).To(BeNil())
	g.Expect(done.Status.Template.Generation).To(BeEquivalentTo(1), "what it was made from")
}

func TestAMissingTemplateIsStalledNamingItAndTheTargetIsNeverPaused(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := fromTemplate(ns, "not-yet-"+ns, nil)
	create(t, c)
	g.Eventually(func(g Gomega) {
		cond := meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, checklist.CondStalled)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(templates.ReasonTemplateNotFound))
		g.Expect(cond.Message).To(ContainSubstring("spec.templateRef: ClusterChecklistTemplate not-yet-" + ns + " not found"))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func() bool { return getDeployment(t, d).Spec.Paused }, 2*time.Second, 200*time.Millisecond).Should(BeFalse())

	// The template arrives: the checklist starts.
	createTemplate(t, webRelease("not-yet-"+ns))
	waitPaused(t, d)
	g.Expect(meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, checklist.CondStalled)).To(BeNil(),
		"the template arrived: the checklist started")
}

func TestAParameterTheTemplateDoesNotTakeIsStalledNamingIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	createTemplate(t, webRelease("web-release-"+ns))
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := fromTemplate(ns, "web-release-"+ns, map[string]string{"errorBudegt": "0.02"})
	create(t, c)
	g.Eventually(func(g Gomega) string {
		cond := meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, checklist.CondStalled)
		g.Expect(cond).NotTo(BeNil())
		return cond.Message
	}, 30*time.Second, 100*time.Millisecond).Should(ContainSubstring("spec.parameters.errorBudegt: ClusterChecklistTemplate web-release-" + ns + " takes no parameter"))
	g.Consistently(func() bool { return getDeployment(t, d).Spec.Paused }, time.Second, 200*time.Millisecond).Should(BeFalse())
}

// TestATemplateThatArrivesWithAnotherGateThanTheChecklistsStalls: a checklist is
// created (spec.gate Pause, the default) from a template that does not exist yet; a
// template of that name arrives saying gate: Observe. The gate is fixed at creation:
// the checklist stalls naming spec.gate, and never becomes an Observe checklist that
// would switch off the Deployment's gate.
func TestATemplateThatArrivesWithAnotherGateThanTheChecklistsStalls(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := fromTemplate(ns, "later-"+ns, nil)
	create(t, c)
	g.Eventually(func(g Gomega) string {
		cond := meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, checklist.CondStalled)
		g.Expect(cond).NotTo(BeNil())
		return cond.Reason
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(templates.ReasonTemplateNotFound))

	observe := webRelease("later-" + ns)
	observe.Spec.Template.Gate = deployv1alpha1.GateObserve
	createTemplate(t, observe)
	g.Eventually(func(g Gomega) string {
		cond := meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, checklist.CondStalled)
		g.Expect(cond).NotTo(BeNil())
		return cond.Message
	}, 30*time.Second, 100*time.Millisecond).Should(ContainSubstring("spec.gate: this checklist gates with Pause, fixed when it was created, " +
		"but ClusterChecklistTemplate later-" + ns + " now says gate: Observe"))
	g.Expect(getChecklist(g, c).Status.Resolved).To(BeNil(), "nothing resolved, nothing walked")
}

// TestATemplateThatAppearsLaterIsJudgedAsTheChecklistsAuthor: mallory, who may not read
// Secret prom-token, writes a checklist from a template that does not exist yet (the
// webhook records her as its author: here, with no webhook served in this package, the
// test writes the record as the webhook would; internal/webhook pins that nobody else
// can). Someone then creates a template under that name reading Prometheus with the
// token. The checklist resolves what appeared, as mallory: it ends Stalled naming the
// right she lacks, and tminus neither measures nor holds anything for it. Once she is
// granted the right, the same template resolves.
func TestATemplateThatAppearsLaterIsJudgedAsTheChecklistsAuthor(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil, func(r *DeploymentChecklistReconciler) { r.VerifiedApprovals = true })
	c := fromTemplate(ns, "late-"+ns, nil)
	c.Annotations = map[string]string{deputy.AuthorsAnnotation: `[{"user":"mallory","groups":["system:authenticated"]}]`}
	create(t, c)
	stalled := func(g Gomega) *metav1.Condition {
		cond := meta.FindStatusCondition(getChecklist(g, c).Status.Conditions, checklist.CondStalled)
		g.Expect(cond).NotTo(BeNil())
		return cond
	}
	g.Eventually(func(g Gomega) string { return stalled(g).Reason }, 30*time.Second, 100*time.Millisecond).
		Should(Equal(templates.ReasonTemplateNotFound))

	// A template appears under that name, sending the token to its Prometheus.
	tmpl := webRelease("late-" + ns)
	tmpl.Spec.Template.Prometheus.BearerTokenSecretRef = &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}
	createTemplate(t, tmpl)
	g.Eventually(func(g Gomega) {
		cond := stalled(g)
		g.Expect(cond.Reason).To(Equal(deputy.ReasonAuthorNotAllowed))
		g.Expect(cond.Message).To(ContainSubstring(`spec.prometheus.bearerTokenSecretRef: user "mallory" may not get Secret prom-token in namespace ` + ns))
		g.Expect(cond.Message).To(ContainSubstring("ClusterChecklistTemplate late-" + ns))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(getChecklist(g, c).Status.Resolved).To(BeNil(), "nothing resolved into use")
		g.Expect(getDeployment(t, d).Spec.Paused).To(BeFalse())
		metrics.mu.Lock()
		defer metrics.mu.Unlock()
		g.Expect(metrics.queries).To(BeZero(), "no query was sent with the token")
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())

	// Granted the right, mallory's checklist starts on the same template.
	g.Expect(bed.Client.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "prom-token-reader", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"prom-token"}, Verbs: []string{"get"}}},
	})).To(Succeed())
	g.Expect(bed.Client.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "mallory-prom-token", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "prom-token-reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "mallory"}},
	})).To(Succeed())
	NewWithT(t).Eventually(func() bool { return getDeployment(t, d).Spec.Paused }, 3*time.Minute, 200*time.Millisecond).Should(BeTrue(),
		"resolved at the next look (within a minute)")
	g.Expect(getChecklist(g, c).Status.Template.Name).To(Equal("late-" + ns))
}
