// Package webhook holds tminus's admission webhooks: the Deployment gate
// (gate_webhook.go) and the checklist webhook. The checklist webhook refuses a second
// live checklist for a Deployment, and on every create and update of a checklist
// checks each added or changed approval annotation:
// the requesting user must hold the RBAC verb `approve` on the checklist, and must be
// the approver it names unless it is a trusted writer (a GitOps controller committing
// approvals made by pull request). It records what it verified in
// verified.approve.tminus.dev/<key> annotations, which only it can write. A person's
// requests (deploy.tminus.dev/rollback-requested, abort-requested) are judged the same
// way, by the verbs rollback and abort (requests.go).
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/deputy"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
)

// Path the webhook serves.
const Path = "/mutate-deploy-tminus-dev-v1alpha1-deploymentchecklist"

// ApproveVerb is the RBAC verb a user needs on deploymentchecklists to sign off.
const ApproveVerb = "approve"

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// ApprovalWebhook verifies approvals, and refuses a second live checklist for a
// Deployment.
type ApprovalWebhook struct {
	// Client creates SubjectAccessReviews and reads checklists from the manager's cache
	// (indexed by target.Index).
	Client client.Client
	// Fresh reads from the API server: a create about to be refused for another live
	// checklist is decided again on fresh data, so a checklist that just ended in the
	// cache's past does not block the next one.
	Fresh client.Reader
	// Decoder reads the admission request's objects.
	Decoder admission.Decoder
	// TrustedWriters are usernames (e.g. a GitOps controller's service account,
	// system:serviceaccount:argocd:argocd-application-controller) that may write
	// approvals naming someone else: the approval is taken as committed.
	TrustedWriters []string
}

// Handle admits a checklist with its verification records set, or denies it.
func (w *ApprovalWebhook) Handle(ctx context.Context, req admission.Request) admission.Response {
	var obj, old deployv1alpha1.DeploymentChecklist
	if err := w.Decoder.DecodeRaw(req.Object, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if len(req.OldObject.Raw) > 0 {
		if err := w.Decoder.DecodeRaw(req.OldObject, &old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	if req.Operation == admissionv1.Create {
		if live, kind, err := w.liveChecklist(ctx, &obj); err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		} else if live != nil {
			return admission.Denied(fmt.Sprintf("%s %s already has a live checklist, %s (%s): one live checklist per %s. "+
				"Create this one when %s has ended (a GitOps sync retries by itself), or delete %s",
				kind, live.TargetName, live.Name, phaseOrPending(live.Phase), kind, live.Name, live.Name))
		}
	}
	// The checklist as it will be walked: made from its template, parameters filled in.
	made, madeOld, msg, err := w.madeChecklists(ctx, req, &obj, &old)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	} else if msg != "" {
		return admission.Denied(msg)
	}
	if msg, err := w.rules(ctx, req, made, madeOld, &old); err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	} else if msg != "" {
		return admission.Denied(msg)
	}
	// A label change that takes the checklist out of a change freeze is the freeze's to allow.
	if msg, err := w.freezeLabels(ctx, req, &obj, &old); err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	} else if msg != "" {
		return admission.Denied(msg)
	}
	want, msg, err := w.verified(ctx, req, &obj, &old)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	} else if msg != "" {
		return admission.Denied(msg)
	}
	gateSet := recordGate(req, &obj, made)
	if !gateSet && (maps.Equal(want, obj.Annotations) || (len(want) == 0 && len(obj.Annotations) == 0)) {
		return admission.Allowed("")
	}
	obj.Annotations = want
	raw, err := json.Marshal(&obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, raw)
}

// verified is the checklist's annotations with the verification records this webhook
// derives: the request's own records dropped, an unchanged approval's record kept, and a
// record for each added or changed approval the requesting user may give (msg says why
// not, when not).
func (w *ApprovalWebhook) verified(ctx context.Context, req admission.Request, obj, old *deployv1alpha1.DeploymentChecklist) (
	want map[string]string, msg string, err error) {
	user := req.UserInfo.Username
	trusted := slices.Contains(w.TrustedWriters, user)
	template := ""

	want = maps.Clone(obj.Annotations)
	if want == nil {
		want = map[string]string{}
	}
	// Verification records come from this webhook only: drop what the request sent and
	// derive them again.
	for k := range want {
		if strings.HasPrefix(k, approval.VerifiedPrefix) {
			delete(want, k)
		}
	}
	// So is the record of who wrote what a checklist made from a template is made of:
	// the controller judges the template it resolves as them.
	delete(want, deputy.AuthorsAnnotation)
	if rec, ok := authorsRecord(req, obj, old); ok {
		want[deputy.AuthorsAnnotation] = rec
	}
	for _, k := range slices.Sorted(maps.Keys(obj.Annotations)) {
		key, ok := strings.CutPrefix(k, approval.Prefix)
		if !ok {
			continue
		}
		value := obj.Annotations[k]
		if old.Annotations[k] == value {
			// Unchanged: keep the record it had, if any (approvals written before the
			// webhook was installed stay unverified).
			if rec, ok := old.Annotations[approval.VerifiedPrefix+key]; ok && approval.IsVerified(old.Annotations, key, value) {
				want[approval.VerifiedPrefix+key] = rec
			}
			continue
		}
		e, err := approval.ParseEntry(key, value)
		if err != nil {
			return nil, err.Error(), nil
		}
		if msg, err := w.mayApprove(ctx, req, obj.Namespace, obj.Name, e.Role); err != nil {
			return nil, "", fmt.Errorf("checking whether %s may approve: %w", user, err)
		} else if msg != "" {
			return nil, msg, nil
		}
		if e.Approver != user && !trusted {
			return nil, fmt.Sprintf("approval %s%s names %q but was written by %q: approve as yourself (kubectl checklist approve), or commit it through a trusted GitOps writer",
				approval.Prefix, key, e.Approver, user), nil
		}
		if template == "" {
			if template, err = w.admittedTemplate(ctx, obj); err != nil {
				return nil, "", err
			}
		}
		want[approval.VerifiedPrefix+key] = approval.VerifiedValue(value, user, template)
	}
	// A person's requests (rollback, abort) are judged like sign-offs (requests.go).
	if msg, err := w.requestRecords(ctx, req, obj, old, want); err != nil || msg != "" {
		return nil, msg, err
	}
	if msg, err := w.retryRefusal(ctx, req, obj, old); err != nil || msg != "" {
		return nil, msg, err
	}
	return want, "", nil
}

// rules says why the requesting user may not write the checklist as made ("" when it
// may), by the rules about what it makes tminus do.
func (w *ApprovalWebhook) rules(ctx context.Context, req admission.Request, made, madeOld, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	for _, rule := range []func() (string, error){
		// The gate is fixed at creation, and Observe switches no owner's gate off.
		func() (string, error) { return w.gateKept(ctx, req, made, old) },
		// What the checklist makes the manager do, its author must be allowed to do.
		func() (string, error) { return w.deputyRules(ctx, req, made, madeOld) },
		// Weakening a sign-off requirement needs the right to give that sign-off.
		func() (string, error) { return w.approvalChecksKept(ctx, req, made, madeOld) },
	} {
		if msg, err := rule(); err != nil || msg != "" {
			return msg, err
		}
	}
	return "", nil
}

// mayApprove says why the requesting user may not sign off role on the checklist ("" when
// it may). RBAC grants sign-offs role by role: the verb approve on the (virtual)
// subresource deploymentchecklists/<role> grants that role only; approve on
// deploymentchecklists itself grants every role. (RBAC has no "deploymentchecklists/*".)
func (w *ApprovalWebhook) mayApprove(ctx context.Context, req admission.Request, ns, name, role string) (string, error) {
	for _, sub := range []string{role, ""} {
		ok, err := w.allowed(ctx, req, authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: ApproveVerb, Group: deployv1alpha1.GroupVersion.Group,
			Resource: checklistsResource, Subresource: sub, Name: name,
		})
		if err != nil || ok {
			return "", err
		}
	}
	return fmt.Sprintf("user %q may not approve role %s: it needs the verb %q on deploymentchecklists/%s "+
		"(that role) or deploymentchecklists (every role), group deploy.tminus.dev, in namespace %s",
		req.UserInfo.Username, role, ApproveVerb, role, ns), nil
}

// admittedTemplate identifies the target's pod template (a Deployment's, StatefulSet's
// or DaemonSet's, read by its kind) as the API server holds it now (gate.TemplateHash):
// what a sign-off admitted now is for. The candidate a signer was shown is the one held
// now; a push after this read is another template. checklist.NoTemplate when the target
// does not exist.
//
// For a release of several targets it is the set of their candidates
// (checklist.CandidateSet): each target's template unless it is the pre-deploy one
// recorded for it. A change to any of them is another set.
func (w *ApprovalWebhook) admittedTemplate(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist) (string, error) {
	var r client.Reader = w.Client
	if w.Fresh != nil {
		r = w.Fresh
	}
	names := dcl.Spec.TargetNames()
	hashes := make([]string, len(names))
	for i, ref := range dcl.Spec.TargetRefs() {
		name := ref.Name
		tmpl, found, err := target.TemplateOf(ctx, r, dcl.Namespace, ref)
		if err != nil {
			return "", fmt.Errorf("the template a sign-off is for: %w", err)
		}
		if !found {
			hashes[i] = checklist.NoTemplate
			continue
		}
		hashes[i] = gate.TemplateHash(tmpl)
		if ts := dcl.TargetStatusOf(name); len(names) > 1 && ts != nil && ts.PreDeployTemplate != nil && hashes[i] == ts.PreDeployTemplateHash {
			hashes[i] = ""
		}
	}
	return checklist.CandidateSet(names, hashes), nil
}

// allowed asks the API server whether the requesting user may do what attrs say.
func (w *ApprovalWebhook) allowed(ctx context.Context, req admission.Request, attrs authorizationv1.ResourceAttributes) (bool, error) {
	return deputy.Allowed(ctx, w.Client, deputy.SubjectOf(req.UserInfo), attrs)
}

// liveChecklist is a checklist, other than obj, that is live on one of obj's targets,
// and the kind of that target.
//
// It is read from the API server when the webhook has a fresh reader, in one list of
// the namespace for every target: a create is rare, and the cache may not yet hold a
// checklist created an instant earlier (a GitOps tool applying two releases of the same
// workload in one sync), which would let both in. The cache is the fallback only.
func (w *ApprovalWebhook) liveChecklist(ctx context.Context, obj *deployv1alpha1.DeploymentChecklist) (*gate.Checklist, string, error) {
	var list deployv1alpha1.DeploymentChecklistList
	if w.Fresh != nil {
		if err := w.Fresh.List(ctx, &list, client.InNamespace(obj.Namespace)); err != nil {
			return nil, "", fmt.Errorf("listing the checklists of namespace %s: %w", obj.Namespace, err)
		}
	}
	for _, ref := range obj.Spec.TargetRefs() {
		var cls []gate.Checklist
		if w.Fresh != nil {
			for i := range list.Items {
				if other := &list.Items[i]; other.Spec.HasTarget(ref.KindOf(), ref.Name) {
					cls = append(cls, gate.FromChecklistFor(other, ref.Name))
				}
			}
		} else {
			var err error
			if cls, err = target.DecidingOf(ctx, w.Client, ref.KindOf(), obj.Namespace, ref.Name, ""); err != nil {
				return nil, "", err
			}
		}
		for i := range cls {
			if cls[i].Name != obj.Name && cls[i].Live() {
				return &cls[i], ref.KindOf(), nil
			}
		}
	}
	return nil, "", nil
}

func phaseOrPending(p deployv1alpha1.ChecklistPhase) deployv1alpha1.ChecklistPhase {
	if p == "" {
		return deployv1alpha1.PhasePending
	}
	return p
}
