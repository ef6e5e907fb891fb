package webhook_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/deputy"
)

// clusterTemplate is checklist()'s body as a ClusterChecklistTemplate reading Prometheus
// with the bearer token in Secret prom-token, its threshold a parameter.
func clusterTemplate(name string) *deployv1alpha1.ClusterChecklistTemplate {
	body := checklist("x").Spec.ChecklistBody
	body.Prometheus = &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.monitoring.svc:9090",
		BearerTokenSecretRef: &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}}
	body.Metrics = []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: "errors"}}
	body.Phases = append(body.Phases, deployv1alpha1.PhaseSpec{Name: "T+5m", At: "5m", Checks: []deployv1alpha1.CheckSpec{
		{Name: "errors", Metric: "error-rate", Below: new("{{params.budget}}")}}})
	return &deployv1alpha1.ClusterChecklistTemplate{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: deployv1alpha1.ChecklistTemplateSpec{
			Parameters: []deployv1alpha1.TemplateParameter{{Name: "budget", Default: new("0.01")}},
			Template:   body,
		}}
}

func fromClusterTemplate(name, tmpl string, params map[string]string) *deployv1alpha1.DeploymentChecklist {
	c := checklist(name)
	c.Spec.ChecklistBody = deployv1alpha1.ChecklistBody{}
	c.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: tmpl}
	c.Spec.Parameters = params
	return c
}

func TestAChecklistFromAMissingTemplateIsRefusedUntilTheTemplateExists(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	err := as(t, "alice").Create(ctx, fromClusterTemplate("tmpl-missing", "web-release-missing", nil))
	g.Expect(err).To(MatchError(ContainSubstring("spec.templateRef: ClusterChecklistTemplate web-release-missing not found: create the template first")))
	g.Expect(bed.Client.Create(ctx, clusterTemplate("web-release-missing"))).To(Succeed())
	g.Expect(as(t, "alice").Create(ctx, fromClusterTemplate("tmpl-missing", "web-release-missing", nil))).To(Succeed())
}

func TestAParameterThatDoesNotFitTheTemplateIsRefusedNamingIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(bed.Client.Create(ctx, clusterTemplate("web-release-params"))).To(Succeed())
	err := as(t, "alice").Create(ctx, fromClusterTemplate("tmpl-abc", "web-release-params", map[string]string{"budget": "abc"}))
	g.Expect(err).To(MatchError(ContainSubstring(`spec.phases[1].checks[0].below: "abc" is not a decimal number`)))
	g.Expect(err).To(MatchError(ContainSubstring(`{{params.budget}} = "abc"`)))
	err = as(t, "alice").Create(ctx, fromClusterTemplate("tmpl-typo", "web-release-params", map[string]string{"budjet": "0.02"}))
	g.Expect(err).To(MatchError(ContainSubstring("spec.parameters.budjet: ClusterChecklistTemplate web-release-params takes no parameter")))
}

func TestATemplatesSecretIsReadInTheChecklistsNamespaceAndOnlyForWhoMayReadIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(bed.Client.Create(ctx, clusterTemplate("web-release-secret"))).To(Succeed())
	err := as(t, "mallory").Create(ctx, fromClusterTemplate("tmpl-m", "web-release-secret", nil))
	g.Expect(err).To(MatchError(ContainSubstring(`spec.prometheus.bearerTokenSecretRef: user "mallory" may not get Secret prom-token in namespace shop`)))
	g.Expect(as(t, "alice").Create(ctx, fromClusterTemplate("tmpl-a", "web-release-secret", nil))).To(Succeed())
}

func TestAStartedReleasesParametersAreFixedAndSayWhereItsValuesAre(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(bed.Client.Create(ctx, clusterTemplate("web-release-fixed"))).To(Succeed())
	dcl := fromClusterTemplate("tmpl-fixed", "web-release-fixed", map[string]string{"budget": "0.02"})
	g.Expect(as(t, "alice").Create(ctx, dcl)).To(Succeed())

	// The release starts: the controller resolves its template and keeps the values.
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Client.Get(ctx, keyOf(dcl), dcl)).To(Succeed())
		g.Expect(dcl.Status.Template).NotTo(BeNil())
		g.Expect(dcl.Status.Template.Parameters).To(HaveKeyWithValue("budget", "0.02"))
	}).Should(Succeed())

	dcl.Spec.Parameters["budget"] = "0.5"
	err := as(t, "alice").Update(ctx, dcl)
	g.Expect(err).To(MatchError(ContainSubstring("spec.templateRef, spec.parameters: fixed once the release has started " +
		"(resolved from ClusterChecklistTemplate web-release-fixed at")))
	g.Expect(err).To(MatchError(ContainSubstring("create a new checklist")))

	// What else a release's owner edits still goes through: a label, a sign-off.
	stored := &deployv1alpha1.DeploymentChecklist{}
	g.Expect(bed.Client.Get(ctx, keyOf(dcl), stored)).To(Succeed())
	g.Expect(stored.Spec.Parameters).To(HaveKeyWithValue("budget", "0.02"), "the refused edit left nothing behind")
	stored.Labels = map[string]string{"team": "checkout"}
	g.Expect(as(t, "alice").Update(ctx, stored)).To(Succeed())
}

// TestTheAuthorsOfATemplatedChecklistAreRecordedAndCannotBeForged: the controller judges
// a template it resolves as the checklist's authors (internal/controller:
// TestATemplateThatAppearsLaterIsJudgedAsTheChecklistsAuthor), so the record is the
// webhook's alone, like a sign-off's.
func TestTheAuthorsOfATemplatedChecklistAreRecordedAndCannotBeForged(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tmpl := clusterTemplate("web-release-plain")
	tmpl.Spec.Template.Prometheus.BearerTokenSecretRef = nil
	g.Expect(bed.Client.Create(ctx, tmpl)).To(Succeed())

	// mallory creates a checklist claiming alice wrote it.
	c := fromClusterTemplate("tmpl-authors", "web-release-plain", nil)
	c.Annotations = map[string]string{deputy.AuthorsAnnotation: `[{"user":"alice"}]`}
	g.Expect(as(t, "mallory").Create(ctx, c)).To(Succeed())
	authors := func() []deputy.Subject {
		a, err := deputy.Authors(annotations(t, "tmpl-authors"))
		g.Expect(err).NotTo(HaveOccurred())
		return a
	}
	g.Expect(authors()).To(ConsistOf(HaveField("User", "mallory")))
	// She cannot rewrite the record, nor remove it.
	g.Expect(annotate(as(t, "mallory"), "tmpl-authors", map[string]string{deputy.AuthorsAnnotation: `[{"user":"alice"}]`})).To(Succeed())
	g.Expect(authors()).To(ConsistOf(HaveField("User", "mallory")))
	g.Expect(annotate(as(t, "mallory"), "tmpl-authors", map[string]string{deputy.AuthorsAnnotation: ""})).To(Succeed())
	g.Expect(authors()).To(ConsistOf(HaveField("User", "mallory")))
}
