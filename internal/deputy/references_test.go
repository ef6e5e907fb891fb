package deputy

import (
	"testing"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

func withToken() *deployv1alpha1.DeploymentChecklist {
	dcl := &deployv1alpha1.DeploymentChecklist{}
	dcl.Namespace = "shop"
	dcl.Spec.Prometheus = &deployv1alpha1.PrometheusSpec{Address: "https://prometheus.monitoring.svc:9090",
		BearerTokenSecretRef: &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}}
	return dcl
}

func keys(refs []Reference) []string {
	out := make([]string, 0, len(refs))
	for i := range refs {
		out = append(out, refs[i].key())
	}
	return out
}

// Every field that decides where a Prometheus credential goes makes it a new reference;
// the timeout does not.
func TestWhatDecidesWhereATokenGoesIsPartOfItsReference(t *testing.T) {
	g := NewWithT(t)
	was := keys(ChecklistReferences(withToken()))
	g.Expect(was).To(HaveLen(1))
	for name, change := range map[string]func(p *deployv1alpha1.PrometheusSpec){
		"address": func(p *deployv1alpha1.PrometheusSpec) { p.Address = "https://mallory.example" },
		"tls":     func(p *deployv1alpha1.PrometheusSpec) { p.TLS = &deployv1alpha1.TLSConfig{InsecureSkipVerify: true} },
		"serverName": func(p *deployv1alpha1.PrometheusSpec) {
			p.TLS = &deployv1alpha1.TLSConfig{ServerName: "mallory.example"}
		},
		"header": func(p *deployv1alpha1.PrometheusSpec) {
			p.Headers = []deployv1alpha1.HTTPHeader{{Name: "Host", Value: "x"}}
		},
		"key": func(p *deployv1alpha1.PrometheusSpec) { p.BearerTokenSecretRef.Key = "admin-token" },
	} {
		dcl := withToken()
		change(dcl.Spec.Prometheus)
		g.Expect(keys(ChecklistReferences(dcl))).NotTo(ContainElement(was[0]), name)
	}
	dcl := withToken()
	dcl.Spec.Prometheus.Timeout = "3s"
	g.Expect(keys(ChecklistReferences(dcl))).To(Equal(was), "the timeout decides nothing about where the token goes")
}

// A Job check is judged with its whole template; moved to another phase unchanged, it
// is the same reference.
func TestAJobIsJudgedWithItsWholeTemplate(t *testing.T) {
	g := NewWithT(t)
	job := func(image string) deployv1alpha1.CheckSpec {
		return deployv1alpha1.CheckSpec{Name: "backup", Job: &deployv1alpha1.JobCheck{Template: deployv1alpha1.JobTemplate{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "backup-sa",
				Containers: []corev1.Container{{Name: "backup", Image: image}}}}}}}}
	}
	at := func(phase int, c deployv1alpha1.CheckSpec) *deployv1alpha1.DeploymentChecklist {
		dcl := &deployv1alpha1.DeploymentChecklist{}
		dcl.Spec.Phases = []deployv1alpha1.PhaseSpec{{Name: "T-10m", At: "-10m"}, {Name: "T-5m", At: "-5m"}}
		dcl.Spec.Phases[phase].Checks = []deployv1alpha1.CheckSpec{c}
		return dcl
	}
	was := ChecklistReferences(at(0, job("backup:1")))
	g.Expect(was).To(HaveLen(2)) // create Jobs, impersonate backup-sa
	g.Expect(keys(ChecklistReferences(at(1, job("backup:1"))))).To(Equal(keys(was)))
	swapped := ChecklistReferences(at(0, job("mallory:1")))
	g.Expect(keys(swapped)).NotTo(ContainElements(keys(was)))
	g.Expect(changed(was[1].Context, swapped[1].Context)).To(Equal([]string{"spec.phases[0].checks[0].job.template"}))
}

// A Job naming its service account in the deprecated serviceAccount field (the API
// server runs it as that account when serviceAccountName is empty) needs the same
// impersonate right.
func TestAJobNamingItsServiceAccountInTheDeprecatedFieldNeedsToImpersonateIt(t *testing.T) {
	g := NewWithT(t)
	dcl := &deployv1alpha1.DeploymentChecklist{}
	dcl.Namespace = "shop"
	dcl.Spec.Phases = []deployv1alpha1.PhaseSpec{{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{{Name: "backup",
		Job: &deployv1alpha1.JobCheck{Template: deployv1alpha1.JobTemplate{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{DeprecatedServiceAccount: "cluster-admin-sa",
				Containers: []corev1.Container{{Name: "backup", Image: "backup:1"}}}}}}}}}}}
	refs := ChecklistReferences(dcl)
	g.Expect(refs).To(HaveLen(2))
	g.Expect(refs[1].Field).To(Equal("spec.phases[0].checks[0].job.template.spec.template.spec.serviceAccount"))
	g.Expect(refs[1].Attrs.Verb).To(Equal("impersonate"))
	g.Expect(refs[1].Attrs.Name).To(Equal("cluster-admin-sa"))
}

// A signing key is judged with where the signed messages go.
func TestASigningKeyIsJudgedWithItsReceiver(t *testing.T) {
	g := NewWithT(t)
	policy := func(url string) *deployv1alpha1.NotificationPolicy {
		np := &deployv1alpha1.NotificationPolicy{}
		np.Spec.Receivers = []deployv1alpha1.NotificationReceiver{{Name: "audit", Webhook: &deployv1alpha1.WebhookReceiver{
			URL: url, SigningSecretRef: &deployv1alpha1.SecretKeyRef{Name: "signing", Key: "key"}}}}
		return np
	}
	was, moved := PolicyReferences(policy("https://audit.example")), PolicyReferences(policy("https://mallory.example"))
	g.Expect(was).To(HaveLen(1))
	g.Expect(moved[0].key()).NotTo(Equal(was[0].key()))
	g.Expect(changed(was[0].Context, moved[0].Context)).To(Equal([]string{"spec.receivers[0].webhook.url"}))
}
