package webhook_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// The trust model: a sign-off means what it says, and a checklist grants no more than
// its author has.

func withRoles(c *deployv1alpha1.DeploymentChecklist, roles ...string) *deployv1alpha1.DeploymentChecklist {
	c.Spec.Phases[0].Checks = nil
	for _, r := range roles {
		c.Spec.Phases[0].Checks = append(c.Spec.Phases[0].Checks,
			deployv1alpha1.CheckSpec{Name: r, Approval: &deployv1alpha1.ApprovalCheck{Role: r}})
	}
	return c
}

func TestASignOffRightIsGrantedRoleByRole(t *testing.T) {
	g := NewWithT(t)
	g.Expect(bed.Client.Create(context.Background(), withRoles(checklist("roles"), "technical-review", "operations"))).To(Succeed())
	g.Expect(annotate(as(t, "tess"), "roles", map[string]string{"approve.tminus.dev/technical-review": "tess for v2"})).To(Succeed())
	err := annotate(as(t, "tess"), "roles", map[string]string{"approve.tminus.dev/operations": "tess for v2"})
	g.Expect(err).To(MatchError(ContainSubstring(`user "tess" may not approve role operations: it needs the verb "approve" on deploymentchecklists/operations`)))
	g.Expect(annotations(t, "roles")).To(HaveKeyWithValue("verified.approve.tminus.dev/technical-review", "tess for v2 | tess | template none"))
}

func TestRemovingASignOffRequirementTakesTheRightToGiveIt(t *testing.T) {
	g := NewWithT(t)
	c := withRoles(checklist("weaken"), "technical-review", "operations")
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	// edit writes again when the manager wrote the status in between (a refusal is
	// never retried).
	patch := func(user string, roles ...string) error {
		return edit(as(t, user), c, func(cur *deployv1alpha1.DeploymentChecklist) { withRoles(cur, roles...) })
	}
	err := patch("mallory", "technical-review")
	g.Expect(err).To(MatchError(ContainSubstring("lowers the sign-offs role operations needs from 1 to 0")))
	g.Expect(patch("tess", "technical-review")).To(MatchError(ContainSubstring(`user "tess" may not approve role operations`)))
	g.Expect(patch("alice", "technical-review")).To(Succeed(), "who may sign operations may drop it")
	g.Expect(patch("mallory", "technical-review", "security-review")).To(Succeed(), "adding a requirement needs nothing")
}

// TestSplittingATwoPersonSignOffIntoTwoChecksTakesTheRightToGiveIt: one check needing
// two operations sign-offs, replaced by two checks needing one each, is passed by one
// person: it lowers what the role needs from 2 to 1.
func TestSplittingATwoPersonSignOffIntoTwoChecksTakesTheRightToGiveIt(t *testing.T) {
	g := NewWithT(t)
	c := checklist("split")
	c.Spec.Phases[0].Checks = []deployv1alpha1.CheckSpec{{Name: "ops", Approval: &deployv1alpha1.ApprovalCheck{Role: "operations", Count: 2}}}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	err := edit(as(t, "mallory"), c, func(cur *deployv1alpha1.DeploymentChecklist) {
		cur.Spec.Phases[0].Checks = []deployv1alpha1.CheckSpec{
			{Name: "ops", Approval: &deployv1alpha1.ApprovalCheck{Role: "operations", Count: 1}},
			{Name: "ops-again", Approval: &deployv1alpha1.ApprovalCheck{Role: "operations", Count: 1}},
		}
	})
	g.Expect(err).To(MatchError(ContainSubstring("lowers the sign-offs role operations needs from 2 to 1")))
}

func TestAChecklistCannotMakeTminusReadASecretItsAuthorCannot(t *testing.T) {
	g := NewWithT(t)
	for _, user := range []string{"mallory", gitops} {
		c := checklist("secret-" + map[string]string{"mallory": "m", gitops: "g"}[user])
		c.Spec.Prometheus = &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.monitoring.svc:9090",
			BearerTokenSecretRef: &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}}
		err := as(t, user).Create(context.Background(), c)
		g.Expect(err).To(MatchError(ContainSubstring(`spec.prometheus.bearerTokenSecretRef: user "` + user + `" may not get Secret prom-token in namespace shop`)))
	}
	// alice may read it: her checklist may name it.
	c := checklist("secret-a")
	c.Spec.Prometheus = &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.monitoring.svc:9090",
		BearerTokenSecretRef: &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}}
	g.Expect(as(t, "alice").Create(context.Background(), c)).To(Succeed())
	// A header from another Secret she cannot read is refused on update.
	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), keyOf(c), &cur)).To(Succeed())
	cur.Spec.Prometheus.Headers = []deployv1alpha1.HTTPHeader{{Name: "X-Scope-OrgID", SecretKeyRef: &deployv1alpha1.SecretKeyRef{Name: "tenant", Key: "id"}}}
	g.Expect(as(t, "alice").Update(context.Background(), &cur)).To(MatchError(ContainSubstring(
		"spec.prometheus.headers[0].secretKeyRef: user \"alice\" may not get Secret tenant")))
}

func TestAJobCheckNeedsItsAuthorToCreateJobsAndActAsItsServiceAccount(t *testing.T) {
	g := NewWithT(t)
	job := func(name, sa string) *deployv1alpha1.DeploymentChecklist {
		c := checklist(name)
		c.Spec.Phases[0].Checks = append(c.Spec.Phases[0].Checks, deployv1alpha1.CheckSpec{
			Name: "backup", Job: &deployv1alpha1.JobCheck{Template: deployv1alpha1.JobTemplate{Spec: batchv1.JobSpec{
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: sa, RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "backup", Image: "backup:1"}}}},
			}}},
		})
		return c
	}
	err := as(t, "mallory").Create(context.Background(), job("job-m", ""))
	g.Expect(err).To(MatchError(ContainSubstring(`spec.phases[0].checks[1].job: user "mallory" may not create Jobs in namespace shop`)))
	g.Expect(as(t, "alice").Create(context.Background(), job("job-a", ""))).To(Succeed())
	err = as(t, "alice").Create(context.Background(), job("job-sa", "cluster-admin-sa"))
	g.Expect(err).To(MatchError(ContainSubstring(
		`spec.phases[0].checks[1].job.template.spec.template.spec.serviceAccountName: user "alice" may not impersonate ServiceAccount cluster-admin-sa`)))
}

func keyOf(c *deployv1alpha1.DeploymentChecklist) client.ObjectKey {
	return client.ObjectKeyFromObject(c)
}
