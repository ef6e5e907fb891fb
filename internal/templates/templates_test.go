package templates

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

func webRelease() *Template {
	return &Template{Kind: "ClusterChecklistTemplate", Name: "web-release", Generation: 3, Spec: deployv1alpha1.ChecklistTemplateSpec{
		Parameters: []deployv1alpha1.TemplateParameter{
			{Name: "errorBudget", Default: new("0.01")},
			{Name: "soak", Default: new("5m")},
			{Name: "service"},
		},
		Template: deployv1alpha1.ChecklistBody{
			Interval:   "30s",
			Prometheus: &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.monitoring.svc:9090"},
			Metrics: []deployv1alpha1.MetricSpec{{Name: "error-rate",
				Query: `sum(rate(http_requests_total{namespace="{{namespace}}",app="{{params.service}}",code=~"5.."}[5m]))`}},
			Phases: []deployv1alpha1.PhaseSpec{
				{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
					{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}}}},
				{Name: "T+5m", At: "{{params.soak}}", Checks: []deployv1alpha1.CheckSpec{
					{Name: "errors", Metric: "error-rate", Below: new("{{params.errorBudget}}")},
					{Name: "health", HTTP: &deployv1alpha1.HTTPCheck{URL: "http://{{params.service}}.{{namespace}}.svc/health"}},
				}},
			},
		},
	}}
}

func release(params map[string]string) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2-8-0", Namespace: "shop"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:      &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision:    "v2.8.0",
			TemplateRef: &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"},
			Parameters:  params,
		},
	}
}

func TestResolvingFillsParametersFromTheChecklistThenTheDefaults(t *testing.T) {
	g := NewWithT(t)
	body, values, err := Resolve(release(map[string]string{"errorBudget": "0.02", "service": "checkout"}), webRelease())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(values).To(Equal(map[string]string{"errorBudget": "0.02", "soak": "5m", "service": "checkout"}))
	g.Expect(*body.Phases[1].Checks[0].Below).To(Equal("0.02"))
	g.Expect(body.Phases[1].At).To(Equal("5m"))
	g.Expect(body.Metrics[0].Query).To(ContainSubstring(`app="checkout"`))
	g.Expect(body.Metrics[0].Query).To(ContainSubstring(`namespace="shop"`), "the release's own variables too")
	g.Expect(body.Phases[1].Checks[1].HTTP.URL).To(Equal("http://checkout.shop.svc/health"))
}

func TestResolutionFailuresNameTheTemplateTheParameterAndTheField(t *testing.T) {
	cases := []struct {
		name   string
		params map[string]string
		tmpl   func(*Template)
		want   []string
	}{
		{"a parameter without a default the checklist does not set", map[string]string{}, nil,
			[]string{"spec.parameters.service", "ClusterChecklistTemplate web-release needs it"}},
		{"an unknown parameter", map[string]string{"service": "checkout", "errorBudegt": "0.02"}, nil,
			[]string{"spec.parameters.errorBudegt", "takes no parameter", "errorBudget, service, soak"}},
		{"a threshold that resolves to abc", map[string]string{"service": "checkout", "errorBudget": "abc"}, nil,
			[]string{"spec.phases[1].checks[0].below", `"abc" is not a decimal number`, `{{params.errorBudget}} = "abc"`}},
		{"a duration that resolves to nothing useful", map[string]string{"service": "checkout", "soak": "soon"}, nil,
			[]string{"spec.phases[1].at", `{{params.soak}} = "soon"`}},
		{"a placeholder the template does not declare", map[string]string{"service": "checkout"},
			func(t *Template) { t.Spec.Template.Phases[0].Checks[0].Approval.Role = "{{params.role}}" },
			[]string{"spec.phases[0].checks[0].approval.role", "uses {{params.role}}, which it does not declare"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			tmpl := webRelease()
			if tc.tmpl != nil {
				tc.tmpl(tmpl)
			}
			_, _, err := Resolve(release(tc.params), tmpl)
			g.Expect(err).To(HaveOccurred())
			var re *Error
			g.Expect(err).To(BeAssignableToTypeOf(re))
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

func TestAValueIsNeverSubstitutedAgain(t *testing.T) {
	g := NewWithT(t)
	tmpl := webRelease()
	tmpl.Spec.Template.Metrics[0].Query = `x{a="{{params.service}}"} + {{params.{{params.service}}}}`
	body, _, err := Resolve(release(map[string]string{"service": "{{params.errorBudget}}"}), tmpl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(body.Metrics[0].Query).To(Equal(`x{a="{{params.errorBudget}}"} + {{params.{{params.errorBudget}}}}`))
}

func TestAChecklistOfItsOwnMayUseParametersToo(t *testing.T) {
	g := NewWithT(t)
	dcl := release(map[string]string{"budget": "0.05"})
	dcl.Spec.TemplateRef = nil
	dcl.Spec.ChecklistBody = webRelease().Spec.Template
	dcl.Spec.Phases[1].At, dcl.Spec.Phases[1].Checks = "5m", dcl.Spec.Phases[1].Checks[:1]
	dcl.Spec.Metrics[0].Query = "errors"
	dcl.Spec.Phases[1].Checks[0].Below = new("{{params.budget}}")
	eff, err := Effective(dcl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*eff.Spec.Phases[1].Checks[0].Below).To(Equal("0.05"))
	g.Expect(*dcl.Spec.Phases[1].Checks[0].Below).To(Equal("{{params.budget}}"), "the stored checklist is left as written")
}

func TestAResolvedChecklistIsReadFromStatusNotTheTemplate(t *testing.T) {
	g := NewWithT(t)
	dcl := release(map[string]string{"service": "checkout"})
	_, err := Effective(dcl)
	g.Expect(err).To(MatchError(ErrNotResolved))
	body, _, err := Resolve(dcl, webRelease())
	g.Expect(err).NotTo(HaveOccurred())
	dcl.Status.Resolved = Raw(body)
	eff, err := Effective(dcl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(eff.Spec.Phases).To(HaveLen(2))
	g.Expect(eff.Spec.Target.Name).To(Equal("checkout"))
}

func TestAChecklistsOwnContactsAndRunbooksReplaceItsTemplatesOfTheSameRoleAndTitleAndAreReadLive(t *testing.T) {
	g := NewWithT(t)
	tmpl := webRelease()
	tmpl.Spec.Parameters = append(tmpl.Spec.Parameters, deployv1alpha1.TemplateParameter{Name: "onCall", Default: new("web rotation")})
	tmpl.Spec.Template.Contacts = []deployv1alpha1.Contact{
		{Role: "On-Call Engineer", Name: "{{params.onCall}}", Reach: "pager: web-oncall"},
		{Role: "DevOps Lead", Name: "Sam", Reach: "#devops"}}
	tmpl.Spec.Template.Runbooks = []deployv1alpha1.Runbook{{Title: "Health", URL: "http://{{params.service}}.{{namespace}}.svc/health"}}
	dcl := release(map[string]string{"service": "checkout"})
	body, _, err := Resolve(dcl, tmpl)
	g.Expect(err).NotTo(HaveOccurred())
	dcl.Status.Resolved = Raw(body)

	eff, err := Effective(dcl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(eff.Spec.Contacts[0]).To(Equal(deployv1alpha1.Contact{Role: "On-Call Engineer", Name: "web rotation", Reach: "pager: web-oncall"}))
	g.Expect(eff.Spec.Runbooks).To(Equal([]deployv1alpha1.Runbook{{Title: "Health", URL: "http://checkout.shop.svc/health"}}))

	// Once the release is under way, its own on-call engineer and a runbook are written in.
	dcl.Spec.Contacts = []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "Dana", Reach: "+1 555 0199"}}
	dcl.Spec.Runbooks = []deployv1alpha1.Runbook{{Title: "Incident doc", URL: "https://docs.example/incident-42"}}
	eff, err = Effective(dcl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(eff.Spec.Contacts).To(Equal([]deployv1alpha1.Contact{
		{Role: "On-Call Engineer", Name: "Dana", Reach: "+1 555 0199"},
		{Role: "DevOps Lead", Name: "Sam", Reach: "#devops"}}), "the release's on-call replaces the template's; the lead stays")
	g.Expect(eff.Spec.Runbooks).To(Equal([]deployv1alpha1.Runbook{
		{Title: "Incident doc", URL: "https://docs.example/incident-42"},
		{Title: "Health", URL: "http://checkout.shop.svc/health"}}))
	g.Expect(eff.Spec.Phases).To(HaveLen(2), "the rest of the body is still the resolved one")
}

// FuzzSubstitution: whatever the template's strings and the parameter's value, resolution
// never panics, and no parameter's value is substituted as a parameter again (the
// release's own variables, {{namespace}} and the like, are filled in everywhere after).
func FuzzSubstitution(f *testing.F) {
	f.Add(`{{params.a}}`, `0.01`)
	f.Add(`x{{params.a}}{{params.a}}y`, `{{params.a}}`)
	f.Add(`{{params.{{params.a}}}}`, `}}{{`)
	f.Add(`{{params.b}}`, ``)
	f.Fuzz(func(t *testing.T, query, value string) {
		if !utf8.ValidString(query) || !utf8.ValidString(value) {
			return // the API carries JSON strings: valid UTF-8 only
		}
		tmpl := webRelease()
		tmpl.Spec.Parameters = append(tmpl.Spec.Parameters, deployv1alpha1.TemplateParameter{Name: "a"})
		tmpl.Spec.Template.Metrics[0].Query = query
		body, _, err := Resolve(release(map[string]string{"service": "checkout", "a": value}), tmpl)
		if err != nil {
			return
		}
		want := placeholder.ReplaceAllStringFunc(query, func(m string) string {
			if placeholder.FindStringSubmatch(m)[1] == "a" {
				return value
			}
			return map[string]string{"service": "checkout", "errorBudget": "0.01", "soak": "5m"}[placeholder.FindStringSubmatch(m)[1]]
		})
		// Then the release's own variables, in the values too.
		rel := release(nil)
		want = checklist.ResolveQuery(rel, want)
		if !strings.Contains(query, "{{") && body.Metrics[0].Query != query {
			t.Fatalf("a query without placeholders changed: %q -> %q", query, body.Metrics[0].Query)
		}
		if body.Metrics[0].Query != want {
			t.Fatalf("substituted %q with %q: got %q, want %q", query, value, body.Metrics[0].Query, want)
		}
	})
}

func TestTheSampleTemplateAndItsTenLineReleaseResolve(t *testing.T) {
	g := NewWithT(t)
	var tmpl deployv1alpha1.ClusterChecklistTemplate
	var dcl deployv1alpha1.DeploymentChecklist
	for file, obj := range map[string]any{
		"deploy_v1alpha1_clusterchecklisttemplate.yaml":          &tmpl,
		"deploy_v1alpha1_deploymentchecklist_from_template.yaml": &dcl,
	} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", file))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(yaml.UnmarshalStrict(raw, obj)).To(Succeed(), file)
	}
	dcl.Namespace = "shop"
	body, values, err := Resolve(&dcl, From(&tmpl))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(values).To(HaveKeyWithValue("errorBudget", "0.02"))
	g.Expect(body.Phases).To(HaveLen(8))
	g.Expect(*body.Phases[4].Checks[2].Below).To(Equal("0.02"), "T+5m errors")
	g.Expect(body.Phases[4].Checks[0].HTTP.URL).To(Equal("http://checkout.shop.svc/health"))
	g.Expect(body.Prometheus.Address).To(Equal("http://prometheus.monitoring.svc:9090"))
	g.Expect(body.Phases[0].Checks[0].Job.Template.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--tag=pre-v2.8.0"))
	raw, _ := json.Marshal(body)
	// Nothing left unfilled but the released ReplicaSet's hash, known after T-0.
	g.Expect(strings.ReplaceAll(string(raw), "{{podTemplateHash}}", "")).NotTo(ContainSubstring("{{"), "nothing left unfilled")
	g.Expect(body.Metrics[2].Query).To(ContainSubstring(`pod=~"checkout-{{podTemplateHash}}-.*"`))
	// The seed's four emergency contacts and its runbook links, filled in.
	g.Expect(body.Contacts).To(HaveLen(4))
	g.Expect(body.Contacts[0]).To(Equal(deployv1alpha1.Contact{Role: "On-Call Engineer", Name: "web on-call rotation",
		Reach: "pager: web-oncall"}))
	g.Expect(body.Runbooks).To(HaveLen(6))
	g.Expect(body.Runbooks[0]).To(Equal(deployv1alpha1.Runbook{Title: "Health Check", URL: "http://checkout.shop.svc/health"}))
}

func TestARunbookURLFilledInFromAParameterMustBeHTTP(t *testing.T) {
	g := NewWithT(t)
	tmpl := webRelease()
	tmpl.Spec.Parameters = append(tmpl.Spec.Parameters, deployv1alpha1.TemplateParameter{Name: "sentry"})
	tmpl.Spec.Template.Runbooks = []deployv1alpha1.Runbook{{Title: "Sentry", URL: "{{params.sentry}}"}}
	_, _, err := Resolve(release(map[string]string{"service": "checkout", "sentry": "javascript:alert(1)"}), tmpl)
	g.Expect(err).To(MatchError(ContainSubstring(`spec.runbooks[0].url: "javascript:alert(1)" is not an http:// or https:// URL`)))
	g.Expect(err).To(MatchError(ContainSubstring(`{{params.sentry}} = "javascript:alert(1)"`)))
	body, _, err := Resolve(release(map[string]string{"service": "checkout", "sentry": "https://sentry.io/shop"}), tmpl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(body.Runbooks[0].URL).To(Equal("https://sentry.io/shop"))
}

// TestTheTwoTierSampleResolvesWithEachTierJudgedOnItsOwnSeries: the template names its
// targets by role through parameters; resolved for orders-api and orders-web, each check
// and trigger names its tier, and the query keeps {{target}} to be filled in per target
// at measurement. A role given a Deployment outside the release is refused, naming the
// field.
func TestTheTwoTierSampleResolvesWithEachTierJudgedOnItsOwnSeries(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "deploy_v1alpha1_twotier.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	docs := strings.Split(string(raw), "\n---\n")
	g.Expect(docs).To(HaveLen(2))
	var tmpl deployv1alpha1.ClusterChecklistTemplate
	var dcl deployv1alpha1.DeploymentChecklist
	g.Expect(yaml.UnmarshalStrict([]byte(docs[0]), &tmpl)).To(Succeed())
	g.Expect(yaml.UnmarshalStrict([]byte(docs[1]), &dcl)).To(Succeed())
	dcl.Namespace = "shop"
	g.Expect(dcl.Spec.Sequential()).To(BeTrue())

	body, _, err := Resolve(&dcl, From(&tmpl))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(body.Phases[2].Checks[0].Target).To(Equal("orders-api"))
	g.Expect(body.Phases[2].Checks[1].Target).To(Equal("orders-web"))
	g.Expect(body.RollbackTriggers[0].Target).To(Equal("orders-api"))
	g.Expect(body.Metrics[0].Query).To(ContainSubstring(`namespace="shop",pod=~"{{target}}-{{podTemplateHash}}-.*"`))

	dcl.Spec.Parameters["frontend"] = "payments-web"
	_, _, err = Resolve(&dcl, From(&tmpl))
	g.Expect(err).To(MatchError(ContainSubstring(`target: "payments-web" is not a target of the release`)))
}
