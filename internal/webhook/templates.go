package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/deputy"
	"github.com/tminus-dev/tminus/internal/templates"
)

// madeChecklists returns the new and old checklists as tminus will walk them: made from
// their template with parameters filled in, so the rules about what a checklist makes
// tminus do (Secrets, Jobs, sign-offs) judge what it really does. On create, and when
// the template or the parameters change, the template must exist and resolve (refused
// otherwise, saying what to fix); an update that leaves them alone is judged on the
// checklist as written (what it makes tminus do has not changed, and a template deleted
// after the release started must not block its sign-offs). Once a release has resolved
// its template, its templateRef and parameters are fixed: tminus would not read them
// again, and an edit it silently ignored would mislead whoever made it.
func (w *ApprovalWebhook) madeChecklists(ctx context.Context, req admission.Request,
	obj, old *deployv1alpha1.DeploymentChecklist) (made, madeOld *deployv1alpha1.DeploymentChecklist, deny string, err error) {
	if obj.Spec.TemplateRef == nil && len(obj.Spec.Parameters) == 0 {
		// Written inline: what the CRD cannot check (a query naming the released pods in
		// a T-minus phase) is checked here, as the engine will read it.
		if req.Operation == admissionv1.Create || !equality.Semantic.DeepEqual(obj.Spec, old.Spec) {
			if err := checklist.Validate(&obj.Spec); err != nil {
				return nil, nil, err.Error(), nil
			}
		}
		return obj, old, "", nil
	}
	if req.Operation == admissionv1.Update && equality.Semantic.DeepEqual(obj.Spec.TemplateRef, old.Spec.TemplateRef) &&
		maps.Equal(obj.Spec.Parameters, old.Spec.Parameters) && equality.Semantic.DeepEqual(obj.Spec.ChecklistBody, old.Spec.ChecklistBody) {
		return obj, obj, "", nil
	}
	if req.Operation == admissionv1.Update && old.Status.Template != nil && (!equality.Semantic.DeepEqual(obj.Spec.TemplateRef,
		old.Spec.TemplateRef) || !maps.Equal(obj.Spec.Parameters, old.Spec.Parameters)) {
		return nil, nil, fmt.Sprintf("spec.templateRef, spec.parameters: fixed once the release has started (resolved from %s %s "+
			"at %s, kept in status.resolved); create a new checklist to release with other values",
			old.Status.Template.Kind, old.Status.Template.Name, old.Status.Template.ResolvedAt.UTC().Format(time.RFC3339)), nil
	}
	made, deny, err = w.make(ctx, obj)
	if err != nil || deny != "" {
		return nil, nil, deny, err
	}
	madeOld = old
	if req.Operation == admissionv1.Update {
		if m, msg, err := w.make(ctx, old); err == nil && msg == "" {
			madeOld = m
		}
	}
	return made, madeOld, "", nil
}

// make fills in one checklist, or says why it cannot be made.
func (w *ApprovalWebhook) make(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist) (*deployv1alpha1.DeploymentChecklist, string, error) {
	var tmpl *templates.Template
	if ref := dcl.Spec.TemplateRef; ref != nil {
		var err error
		if tmpl, err = w.template(ctx, dcl.Namespace, ref); err != nil {
			return nil, "", err
		}
		if tmpl == nil {
			return nil, fmt.Sprintf("spec.templateRef: %s %s not found: create the template first (a GitOps sync retries by itself)",
				ref.Kind, ref.Name), nil
		}
	}
	body, _, err := templates.Resolve(dcl, tmpl)
	if err != nil {
		if te, ok := errors.AsType[*templates.Error](err); ok {
			return nil, te.Message, nil
		}
		return nil, "", err
	}
	made := dcl.DeepCopy()
	made.Spec.ChecklistBody = body
	return made, "", nil
}

// template reads a template from the cache, then from the API server (one created a
// moment ago, in the same GitOps sync); nil when it does not exist.
func (w *ApprovalWebhook) template(ctx context.Context, ns string, ref *deployv1alpha1.TemplateRef) (*templates.Template, error) {
	for _, r := range []client.Reader{w.Client, w.Fresh} {
		if r == nil {
			continue
		}
		var obj client.Object = &deployv1alpha1.ChecklistTemplate{}
		key := types.NamespacedName{Namespace: ns, Name: ref.Name}
		if ref.Kind == "ClusterChecklistTemplate" {
			obj, key.Namespace = &deployv1alpha1.ClusterChecklistTemplate{}, ""
		}
		err := r.Get(ctx, key, obj)
		if err == nil {
			return templates.From(obj), nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
		}
	}
	return nil, nil
}

// authorsRecord is the authors record (deputy.AuthorsAnnotation) a checklist made from a
// template carries after this write (ok false: none). On create it is the creator; on
// update, the record it had, with the writer added when the write changes the
// templateRef or the parameters (only possible before the template is resolved: then
// they are fixed). A checklist that had a template and no record (written before
// tminus recorded authors) gets none: the controller will not resolve a template for
// an author it does not know. One that gets a templateRef in place of its own phases
// starts a record with the writer, whose phases were judged at admission.
func authorsRecord(req admission.Request, obj, old *deployv1alpha1.DeploymentChecklist) (string, bool) {
	if obj.Spec.TemplateRef == nil {
		return "", false
	}
	me := deputy.SubjectOf(req.UserInfo)
	if req.Operation == admissionv1.Create || old.Spec.TemplateRef == nil {
		return deputy.WithAuthor(nil, me), true
	}
	rec, had := old.Annotations[deputy.AuthorsAnnotation]
	authors, err := deputy.Authors(old.Annotations)
	if !had || err != nil {
		return "", false
	}
	if equality.Semantic.DeepEqual(obj.Spec.TemplateRef, old.Spec.TemplateRef) && maps.Equal(obj.Spec.Parameters, old.Spec.Parameters) {
		return rec, true
	}
	return deputy.WithAuthor(authors, me), true
}
