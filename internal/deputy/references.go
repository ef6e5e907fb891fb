package deputy

import (
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// secretRef is the reference to read one Secret, in its context.
func secretRef(ns, field string, ref *deployv1alpha1.SecretKeyRef, context []Use) Reference {
	return Reference{Field: field,
		Attrs:   authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: ref.Name},
		What:    fmt.Sprintf("get Secret %s", ref.Name),
		Context: context}
}

// ChecklistReferences lists what dcl (as tminus walks it: made from its template) makes
// the manager do in its namespace:
//   - read each Secret spec.prometheus names, judged with everything that decides where
//     its value goes: the address, TLS (a CA, a server name, skipping verification),
//     every header, and the other credentials (and which key of the Secret is read);
//   - create each Job check's Job, and run it as its serviceAccountName, judged with the
//     whole Job template (what runs, and how).
//
// HTTP checks send no credentials (they have no headers and read no Secret), so they
// ask for nothing.
func ChecklistReferences(dcl *deployv1alpha1.DeploymentChecklist) []Reference {
	if dcl == nil {
		return nil
	}
	ns := dcl.Namespace
	var out []Reference
	if p := dcl.Spec.Prometheus; p != nil {
		// The timeout alone is left out: it decides nothing about where a value goes.
		context := []Use{
			use("spec.prometheus.address", p.Address),
			use("spec.prometheus.tls", p.TLS),
			use("spec.prometheus.headers", p.Headers),
			use("spec.prometheus.bearerTokenSecretRef", p.BearerTokenSecretRef),
			use("spec.prometheus.basicAuth", p.BasicAuth),
		}
		secret := func(field string, ref *deployv1alpha1.SecretKeyRef) {
			if ref != nil && ref.Name != "" {
				out = append(out, secretRef(ns, field, ref, context))
			}
		}
		secret("spec.prometheus.bearerTokenSecretRef", p.BearerTokenSecretRef)
		if p.BasicAuth != nil {
			secret("spec.prometheus.basicAuth.username", &p.BasicAuth.Username)
			secret("spec.prometheus.basicAuth.password", &p.BasicAuth.Password)
		}
		for i, h := range p.Headers {
			secret(fmt.Sprintf("spec.prometheus.headers[%d].secretKeyRef", i), h.SecretKeyRef)
		}
		if p.TLS != nil {
			secret("spec.prometheus.tls.caSecretRef", p.TLS.CASecretRef)
		}
	}
	for i, ph := range dcl.Spec.Phases {
		for j, c := range ph.Checks {
			if c.Job == nil {
				continue
			}
			field := fmt.Sprintf("spec.phases[%d].checks[%d].job", i, j)
			context := []Use{use(field+".template", c.Job.Template)}
			out = append(out, Reference{Field: field,
				Attrs:   authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "batch", Resource: "jobs"},
				What:    "create Jobs",
				Context: context})
			if sa, saField := jobServiceAccount(&c.Job.Template.Spec.Template.Spec); sa != "" && sa != "default" {
				out = append(out, Reference{Field: field + ".template.spec.template.spec." + saField,
					Attrs:   authorizationv1.ResourceAttributes{Namespace: ns, Verb: "impersonate", Resource: "serviceaccounts", Name: sa},
					What:    fmt.Sprintf("impersonate ServiceAccount %s (the Job would run as it)", sa),
					Context: context})
			}
		}
	}
	return out
}

// jobServiceAccount is the service account a Job's pods run as, and the field that
// names it: serviceAccountName, or, without it, the deprecated serviceAccount, which
// the API server takes in its place.
func jobServiceAccount(spec *corev1.PodSpec) (name, field string) {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName, "serviceAccountName"
	}
	return spec.DeprecatedServiceAccount, "serviceAccount"
}

// PolicyReferences lists the Secrets a notification policy makes the manager read in
// its namespace: a Slack or Teams URL (the URL is the credential: it is its own
// context), a webhook's URL Secret, and a webhook's signing key, judged with where the
// signed messages go (the receiver's URL, or the Secret holding it).
func PolicyReferences(np *deployv1alpha1.NotificationPolicy) []Reference {
	if np == nil {
		return nil
	}
	ns := np.Namespace
	var out []Reference
	for i, r := range np.Spec.Receivers {
		field := fmt.Sprintf("spec.receivers[%d]", i)
		switch {
		case r.Slack != nil:
			out = append(out, secretRef(ns, field+".slack.urlSecretRef", &r.Slack.URLSecretRef,
				[]Use{use(field+".slack.urlSecretRef", r.Slack.URLSecretRef)}))
		case r.Teams != nil:
			out = append(out, secretRef(ns, field+".teams.urlSecretRef", &r.Teams.URLSecretRef,
				[]Use{use(field+".teams.urlSecretRef", r.Teams.URLSecretRef)}))
		case r.Webhook != nil:
			w := r.Webhook
			context := []Use{
				use(field+".webhook.url", w.URL),
				use(field+".webhook.urlSecretRef", w.URLSecretRef),
				use(field+".webhook.signingSecretRef", w.SigningSecretRef),
			}
			if w.URLSecretRef != nil {
				out = append(out, secretRef(ns, field+".webhook.urlSecretRef", w.URLSecretRef, context))
			}
			if w.SigningSecretRef != nil {
				out = append(out, secretRef(ns, field+".webhook.signingSecretRef", w.SigningSecretRef, context))
			}
		}
	}
	return out
}
