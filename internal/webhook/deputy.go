package webhook

import (
	"context"
	"fmt"
	"maps"
	"slices"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// A checklist makes the manager act with the manager's rights: read Secrets for
// Prometheus credentials, create Jobs, run them under a service account. So that a
// checklist grants no more than its author has (the "confused deputy"), its author must
// hold those rights themselves. The rules apply to whoever writes the checklist, GitOps
// service accounts included (their RBAC is the limit), on create and whenever a
// reference changes.

// reference is one thing a checklist makes the manager do, with the field that asks it.
type reference struct {
	field string
	attrs authorizationv1.ResourceAttributes
	// what the author may not do, in words.
	what string
}

// references lists what dcl makes the manager do in its namespace.
func references(dcl *deployv1alpha1.DeploymentChecklist) []reference {
	ns := dcl.Namespace
	var out []reference
	secret := func(field string, ref *deployv1alpha1.SecretKeyRef) {
		if ref == nil || ref.Name == "" {
			return
		}
		out = append(out, reference{field: field,
			attrs: authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: ref.Name},
			what:  fmt.Sprintf("get Secret %s", ref.Name)})
	}
	if p := dcl.Spec.Prometheus; p != nil {
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
			out = append(out, reference{field: field,
				attrs: authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "batch", Resource: "jobs"},
				what:  "create Jobs"})
			if sa := c.Job.Template.Spec.Template.Spec.ServiceAccountName; sa != "" && sa != "default" {
				out = append(out, reference{field: field + ".template.spec.template.spec.serviceAccountName",
					attrs: authorizationv1.ResourceAttributes{Namespace: ns, Verb: "impersonate", Resource: "serviceaccounts", Name: sa},
					what:  fmt.Sprintf("impersonate ServiceAccount %s (the Job would run as it)", sa)})
			}
		}
	}
	return out
}

// deputyRules says why the requesting user may not write dcl ("" when they may): a
// reference it adds or changes (on create, every one) asks the manager to do what the
// user may not.
func (w *ApprovalWebhook) deputyRules(ctx context.Context, req admission.Request, dcl, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	had := map[authorizationv1.ResourceAttributes]bool{}
	for _, r := range references(old) {
		had[r.attrs] = true
	}
	checked := map[authorizationv1.ResourceAttributes]bool{}
	for _, r := range references(dcl) {
		if had[r.attrs] || checked[r.attrs] {
			continue
		}
		checked[r.attrs] = true
		ok, err := w.allowed(ctx, req, r.attrs)
		if err != nil {
			return "", fmt.Errorf("checking whether %s may %s: %w", req.UserInfo.Username, r.what, err)
		}
		if !ok {
			return fmt.Sprintf("%s: user %q may not %s in namespace %s, so a checklist it writes may not make tminus do it",
				r.field, req.UserInfo.Username, r.what, dcl.Namespace), nil
		}
	}
	return "", nil
}

// approvalChecksKept says why the requesting user may not weaken the checklist's sign-off
// requirements ("" when they may): removing an approval check, or lowering its count,
// needs the right to give that sign-off, like signing it.
func (w *ApprovalWebhook) approvalChecksKept(ctx context.Context, req admission.Request, dcl, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	before, after := approvalsNeeded(old), approvalsNeeded(dcl)
	for _, role := range slices.Sorted(maps.Keys(before)) {
		if after[role] >= before[role] {
			continue
		}
		msg, err := w.mayApprove(ctx, req, dcl.Namespace, dcl.Name, role)
		if err != nil || msg == "" {
			if err != nil {
				return "", err
			}
			continue
		}
		return fmt.Sprintf("spec.phases: this change lowers the sign-offs role %s needs from %d to %d, which takes the right to "+
			"give them: %s", role, before[role], after[role], msg), nil
	}
	return "", nil
}

// approvalsNeeded counts, by role, the sign-offs the checklist's approval checks need.
func approvalsNeeded(dcl *deployv1alpha1.DeploymentChecklist) map[string]int32 {
	out := map[string]int32{}
	for _, ph := range dcl.Spec.Phases {
		for _, c := range ph.Checks {
			if c.Approval != nil {
				out[c.Approval.Role] += max(c.Approval.Count, 1)
			}
		}
	}
	return out
}
