// Package webhook holds the optional approval admission webhook. On every create and
// update of a DeploymentChecklist it checks each added or changed approval annotation:
// the requesting user must hold the RBAC verb `approve` on the checklist, and must be
// the approver it names unless it is a trusted writer (a GitOps controller committing
// approvals made by pull request). It records what it verified in
// verified.approve.tminus.dev/<key> annotations, which only it can write.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
)

// Path the webhook serves.
const Path = "/mutate-deploy-tminus-dev-v1alpha1-deploymentchecklist"

// ApproveVerb is the RBAC verb a user needs on deploymentchecklists to sign off.
const ApproveVerb = "approve"

// +kubebuilder:webhook:path=/mutate-deploy-tminus-dev-v1alpha1-deploymentchecklist,mutating=true,failurePolicy=fail,sideEffects=None,groups=deploy.tminus.dev,resources=deploymentchecklists,verbs=create;update,versions=v1alpha1,name=approvals.deploy.tminus.dev,admissionReviewVersions=v1
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// ApprovalWebhook verifies approvals.
type ApprovalWebhook struct {
	// Client creates SubjectAccessReviews.
	Client client.Client
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
	user := req.UserInfo.Username
	trusted := slices.Contains(w.TrustedWriters, user)

	want := maps.Clone(obj.Annotations)
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
			return admission.Denied(err.Error())
		}
		allowed, err := w.mayApprove(ctx, req, obj.Namespace, obj.Name)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("checking whether %s may approve: %w", user, err))
		}
		if !allowed {
			return admission.Denied(fmt.Sprintf("user %q may not approve role %s: it needs the verb %q on deploymentchecklists.deploy.tminus.dev in namespace %s",
				user, e.Role, ApproveVerb, obj.Namespace))
		}
		if e.Approver != user && !trusted {
			return admission.Denied(fmt.Sprintf("approval %s%s names %q but was written by %q: approve as yourself (kubectl checklist approve), or commit it through a trusted GitOps writer",
				approval.Prefix, key, e.Approver, user))
		}
		want[approval.VerifiedPrefix+key] = approval.VerifiedValue(value, user)
	}
	if maps.Equal(want, obj.Annotations) || (len(want) == 0 && len(obj.Annotations) == 0) {
		return admission.Allowed("")
	}
	obj.Annotations = want
	raw, err := json.Marshal(&obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, raw)
}

// mayApprove asks the API server whether the requesting user holds the approve verb.
func (w *ApprovalWebhook) mayApprove(ctx context.Context, req admission.Request, ns, name string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range req.UserInfo.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   req.UserInfo.Username,
			Groups: req.UserInfo.Groups,
			UID:    req.UserInfo.UID,
			Extra:  extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns,
				Verb:      ApproveVerb,
				Group:     deployv1alpha1.GroupVersion.Group,
				Resource:  "deploymentchecklists",
				Name:      name,
			},
		},
	}
	if err := w.Client.Create(ctx, sar); err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}
