package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/templates"
	"github.com/tminus-dev/tminus/test/testbed"
)

// validChecklist is a small checklist the API server accepts; each case breaks one field.
func validChecklist(name string) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision: "v2.7.0",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.monitoring.svc:9090"},
				Metrics: []deployv1alpha1.MetricSpec{
					{Name: "error-rate", Query: `sum(rate(http_requests_total{code=~"5.."}[5m]))`},
				},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-60m", At: "-60m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "baseline-errors", Metric: "error-rate", Below: new("0.01")},
						{Name: "deployment-lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
					}},
					{Name: "T+5m", At: "5m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "health", HTTP: &deployv1alpha1.HTTPCheck{URL: "http://checkout.shop.svc/health"}},
					}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{
					{Name: "errors-5pct", Metric: "error-rate", Above: new("0.05"), For: "2m"},
				},
			},
		},
	}
}

func TestAPIServerRefusesInvalidChecklistsNamingTheField(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()

	cases := []struct {
		name   string
		mutate func(*deployv1alpha1.DeploymentChecklist)
		// field and message must both appear in the API server's answer.
		field, message string
	}{
		{"check with two kinds", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[1].HTTP = &deployv1alpha1.HTTPCheck{URL: "http://x/health"}
		}, "spec.phases[0].checks[1]", "set exactly one of metric, approval, job and http"},
		{"check with no kind", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[1].Approval = nil
		}, "spec.phases[0].checks[1]", "set exactly one of metric, approval, job and http"},
		{"metric check names an undefined metric", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[0].Metric = "latency"
		}, "spec", "spec.phases[].checks[].metric must name a metric defined in spec.metrics"},
		{"metric check without a threshold", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[0].Below = nil
		}, "spec.phases[0].checks[0]", "a metric check needs below, above, belowBaseline or aboveBaseline"},
		{"a baseline before T-0", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[0].BelowBaseline = new("1.2")
		}, "spec.phases[0]", "belowBaseline, aboveBaseline and after are for T-plus phases (at > 0)"},
		{"a grace period at T-0", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].At = "0"
			c.Spec.Phases[0].Checks[0].After = "5m"
		}, "spec.phases[0]", "belowBaseline, aboveBaseline and after are for T-plus phases (at > 0)"},
		{"a ratio of nothing", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks,
				deployv1alpha1.CheckSpec{Name: "p95", Metric: "error-rate", BelowBaseline: new("0")})
		}, "spec.phases[1].checks[1].belowBaseline", "must be a decimal ratio greater than 0"},
		{"baseline ratios no value can satisfy", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks, deployv1alpha1.CheckSpec{Name: "p95",
				Metric: "error-rate", BelowBaseline: new("1.2"), AboveBaseline: new("1.5")})
		}, "spec.phases[1].checks[1]", "aboveBaseline must be less than belowBaseline"},
		{"a grace period on a sign-off", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks, deployv1alpha1.CheckSpec{Name: "ops",
				Approval: &deployv1alpha1.ApprovalCheck{Role: "ops"}, After: "1m"})
		}, "spec.phases[1].checks[1]", "after applies only to metric and http checks"},
		{"a trigger band of ratios that always fires", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].BelowBaseline = new("2")
			c.Spec.RollbackTriggers[0].AboveBaseline = new("1.5")
		}, "spec.rollbackTriggers[0]", "belowBaseline must be less than aboveBaseline"},
		{"a trigger grace period that is not a duration", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].After = "five minutes"
		}, "spec.rollbackTriggers[0].after", "should match"},
		{"threshold given as a percentage", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[0].Below = new("1%")
		}, "spec.phases[0].checks[0].below", "must be a decimal number in a string"},
		{"threshold on a non-metric check", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[1].Above = new("1")
		}, "spec.phases[0].checks[1]", "below, above, belowBaseline and aboveBaseline apply only to a metric check"},
		{"bounds no value can satisfy", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[0].Above = new("0.5")
		}, "spec.phases[0].checks[0]", "above must be less than below"},
		{"at is not a duration", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].At = "60 minutes before"
		}, "spec.phases[0].at", "must be a signed Go duration"},
		{"check name is not a DNS label", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[0].Name = "Baseline_Errors"
		}, "spec.phases[0].checks[0].name", "should match"},
		{"duplicate check names in a phase", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[1].Name = "baseline-errors"
		}, "spec.phases[0].checks[1]", "Duplicate value"},
		{"duplicate phase names", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[1].Name = "T-60m"
		}, "spec.phases[1]", "Duplicate value"},
		{"phase name unlike the checklist's", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Name = "preflight"
		}, "spec.phases[0].name", "must read like the checklist's own"},
		{"phase name too long", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Name = "T-60m60m60m60m60m"
		}, "spec.phases[0].name", "may not be more than 16"},
		{"approval role is not a DNS label", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[1].Approval.Role = "Security Review"
		}, "spec.phases[0].checks[1].approval.role", "should match"},
		{"approval count of zero", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[1].Approval.Count = -1
		}, "spec.phases[0].checks[1].approval.count", "should be greater than or equal to 1"},
		{"rollback trigger without a condition", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].Metric, c.Spec.RollbackTriggers[0].Above = "", nil
		}, "spec.rollbackTriggers[0]", "set exactly one of metric and http"},
		{"metric trigger without a threshold", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].Above = nil
		}, "spec.rollbackTriggers[0]", "a metric trigger needs above, below, aboveBaseline or belowBaseline"},
		{"trigger names an undefined metric", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].Metric = "p95"
		}, "spec", "spec.rollbackTriggers[].metric must name a metric defined in spec.metrics"},
		{"a template and phases together", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"}
		}, "spec", "set exactly one of templateRef and phases"},
		{"neither a template nor phases", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases, c.Spec.Metrics, c.Spec.RollbackTriggers = nil, nil, nil
		}, "spec", "set exactly one of templateRef and phases"},
		{"a template and metrics of its own", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "ClusterChecklistTemplate", Name: "web-release"}
			c.Spec.Phases, c.Spec.RollbackTriggers = nil, nil
		}, "spec", "with templateRef the checklist's metrics, prometheus and rollbackTriggers come from the template"},
		{"a template of an unknown kind", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.TemplateRef = &deployv1alpha1.TemplateRef{Kind: "Template", Name: "web-release"}
			c.Spec.Phases, c.Spec.Metrics, c.Spec.RollbackTriggers, c.Spec.Prometheus = nil, nil, nil, nil
		}, "spec.templateRef.kind", "Unsupported value"},
		{"a threshold that is neither a number nor a parameter", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[0].Checks[0].Below = new("{{params.budget")
		}, "spec.phases[0].checks[0].below", "must be a decimal number"},
		{"trigger band that every value breaches", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].Above, c.Spec.RollbackTriggers[0].Below = new("0.01"), new("0.05")
		}, "spec.rollbackTriggers[0]", "below must be less than above"},
		{"trigger for is negative", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].For = "-2m"
		}, "spec.rollbackTriggers[0].for", "should match"},
		{"prometheus address without a scheme", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Prometheus.Address = "prometheus.monitoring.svc:9090"
		}, "spec.prometheus.address", "must be an http:// or https:// URL"},
		{"prometheus timeout of zero", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Prometheus.Timeout = "0s"
		}, "spec.prometheus", "spec.prometheus.timeout must be positive"},
		{"prometheus timeout longer than the interval", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Prometheus.Timeout, c.Spec.Interval = "45s", "30s"
		}, "spec", "spec.prometheus.timeout must not exceed spec.interval"},
		{"bearer token and basic auth together", func(c *deployv1alpha1.DeploymentChecklist) {
			ref := deployv1alpha1.SecretKeyRef{Name: "prom", Key: "token"}
			c.Spec.Prometheus.BearerTokenSecretRef = &ref
			c.Spec.Prometheus.BasicAuth = &deployv1alpha1.BasicAuth{Username: ref, Password: ref}
		}, "spec.prometheus", "set at most one of bearerTokenSecretRef and basicAuth"},
		{"metrics without prometheus", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Prometheus = nil
		}, "spec", "spec.prometheus is required when spec.metrics is set"},
		{"http check with an ftp url", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[1].Checks[0].HTTP.URL = "ftp://checkout/health"
		}, "spec.phases[1].checks[0].http.url", "must be an http:// or https:// URL"},
		{"http check expecting status 42", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases[1].Checks[0].HTTP.ExpectStatus = 42
		}, "spec.phases[1].checks[0].http.expectStatus", "should be greater than or equal to 100"},
		{"unknown gate", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Gate = "Hold"
		}, "spec.gate", `Unsupported value: "Hold"`},
		{"unknown onNoData", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Metrics[0].OnNoData = "Ignore"
		}, "spec.metrics[0].onNoData", `Unsupported value: "Ignore"`},
		{"unknown rollback action", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Rollback.Action = "Revert"
		}, "spec.rollback.action", `Unsupported value: "Revert"`},
		{"target kind tminus does not gate", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target.Kind = "ReplicaSet"
		}, "spec.target.kind", `Unsupported value: "ReplicaSet"`},
		{"target without a name", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target.Name = ""
		}, "spec.target.name", "should be at least 1 chars long"},
		{"empty query", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Metrics[0].Query = ""
		}, "spec.metrics[0].query", "should be at least 1 chars long"},
		{"window without deployAt", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Window = "30m"
		}, "spec", "spec.window applies only with spec.deployAt"},
		{"interval below one second", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Interval = "500ms"
		}, "spec.interval", "spec.interval must be at least 1s"},
		{"more phases than status can hold", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases = nil
			for i := range deployv1alpha1.MaxPhases + 1 {
				c.Spec.Phases = append(c.Spec.Phases, deployv1alpha1.PhaseSpec{
					Name: fmt.Sprintf("T+%dm", i+1), At: fmt.Sprintf("%dm", i+1),
					Checks: []deployv1alpha1.CheckSpec{{Name: "ok", Approval: &deployv1alpha1.ApprovalCheck{Role: "ops"}}},
				})
			}
		}, "spec.phases", "must have at most 16 items"},
		{"header with both value and secret", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Prometheus.Headers = []deployv1alpha1.HTTPHeader{{
				Name: "X-Scope-OrgID", Value: "shop",
				SecretKeyRef: &deployv1alpha1.SecretKeyRef{Name: "prom", Key: "tenant"},
			}}
		}, "spec.prometheus.headers[0]", "set exactly one of value and secretKeyRef"},
		{"a runbook that is not an http(s) URL", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Runbooks = []deployv1alpha1.Runbook{{Title: "Sentry", URL: "javascript:alert(1)"}}
		}, "spec.runbooks[0].url", "must be an http:// or https:// URL with a host"},
		{"a runbook without a title", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Runbooks = []deployv1alpha1.Runbook{{URL: "https://sentry.io"}}
		}, "spec.runbooks[0].title", "should be at least 1 chars long"},
		{"two runbooks of one title", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Runbooks = []deployv1alpha1.Runbook{{Title: "Sentry", URL: "https://sentry.io"},
				{Title: "Sentry", URL: "https://sentry.io/2"}}
		}, "spec.runbooks[1]", "Duplicate value"},
		{"a contact without a way to reach them", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Contacts = []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "Dana"}}
		}, "spec.contacts[0].reach", "should be at least 1 chars long"},
		{"a contact's name too long", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Contacts = []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: strings.Repeat("d", 129), Reach: "+1 555 0199"}}
		}, "spec.contacts[0].name", "may not be more than 128"},
		{"two contacts of one role", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Contacts = []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "Dana", Reach: "+1 555 0199"},
				{Role: "On-Call Engineer", Name: "Sam", Reach: "+1 555 0100"}}
		}, "spec.contacts[1]", "Duplicate value"},
		{"seventeen contacts", func(c *deployv1alpha1.DeploymentChecklist) {
			for i := range 17 {
				c.Spec.Contacts = append(c.Spec.Contacts, deployv1alpha1.Contact{Role: fmt.Sprintf("role-%d", i), Name: "n", Reach: "r"})
			}
		}, "spec.contacts", "must have at most 16 items"},
		{"no target at all", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
		}, "spec", "spec.targets: name the workloads of the release (or the one in spec.target)"},
		{"target and targets together", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Targets = twoTargets()
		}, "spec", "spec.targets: set spec.target (one workload) or spec.targets (a list), not both"},
		{"the same workload twice", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
			c.Spec.Targets = append(twoTargets(), deployv1alpha1.TargetRef{Kind: "Deployment", Name: "frontend"})
		}, "spec.targets", "spec.targets: each name may appear only once, whatever the kind"},
		{"a Deployment and a StatefulSet of the same name", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
			c.Spec.Targets = append(twoTargets(), deployv1alpha1.TargetRef{Kind: "StatefulSet", Name: "frontend"})
		}, "spec.targets", "spec.targets: each name may appear only once, whatever the kind"},
		{"more than 16 targets", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
			for i := range 17 {
				c.Spec.Targets = append(c.Spec.Targets, deployv1alpha1.TargetRef{Name: fmt.Sprintf("svc-%d", i)})
			}
		}, "spec.targets", "must have at most 16 items"},
		{"an empty list of targets", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
			c.Spec.Targets = []deployv1alpha1.TargetRef{}
		}, "spec", "spec.targets: name the workloads of the release"},
		{"a target of a kind not supported yet", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
			c.Spec.Targets = append(twoTargets(), deployv1alpha1.TargetRef{Kind: "CronJob", Name: "nightly"})
		}, "spec.targets[2].kind", "Unsupported value"},
		{"a release order that does not exist", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
			c.Spec.Targets = twoTargets()
			c.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: "BackendFirst"}
		}, "spec.release.order", "Unsupported value"},
		{"a check judging a target not in the release", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Target = nil
			c.Spec.Targets = twoTargets()
			c.Spec.Phases[0].Checks[0].Target = "payments"
		}, "spec", "spec.phases[].checks[].target must name a target of spec.targets"},
		{"a trigger judging a target not in the release", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.RollbackTriggers[0].Target = "payments"
		}, "spec", "spec.rollbackTriggers[].target must name a target of spec.targets"},
		{"steps on a Deployment", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Release = &deployv1alpha1.ReleaseSpec{Steps: []deployv1alpha1.ReleaseStep{{Pods: intstr.FromInt32(1), Phase: "T+5m"}}}
		}, "spec", "spec.release.steps: steps expose pods by a StatefulSet's partition; every target must be a StatefulSet"},
		{"a step judged by a T-minus phase", func(c *deployv1alpha1.DeploymentChecklist) {
			inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(1), Phase: "T-60m"})
		}, "spec", "spec.release.steps[].phase must name a T-plus phase (at > 0) of spec.phases"},
		{"a step judged by a phase that does not exist", func(c *deployv1alpha1.DeploymentChecklist) {
			inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(1), Phase: "T+1h"})
		}, "spec", "spec.release.steps[].phase must name a T-plus phase (at > 0) of spec.phases"},
		{"two steps judged by one phase", func(c *deployv1alpha1.DeploymentChecklist) {
			inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(1), Phase: "T+5m"},
				deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(2), Phase: "T+5m"})
		}, "spec.release.steps", "spec.release.steps[].phase: each phase may follow one step only"},
		{"steps whose pods decrease", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.Phases = append(c.Spec.Phases, deployv1alpha1.PhaseSpec{Name: "T+10m", At: "10m", Checks: c.Spec.Phases[1].Checks})
			inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(2), Phase: "T+5m"},
				deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(1), Phase: "T+10m"})
		}, "spec.release.steps", "spec.release.steps[].pods must increase from one step to the next"},
		{"a step of no pods", func(c *deployv1alpha1.DeploymentChecklist) {
			inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(0), Phase: "T+5m"})
		}, "spec.release.steps[0].pods", "spec.release.steps[].pods must be a pod count of at least 1 or a percentage"},
		{"a step of 150%", func(c *deployv1alpha1.DeploymentChecklist) {
			inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromString("150%"), Phase: "T+5m"})
		}, "spec.release.steps[0].pods", "spec.release.steps[].pods must be a pod count of at least 1 or a percentage"},
		{"steps released in sequence", func(c *deployv1alpha1.DeploymentChecklist) {
			inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(1), Phase: "T+5m"})
			c.Spec.Release.Order = deployv1alpha1.ReleaseSequential
		}, "spec", "spec.release.steps: a release in steps releases its targets Together"},
		{"a history limit of none", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.HistoryLimit = new(int32(0))
		}, "spec.historyLimit", "should be greater than or equal to 1"},
		{"a history limit past a thousand", func(c *deployv1alpha1.DeploymentChecklist) {
			c.Spec.HistoryLimit = new(int32(1001))
		}, "spec.historyLimit", "should be less than or equal to 1000"},
	}

	g := NewWithT(t)
	g.Expect(bed.Client.Create(ctx, validChecklist("valid"))).To(Succeed(), "the base case must be valid")

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := validChecklist(fmt.Sprintf("invalid-%d", i))
			tc.mutate(obj)
			err := bed.Client.Create(ctx, obj)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid checklist")
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.field), "error must name the field")
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}
}

func TestSeedChecklistSampleIsAcceptedWithDefaults(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)

	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", "deploy_v1alpha1_deploymentchecklist.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var sample deployv1alpha1.DeploymentChecklist
	g.Expect(yaml.UnmarshalStrict(raw, &sample)).To(Succeed())
	sample.Namespace = "default"
	g.Expect(bed.Client.Create(ctx, &sample)).To(Succeed())

	var got deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(ctx, keyOf(&sample), &got)).To(Succeed())
	// The seed checklist's blocks, sign-offs and rollback triggers all made it.
	names := make([]string, 0, len(got.Spec.Phases))
	var roles []string
	for _, p := range got.Spec.Phases {
		names = append(names, p.Name)
		for _, c := range p.Checks {
			if c.Approval != nil {
				roles = append(roles, c.Approval.Role)
				g.Expect(c.Approval.Count).To(BeEquivalentTo(1), "approval count defaults to 1")
			}
			if c.HTTP != nil {
				g.Expect(c.HTTP.Timeout).To(Equal("5s"), "http timeout defaults to 5s")
			}
		}
	}
	g.Expect(names).To(Equal([]string{"T-60m", "T-30m", "T-15m", "T-0", "T+5m", "T+15m", "T+30m", "T+60m"}))
	g.Expect(roles).To(ConsistOf("deployment-lead", "technical-review", "security-review", "operations"))
	g.Expect(got.Spec.RollbackTriggers).To(HaveLen(4))
	g.Expect(got.Spec.Rollback.Action).To(Equal(deployv1alpha1.RollbackUndo))
	g.Expect(got.Spec.Gate).To(Equal(deployv1alpha1.GatePause))
	g.Expect(got.Spec.ConsecutiveErrorLimit).To(BeEquivalentTo(4))
	g.Expect(got.Spec.Prometheus.Timeout).To(Equal("10s"))
}

func TestDefaultsAreFilledInByTheAPIServer(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)

	c := validChecklist("defaults")
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	var got deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(ctx, keyOf(c), &got)).To(Succeed())
	g.Expect(got.Spec.Gate).To(Equal(deployv1alpha1.GatePause))
	g.Expect(got.Spec.Interval).To(Equal("30s"))
	g.Expect(got.Spec.Metrics[0].OnNoData).To(Equal(deployv1alpha1.NoDataHold))
	g.Expect(got.Spec.Rollback.Action).To(Equal(deployv1alpha1.RollbackUndo))
	g.Expect(got.Spec.Phases[1].Checks[0].HTTP.ExpectStatus).To(BeEquivalentTo(200))
	g.Expect(strings.ToLower(got.Spec.Target.Kind)).To(Equal("deployment"))

	// A short interval without a timeout is accepted: the timeout follows the interval.
	short := validChecklist("short-interval")
	short.Spec.Interval = "5s"
	g.Expect(bed.Client.Create(ctx, short)).To(Succeed())
}

func keyOf(c *deployv1alpha1.DeploymentChecklist) types.NamespacedName {
	return types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
}

// twoTargets is a two-tier release: the frontend and its backend.
func twoTargets() []deployv1alpha1.TargetRef {
	return []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "frontend"}, {Kind: "Deployment", Name: "backend"}}
}

// TestAReleaseOfSeveralTargetsIsAcceptedAndCannotChangeItsTargets: spec.targets names
// the workloads of one release (kind defaulted); the list cannot change, nor turn into
// spec.target and back, since the checklist records each target's pre-deploy template.
func TestAReleaseOfSeveralTargetsIsAcceptedAndCannotChangeItsTargets(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)

	c := validChecklist("two-tier")
	c.Spec.Target = nil
	c.Spec.Targets = []deployv1alpha1.TargetRef{{Name: "frontend"}, {Name: "backend"}}
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	var got deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(ctx, keyOf(c), &got)).To(Succeed())
	g.Expect(got.Spec.Targets).To(Equal(twoTargets()), "kind defaults to Deployment")
	g.Expect(got.Spec.TargetNames()).To(Equal([]string{"frontend", "backend"}))

	got.Spec.Targets = got.Spec.Targets[:1]
	err := bed.Client.Update(ctx, &got)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.targets is immutable: create a new checklist for other workloads"))

	g.Expect(bed.Client.Get(ctx, keyOf(c), &got)).To(Succeed())
	got.Spec.Targets, got.Spec.Target = nil, &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "frontend"}
	err = bed.Client.Update(ctx, &got)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.target and spec.targets cannot replace each other"))
}

func TestTheTargetAndTheGateOfAChecklistCannotBeChanged(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)

	c := validChecklist("immutable-target")
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	c.Spec.Target.Name = "another"
	err := bed.Client.Update(ctx, c)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.target is immutable: create a new checklist for another Deployment"))

	// Nor its gate: what tminus paused and must undo depends on it.
	var got deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(ctx, keyOf(c), &got)).To(Succeed())
	got.Spec.Gate = deployv1alpha1.GateObserve
	err = bed.Client.Update(ctx, &got)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.gate: Invalid value"))
	g.Expect(err.Error()).To(ContainSubstring("spec.gate is immutable"))

	// Everything else in the spec may still change.
	g.Expect(bed.Client.Get(ctx, keyOf(c), &got)).To(Succeed())
	got.Spec.Interval = "1m"
	g.Expect(bed.Client.Update(ctx, &got)).To(Succeed())
}

func TestATriggerBandFiresOutsideItsBounds(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	c := validChecklist("band")
	c.Spec.RollbackTriggers[0].Above, c.Spec.RollbackTriggers[0].Below = new("0.9"), new("0.1")
	NewWithT(t).Expect(bed.Client.Create(context.Background(), c)).To(Succeed(), "fires below 0.1 or above 0.9")
}

func TestTemplatesAreValidatedAsFarAsTheirParametersAllow(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)
	template := func(name string, mutate func(*deployv1alpha1.ChecklistBody)) *deployv1alpha1.ClusterChecklistTemplate {
		body := validChecklist(name).Spec.ChecklistBody
		mutate(&body)
		return &deployv1alpha1.ClusterChecklistTemplate{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: deployv1alpha1.ChecklistTemplateSpec{
				Parameters: []deployv1alpha1.TemplateParameter{{Name: "budget", Default: new("0.01")}, {Name: "soak"}, {Name: "service"}},
				Template:   body,
			}}
	}
	// Parameters may stand for thresholds, durations, URLs and queries.
	g.Expect(bed.Client.Create(ctx, template("params", func(b *deployv1alpha1.ChecklistBody) {
		b.Phases[0].Checks[0].Below = new("{{params.budget}}")
		b.Phases[1].At = "{{params.soak}}"
		b.Interval = "{{params.soak}}"
		b.Phases[1].Checks[0].HTTP.URL = "http://{{params.service}}.shop.svc/health"
		b.Metrics[0].Query = `rate(x{app="{{params.service}}"}[5m])`
		b.Contacts = []deployv1alpha1.Contact{{Role: "On-Call Engineer", Name: "{{params.service}}", Reach: "{{params.service}}"}}
		b.Runbooks = []deployv1alpha1.Runbook{{Title: "Health", URL: "{{params.service}}/health"}}
	}))).To(Succeed())

	for _, tc := range []struct {
		name           string
		mutate         func(*deployv1alpha1.ChecklistBody)
		field, message string
	}{
		{"bad-at", func(b *deployv1alpha1.ChecklistBody) { b.Phases[0].At = "60 minutes" },
			"spec.template.phases[0].at", "must be a signed Go duration"},
		{"bad-threshold", func(b *deployv1alpha1.ChecklistBody) { b.Phases[0].Checks[0].Below = new("one percent") },
			"spec.template.phases[0].checks[0].below", "must be a decimal number"},
		{"no-phases", func(b *deployv1alpha1.ChecklistBody) { b.Phases = nil },
			"spec", "spec.template.phases is required"},
		{"bad-metric-ref", func(b *deployv1alpha1.ChecklistBody) { b.Phases[0].Checks[0].Metric = "p95" },
			"spec.template", "must name a metric defined in spec.metrics"},
		{"bad-runbook", func(b *deployv1alpha1.ChecklistBody) {
			b.Runbooks = []deployv1alpha1.Runbook{{Title: "Console", URL: "ftp://console.example"}}
		}, "spec.template.runbooks[0].url", "must be an http:// or https:// URL with a host"},
		{"contact-without-role", func(b *deployv1alpha1.ChecklistBody) {
			b.Contacts = []deployv1alpha1.Contact{{Name: "Dana", Reach: "+1 555 0199"}}
		}, "spec.template.contacts[0].role", "should be at least 1 chars long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := bed.Client.Create(ctx, template(tc.name, tc.mutate))
			g.Expect(err).To(HaveOccurred())
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.field))
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}
}

// TestTheReadmeTourIsAcceptedAndResolves keeps the README's first example true: the
// API server takes its template and its ten-line release, and the release resolves.
func TestTheReadmeTourIsAcceptedAndResolves(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)

	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	g.Expect(err).NotTo(HaveOccurred())
	_, tour, ok := strings.Cut(string(readme), "## A short tour")
	g.Expect(ok).To(BeTrue(), "README has a tour")
	_, block, ok := strings.Cut(tour, "```yaml\n")
	g.Expect(ok).To(BeTrue(), "the tour opens with YAML")
	block, _, _ = strings.Cut(block, "```")
	docs := strings.Split(block, "\n---\n")
	g.Expect(docs).To(HaveLen(2), "a template and a release")

	var tmpl deployv1alpha1.ClusterChecklistTemplate
	var dcl deployv1alpha1.DeploymentChecklist
	g.Expect(yaml.UnmarshalStrict([]byte(docs[0]), &tmpl)).To(Succeed())
	g.Expect(yaml.UnmarshalStrict([]byte(docs[1]), &dcl)).To(Succeed())
	dcl.Namespace = "default"
	g.Expect(bed.Client.Create(ctx, &tmpl)).To(Succeed())
	g.Expect(bed.Client.Create(ctx, &dcl)).To(Succeed())

	body, _, err := templates.Resolve(&dcl, templates.From(&tmpl))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*body.Phases[1].Checks[0].Below).To(Equal("0.01"), "errorBudget's default")
	g.Expect(body.Metrics[0].Query).To(ContainSubstring(`app="checkout"`), "{{target}} filled in")
	resolved := dcl.DeepCopy()
	resolved.Spec.ChecklistBody = body
	g.Expect(checklist.Validate(&resolved.Spec)).To(Succeed())
}

func TestBaselineRatiosAndGracePeriodsAreAcceptedAfterT0(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	g := NewWithT(t)
	c := validChecklist("relative")
	c.Spec.Phases[1].Checks = append(c.Spec.Phases[1].Checks,
		deployv1alpha1.CheckSpec{Name: "p95", Metric: "error-rate", BelowBaseline: new("1.5"), After: "5m"},
		deployv1alpha1.CheckSpec{Name: "throughput", Metric: "error-rate", AboveBaseline: new("0.8"), Below: new("2")})
	c.Spec.RollbackTriggers = append(c.Spec.RollbackTriggers, deployv1alpha1.RollbackTrigger{
		Name: "p95-regression", Metric: "error-rate", AboveBaseline: new("1.5"), After: "5m", For: "1m"})
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
}

// TestTheSeedTemplateSampleAndItsReleaseAreAcceptedWithTheSeedsContactsAndRunbooks keeps
// config/samples' seed template (what make demo applies) acceptable to the API server,
// and its emergency contacts and runbook links resolving with their defaults.
func TestTheSeedTemplateSampleAndItsReleaseAreAcceptedWithTheSeedsContactsAndRunbooks(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)
	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	var tmpl deployv1alpha1.ClusterChecklistTemplate
	var dcl deployv1alpha1.DeploymentChecklist
	for file, obj := range map[string]any{
		"deploy_v1alpha1_clusterchecklisttemplate.yaml":          &tmpl,
		"deploy_v1alpha1_deploymentchecklist_from_template.yaml": &dcl,
	} {
		raw, err := os.ReadFile(filepath.Join(root, "config", "samples", file))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(yaml.UnmarshalStrict(raw, obj)).To(Succeed(), file)
	}
	dcl.Namespace = "default"
	g.Expect(bed.Client.Create(ctx, &tmpl)).To(Succeed())
	g.Expect(bed.Client.Create(ctx, &dcl)).To(Succeed())

	body, _, err := templates.Resolve(&dcl, templates.From(&tmpl))
	g.Expect(err).NotTo(HaveOccurred())
	roles := make([]string, 0, len(body.Contacts))
	for _, c := range body.Contacts {
		roles = append(roles, c.Role)
	}
	g.Expect(roles).To(Equal([]string{"On-Call Engineer", "DevOps Lead", "Security Team", "Engineering Manager"}))
	g.Expect(body.Runbooks).To(HaveLen(6))
	g.Expect(body.Runbooks[1]).To(Equal(deployv1alpha1.Runbook{Title: "Metrics", URL: "http://checkout.default.svc/metrics"}))
}

// inSteps makes the checklist release StatefulSet db in the given steps.
func inSteps(c *deployv1alpha1.DeploymentChecklist, steps ...deployv1alpha1.ReleaseStep) {
	c.Spec.Target = &deployv1alpha1.TargetRef{Kind: deployv1alpha1.KindStatefulSet, Name: "db"}
	c.Spec.Release = &deployv1alpha1.ReleaseSpec{Steps: steps}
}

func TestAReleaseInStepsOfAStatefulSetAndTheStatefulSetSampleAreAccepted(t *testing.T) {
	bed := testbed.New(t, testbed.Options{})
	ctx := context.Background()
	g := NewWithT(t)
	c := validChecklist("db-in-steps")
	c.Spec.Phases = append(c.Spec.Phases, deployv1alpha1.PhaseSpec{Name: "T+10m", At: "10m", Checks: c.Spec.Phases[1].Checks})
	inSteps(c, deployv1alpha1.ReleaseStep{Pods: intstr.FromInt32(1), Phase: "T+5m"},
		deployv1alpha1.ReleaseStep{Pods: intstr.FromString("50%"), Phase: "T+10m"})
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())

	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	var tmpl deployv1alpha1.ClusterChecklistTemplate
	var dcl deployv1alpha1.DeploymentChecklist
	for file, obj := range map[string]any{
		"deploy_v1alpha1_clusterchecklisttemplate.yaml":        &tmpl,
		"deploy_v1alpha1_deploymentchecklist_statefulset.yaml": &dcl,
	} {
		raw, err := os.ReadFile(filepath.Join(root, "config", "samples", file))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(yaml.UnmarshalStrict(raw, obj)).To(Succeed(), file)
	}
	dcl.Namespace = "default"
	g.Expect(bed.Client.Create(ctx, &tmpl)).To(Succeed())
	g.Expect(bed.Client.Create(ctx, &dcl)).To(Succeed())
	g.Expect(dcl.Spec.Release.Steps).To(HaveLen(2))
	body, _, err := templates.Resolve(&dcl, templates.From(&tmpl))
	g.Expect(err).NotTo(HaveOccurred())
	resolved := dcl.DeepCopy()
	resolved.Spec.ChecklistBody = body
	g.Expect(checklist.Validate(&resolved.Spec)).To(Succeed(), "the steps name T-plus phases of the template")
	resolved.Spec.Release.Steps[1].Phase = "T-30m"
	g.Expect(checklist.Validate(&resolved.Spec)).To(MatchError(ContainSubstring(
		`spec.release.steps[1].phase: "T-30m" is not a T-plus phase`)))
}
