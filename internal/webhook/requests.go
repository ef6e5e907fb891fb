package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/request"
	"github.com/tminus-dev/tminus/internal/target"
)

// requestRecords judges each person's request (rollback-requested, abort-requested)
// added or changed by the request like a sign-off, and sets in want the records of the
// ones verified: an unchanged request keeps the record it had. msg says why a request
// is refused: malformed or without a reason, a user without the verb, a request naming
// someone else written by an untrusted user, or a checklist that cannot act on it.
func (w *ApprovalWebhook) requestRecords(ctx context.Context, req admission.Request, obj, old *deployv1alpha1.DeploymentChecklist,
	want map[string]string) (string, error) {
	user := req.UserInfo.Username
	for k := range want {
		if strings.HasPrefix(k, request.VerifiedPrefix) {
			delete(want, k)
		}
	}
	for _, kind := range request.Kinds {
		value, ok := obj.Annotations[kind.Annotation]
		if !ok {
			continue
		}
		rec := request.VerifiedKey(kind.Annotation)
		if old.Annotations[kind.Annotation] == value {
			if r, ok := old.Annotations[rec]; ok && strings.HasPrefix(r, value+" | ") {
				want[rec] = r
			}
			continue
		}
		by, _, err := request.Parse(kind.Annotation, value)
		if err != nil {
			return err.Error(), nil
		}
		if ok, err := w.allowed(ctx, req, authorizationv1.ResourceAttributes{
			Namespace: obj.Namespace, Verb: kind.Verb, Group: deployv1alpha1.GroupVersion.Group,
			Resource: checklistsResource, Name: obj.Name,
		}); err != nil {
			return "", fmt.Errorf("checking whether %s may request a %s: %w", user, kind.Verb, err)
		} else if !ok {
			return fmt.Sprintf("user %q may not request a %s of checklist %s: it needs the verb %q on deploymentchecklists, "+
				"group deploy.tminus.dev, in namespace %s (the deploymentchecklist-responder-role grants it; the editor role does not)",
				user, kind.Verb, obj.Name, kind.Verb, obj.Namespace), nil
		}
		if by != user && !slices.Contains(w.TrustedWriters, user) {
			return fmt.Sprintf("%s %q names %q but was written by %q: request it as yourself (kubectl checklist %s), "+
				"or commit it through a trusted GitOps writer", kind.Annotation, value, by, user, kind.Verb), nil
		}
		why, err := w.requestRefusal(ctx, kind.Kind, old)
		if err != nil {
			return "", err
		}
		if why != "" {
			return fmt.Sprintf("%s refused on checklist %s: %s", kind.Verb, obj.Name, why), nil
		}
		want[rec] = request.VerifiedValue(value, user)
	}
	return "", nil
}

// requestRefusal says why the checklist, as stored before this request (old), cannot
// act on a request of kind ("" when it can), by the engine's own rules
// (checklist.AbortRefusal, checklist.RollbackRefusal) on the target as the API server
// holds it now.
func (w *ApprovalWebhook) requestRefusal(ctx context.Context, kind deployv1alpha1.RequestKind, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	if kind == deployv1alpha1.RequestAbort {
		return checklist.AbortRefusal(old.Status.Phase), nil
	}
	if old.Status.Phase != deployv1alpha1.PhaseSucceeded {
		return checklist.RollbackRefusal(old, func(string) checklist.TargetState { return checklist.TargetState{} }, ""), nil
	}
	blocker := ""
	for _, ref := range old.Spec.TargetRefs() {
		cls, err := target.DecidingOf(ctx, w.Client, ref.KindOf(), old.Namespace, ref.Name, "")
		if err != nil {
			return "", err
		}
		if blocker = gate.Blocker(cls, old.Name); blocker != "" {
			break
		}
	}
	var readErr error
	why := checklist.RollbackRefusal(old, func(name string) checklist.TargetState {
		t, err := w.observeForRollback(ctx, kindOfTarget(old, name), types.NamespacedName{Namespace: old.Namespace, Name: name})
		if err != nil && readErr == nil {
			readErr = err
		}
		return t
	}, blocker)
	if readErr != nil {
		return "", readErr
	}
	return why, nil
}

// kindOfTarget is the kind of the checklist's target of this name.
func kindOfTarget(dcl *deployv1alpha1.DeploymentChecklist, name string) string {
	for _, ref := range dcl.Spec.TargetRefs() {
		if ref.Name == name {
			return ref.KindOf()
		}
	}
	return deployv1alpha1.KindDeployment
}

// observeForRollback is a released target as a rollback of it is judged: what serves
// from the cache (its ReplicaSets are indexed there); the Deployment's template and
// released revisions from the API server, as a push just before the request left them.
func (w *ApprovalWebhook) observeForRollback(ctx context.Context, kind string, key types.NamespacedName) (checklist.TargetState, error) {
	if kind != deployv1alpha1.KindDeployment {
		// Other kinds are read from the cache as they are.
		t, err := target.ObserveTarget(ctx, w.Client, key.Namespace, deployv1alpha1.TargetRef{Kind: kind, Name: key.Name})
		if err != nil {
			return t, fmt.Errorf("reading %s %s, whose release a rollback is for: %w", kind, key, err)
		}
		return t, nil
	}
	t, err := target.Observe(ctx, w.Client, key)
	if err != nil {
		return t, fmt.Errorf("reading Deployment %s, whose release a rollback is for: %w", key, err)
	}
	if w.Fresh != nil {
		var d appsv1.Deployment
		switch err := w.Fresh.Get(ctx, key, &d); {
		case apierrors.IsNotFound(err):
			return checklist.TargetState{}, nil
		case err != nil:
			return t, fmt.Errorf("reading Deployment %s, whose release a rollback is for: %w", key, err)
		default:
			t.TemplateHash, t.TemplateImages = gate.TemplateHash(&d.Spec.Template), gate.Images(&d.Spec.Template)
			t.ReleasedRevisions = target.ReleasedRevisions(&d)
		}
	}
	return t, nil
}

// sameTargets says whether a and b name the same workloads, kind and name, in order.
func sameTargets(a, b []deployv1alpha1.TargetRef) bool {
	return slices.EqualFunc(a, b, func(x, y deployv1alpha1.TargetRef) bool { return x.KindOf() == y.KindOf() && x.Name == y.Name })
}

// sharedKind is the kind refs share ("workloads" when they do not).
func sharedKind(refs []deployv1alpha1.TargetRef) string {
	for _, r := range refs {
		if r.KindOf() != refs[0].KindOf() {
			return "workloads"
		}
	}
	if len(refs) == 0 {
		return "workloads"
	}
	return refs[0].KindOf()
}

// retryRefusal says why the checklist may not carry its retry-of annotation ("" when
// it may): it is fixed at creation, and names a checklist of the namespace that ended
// RolledBack or Failed on the same workloads (kind and name) and revision. A retry lifts the refusal
// of the template that checklist rolled back (the retry holds it for fresh sign-offs)
// and may release a revision released before, so it must be what it says.
func (w *ApprovalWebhook) retryRefusal(ctx context.Context, req admission.Request, obj, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	of, ok := obj.Annotations[deployv1alpha1.RetryOfAnnotation]
	if req.Operation != admissionv1.Create {
		if of != old.Annotations[deployv1alpha1.RetryOfAnnotation] {
			return fmt.Sprintf("annotation %s is fixed when the checklist is created", deployv1alpha1.RetryOfAnnotation), nil
		}
		return "", nil
	}
	if !ok {
		return "", nil
	}
	var prev deployv1alpha1.DeploymentChecklist
	var r client.Reader = w.Client
	if w.Fresh != nil {
		r = w.Fresh
	}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: of}, &prev); {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("%s names checklist %s, which does not exist in namespace %s", deployv1alpha1.RetryOfAnnotation, of, obj.Namespace), nil
	case err != nil:
		return "", fmt.Errorf("reading checklist %s, which %s retries: %w", of, obj.Name, err)
	}
	switch {
	case !sameTargets(prev.Spec.TargetRefs(), obj.Spec.TargetRefs()) || prev.Spec.Revision != obj.Spec.Revision:
		return fmt.Sprintf("%s names checklist %s, of %s revision %q: a retry is of the same %s and revision",
			deployv1alpha1.RetryOfAnnotation, of, deployv1alpha1.DescribeTargets(prev.Spec.TargetRefs()), prev.Spec.Revision,
			sharedKind(prev.Spec.TargetRefs())), nil
	case prev.Status.Phase != deployv1alpha1.PhaseRolledBack && prev.Status.Phase != deployv1alpha1.PhaseFailed:
		return fmt.Sprintf("%s names checklist %s, which is %s: only one that ended RolledBack or Failed is retried",
			deployv1alpha1.RetryOfAnnotation, of, phaseOrPending(prev.Status.Phase)), nil
	}
	return "", nil
}

// checklistsResource is the DeploymentChecklist resource a SubjectAccessReview asks about.
const checklistsResource = "deploymentchecklists"
