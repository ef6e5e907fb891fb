package webhook_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// A right is judged with what decides its use: an editor who changes where a Secret's
// value goes, or what runs as a service account, needs the right as if they had
// written the reference.

// edit applies change to the stored checklist and writes it as c (again when the
// controller wrote the status in between).
func edit(c client.Client, dcl *deployv1alpha1.DeploymentChecklist, change func(*deployv1alpha1.DeploymentChecklist)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur deployv1alpha1.DeploymentChecklist
		if err := bed.Client.Get(context.Background(), keyOf(dcl), &cur); err != nil {
			return err
		}
		change(&cur)
		return c.Update(context.Background(), &cur)
	})
}

// grant creates a Role with rules and binds users to it, and waits until the API
// server's authorizer sees it (RBAC is read from a cache).
func grant(t *testing.T, name string, rules []rbacv1.PolicyRule, users ...string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
	g.Expect(bed.Client.Create(ctx, role)).To(Succeed())
	g.Expect(bed.Client.Create(ctx, binding(name, name, users...))).To(Succeed())
	t.Cleanup(func() {
		_ = bed.Client.Delete(ctx, role)
		_ = bed.Client.Delete(ctx, binding(name, name))
	})
}

func TestAnEditorWhoRepointsTheAddressNeedsTheSecret(t *testing.T) {
	g := NewWithT(t)
	c := checklist("repoint")
	c.Spec.Prometheus = &deployv1alpha1.PrometheusSpec{Address: "https://prometheus.monitoring.svc:9090",
		BearerTokenSecretRef: &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}}
	c.Spec.Metrics = []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: "errors"}}
	c.Spec.Phases[0].Checks = append(c.Spec.Phases[0].Checks, deployv1alpha1.CheckSpec{Name: "errors", Metric: "error-rate", Below: new("0.01")})
	// alice, who may read prom-token, writes the checklist.
	g.Expect(as(t, "alice").Create(context.Background(), c)).To(Succeed())

	// mallory, an editor who may not, points the address at her own server...
	mallory := as(t, "mallory")
	err := edit(mallory, c, func(d *deployv1alpha1.DeploymentChecklist) { d.Spec.Prometheus.Address = "https://mallory.example" })
	g.Expect(err).To(MatchError(ContainSubstring(`spec.prometheus.address changed, and it decides what spec.prometheus.bearerTokenSecretRef ` +
		`makes tminus do: user "mallory" may not get Secret prom-token in namespace shop`)))
	// ...or turns off certificate checks, to answer for the real one...
	err = edit(mallory, c, func(d *deployv1alpha1.DeploymentChecklist) {
		d.Spec.Prometheus.TLS = &deployv1alpha1.TLSConfig{InsecureSkipVerify: true}
	})
	g.Expect(err).To(MatchError(ContainSubstring(`spec.prometheus.tls changed, and it decides what spec.prometheus.bearerTokenSecretRef ` +
		`makes tminus do: user "mallory" may not get Secret prom-token`)))
	// ...or adds a header.
	err = edit(mallory, c, func(d *deployv1alpha1.DeploymentChecklist) {
		d.Spec.Prometheus.Headers = []deployv1alpha1.HTTPHeader{{Name: "X-Scope-OrgID", Value: "mallory"}}
	})
	g.Expect(err).To(MatchError(ContainSubstring(`spec.prometheus.headers changed, and it decides what spec.prometheus.bearerTokenSecretRef ` +
		`makes tminus do: user "mallory" may not get Secret prom-token`)))
	var stored deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), keyOf(c), &stored)).To(Succeed())
	g.Expect(stored.Spec.Prometheus).To(Equal(c.Spec.Prometheus), "nothing of hers was stored")

	// What does not decide where the token goes is hers to edit: a threshold, the timeout.
	g.Expect(edit(mallory, c, func(d *deployv1alpha1.DeploymentChecklist) {
		d.Spec.Phases[0].Checks[1].Below = new("0.02")
		d.Spec.Prometheus.Timeout = "5s"
	})).To(Succeed())
	// alice, who may read the token, may send it elsewhere.
	g.Expect(edit(as(t, "alice"), c, func(d *deployv1alpha1.DeploymentChecklist) {
		d.Spec.Prometheus.Address = "https://thanos.monitoring.svc:9090"
	})).To(Succeed())
}

func TestAnEditorWhoChangesAJobThatRunsAsAServiceAccountNeedsToImpersonateIt(t *testing.T) {
	g := NewWithT(t)
	// alice may run Jobs as backup-sa; erin, an editor, may create Jobs but not act as it.
	grant(t, "impersonate-backup-sa", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts"},
		ResourceNames: []string{"backup-sa"}, Verbs: []string{"impersonate"}}}, "alice")
	grant(t, "erin-edits-and-creates-jobs", []rbacv1.PolicyRule{
		{APIGroups: []string{"deploy.tminus.dev"}, Resources: []string{"deploymentchecklists"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create"}},
	}, "erin")
	c := checklist("backup-job")
	c.Spec.Phases[0].Checks = append(c.Spec.Phases[0].Checks, deployv1alpha1.CheckSpec{
		Name: "backup", Job: &deployv1alpha1.JobCheck{Template: deployv1alpha1.JobTemplate{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "backup-sa", RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "backup", Image: "backup:1", Command: []string{"backup", "--all"}}}}},
		}}},
	})
	g.Eventually(func() error { return as(t, "alice").Create(context.Background(), c) }, time.Minute, 200*time.Millisecond).Should(Succeed())

	// Before the phase opens, erin swaps what the Job runs.
	erin := as(t, "erin")
	g.Eventually(func() error {
		return edit(erin, c, func(d *deployv1alpha1.DeploymentChecklist) {
			d.Spec.Phases[0].Checks[1].Job.Template.Spec.Template.Spec.Containers[0].Image = "erin/exfiltrate:1"
		})
	}, time.Minute, 200*time.Millisecond).Should(MatchError(ContainSubstring(
		`spec.phases[0].checks[1].job.template changed, and it decides what ` +
			`spec.phases[0].checks[1].job.template.spec.template.spec.serviceAccountName makes tminus do: ` +
			`user "erin" may not impersonate ServiceAccount backup-sa (the Job would run as it) in namespace shop`)))
	err := edit(erin, c, func(d *deployv1alpha1.DeploymentChecklist) {
		d.Spec.Phases[0].Checks[1].Job.Template.Spec.Template.Spec.Containers[0].Command = []string{"sh", "-c", "cat /var/run/secrets/*"}
	})
	g.Expect(err).To(MatchError(ContainSubstring(`user "erin" may not impersonate ServiceAccount backup-sa`)))
	// mallory may not even create Jobs: the template is judged for that too.
	err = edit(as(t, "mallory"), c, func(d *deployv1alpha1.DeploymentChecklist) {
		d.Spec.Phases[0].Checks[1].Job.Template.Spec.Template.Spec.Containers[0].Image = "mallory/exfiltrate:1"
	})
	g.Expect(err).To(MatchError(ContainSubstring(`spec.phases[0].checks[1].job.template changed, and it decides what ` +
		`spec.phases[0].checks[1].job makes tminus do: user "mallory" may not create Jobs in namespace shop`)))

	// An edit beside the Job is erin's to make.
	g.Expect(edit(erin, c, func(d *deployv1alpha1.DeploymentChecklist) { d.Spec.Revision = "v3" })).To(Succeed())
}

func TestMovingASignOffAfterT0TakesTheRightToGiveIt(t *testing.T) {
	g := NewWithT(t)
	c := withRoles(checklist("move-sign-off"), "security-review")
	c.Spec.Phases = append(c.Spec.Phases, deployv1alpha1.PhaseSpec{Name: "T+5m", At: "5m", Checks: []deployv1alpha1.CheckSpec{
		{Name: "operations", Approval: &deployv1alpha1.ApprovalCheck{Role: "operations"}}}})
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	// The security sign-off's phase moves to T+5m: the role still counts one sign-off,
	// but T-0 would happen without it.
	moveAfterT0 := func(d *deployv1alpha1.DeploymentChecklist) { d.Spec.Phases[0].At = "5m" }
	err := edit(as(t, "mallory"), c, moveAfterT0)
	g.Expect(err).To(MatchError(ContainSubstring("spec.phases: this change lowers the sign-offs role security-review needs " +
		"before T-0 from 1 to 0 (an approval check in a T-plus phase no longer holds the release)")))
	g.Expect(err).To(MatchError(ContainSubstring(`user "mallory" may not approve role security-review`)))
	g.Expect(edit(as(t, "tess"), c, moveAfterT0)).To(MatchError(ContainSubstring(`user "tess" may not approve role security-review`)))

	// Moving a sign-off within T-minus, or a T-plus one later, weakens nothing.
	g.Expect(edit(as(t, "mallory"), c, func(d *deployv1alpha1.DeploymentChecklist) {
		d.Spec.Phases[0].At = "-1m"
		d.Spec.Phases[1].At = "30m"
	})).To(Succeed())
	// Who may give the sign-off may move it.
	g.Expect(edit(as(t, "alice"), c, moveAfterT0)).To(Succeed())
}
