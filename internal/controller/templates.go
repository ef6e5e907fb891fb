package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/deputy"
	"github.com/tminus-dev/tminus/internal/templates"
)

// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=checklisttemplates;clusterchecklisttemplates,verbs=get;list;watch

// templateIndex indexes checklists by the template they are made from: "<kind>/<name>".
const templateIndex = ".spec.templateRef"

// stalledRetry is when a checklist that cannot be made from its template is looked at
// again without a change to the template (which is watched).
const stalledRetry = time.Minute

// resolve returns the checklist tminus walks. A checklist made from a template is
// resolved once: the template read, its parameters filled in, the result kept in status
// (dcl.Status, written with the next status write). It reports a checklist that cannot
// be made (template missing, a parameter unknown or missing, a resolved value invalid)
// as stalled, with its conditions set, never acting on its target.
func (r *DeploymentChecklistReconciler) resolve(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	now time.Time) (*deployv1alpha1.DeploymentChecklist, bool, error) {
	if ref := dcl.Spec.TemplateRef; ref != nil && dcl.Status.Resolved == nil {
		tmpl, err := r.template(ctx, dcl.Namespace, ref)
		if err != nil {
			return nil, false, err
		}
		if tmpl == nil {
			where := ""
			if ref.Kind == "ChecklistTemplate" {
				where = " in namespace " + dcl.Namespace
			}
			checklist.SetStalled(&dcl.Status, dcl.Generation, templates.ReasonTemplateNotFound,
				fmt.Sprintf("spec.templateRef: %s %s not found%s; the checklist starts when it exists", ref.Kind, ref.Name, where))
			return nil, true, nil
		}
		body, values, err := templates.Resolve(dcl, tmpl)
		if err != nil {
			return nil, r.stallOn(dcl, err), nonTemplateError(err)
		}
		if msg := gateChanged(dcl, tmpl, &body); msg != "" {
			checklist.SetStalled(&dcl.Status, dcl.Generation, templates.ReasonTemplateInvalid, msg)
			return nil, true, nil
		}
		if r.VerifiedApprovals {
			reason, msg, err := r.judgeAuthors(ctx, dcl, tmpl, body)
			if err != nil {
				return nil, false, err
			}
			if msg != "" {
				checklist.SetStalled(&dcl.Status, dcl.Generation, reason, msg)
				return nil, true, nil
			}
		}
		t := metav1.NewTime(now.Truncate(time.Second))
		dcl.Status.Template = &deployv1alpha1.TemplateStatus{Kind: tmpl.Kind, Name: tmpl.Name, Generation: tmpl.Generation,
			ResolvedAt: t, Parameters: values}
		dcl.Status.Resolved = templates.Raw(body)
	}
	eff, err := templates.Effective(dcl)
	if err != nil {
		return nil, r.stallOn(dcl, err), nonTemplateError(err)
	}
	return eff, false, nil
}

// judgeAuthors says why the template a checklist resolves may not be used ("" when it
// may), with the Stalled reason. The webhook judged the checklist when it was written,
// but a template is read later (a checklist waiting for its template takes whatever
// appears under that name): what the resolved checklist makes tminus do (Secrets,
// Jobs, service accounts, with what decides their use) is judged now, as each author
// the webhook recorded. Only with the webhook installed (VerifiedApprovals): its record
// can be believed then, and nothing is judged without it.
func (r *DeploymentChecklistReconciler) judgeAuthors(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	tmpl *templates.Template, body deployv1alpha1.ChecklistBody) (reason, msg string, err error) {
	authors, err := deputy.Authors(dcl.Annotations)
	if err != nil || len(authors) == 0 {
		return deputy.ReasonAuthorUnknown, fmt.Sprintf("metadata.annotations[%s]: the checklist's authors were not recorded "+
			"(written before tminus recorded them), so %s %s is not resolved for it: a template is judged as who wrote the "+
			"checklist; create the checklist again", deputy.AuthorsAnnotation, tmpl.Kind, tmpl.Name), nil
	}
	made := dcl.DeepCopy()
	made.Spec.ChecklistBody = body
	refs := deputy.ChecklistReferences(made)
	for _, a := range authors {
		refusal, err := deputy.Judge(ctx, r.Client, a, refs, nil)
		if err != nil {
			return "", "", err
		}
		if refusal != nil {
			return deputy.ReasonAuthorNotAllowed, fmt.Sprintf("%s %s, as resolved: %s; %q wrote this checklist, so its "+
				"template may not make tminus do it", tmpl.Kind, tmpl.Name, refusal.Message(), a.User), nil
		}
	}
	return "", "", nil
}

// stallOn sets a resolution error's conditions and reports whether it was one.
func (r *DeploymentChecklistReconciler) stallOn(dcl *deployv1alpha1.DeploymentChecklist, err error) bool {
	te, ok := errors.AsType[*templates.Error](err)
	if !ok {
		return false
	}
	checklist.SetStalled(&dcl.Status, dcl.Generation, te.Reason, te.Message)
	return true
}

func nonTemplateError(err error) error {
	if _, ok := errors.AsType[*templates.Error](err); ok {
		return nil
	}
	return err
}

// writeStalled writes a checklist that cannot be made, when its status changed, and
// looks again later (the template is watched, so a fix is seen at once).
func (r *DeploymentChecklistReconciler) writeStalled(ctx context.Context, dcl, stored *deployv1alpha1.DeploymentChecklist) (ctrl.Result, error) {
	r.unwritten.forget(client.ObjectKeyFromObject(dcl))
	if checklist.Compare(&stored.Status, &dcl.Status) != checklist.Unchanged {
		if err := r.Status().Patch(ctx, dcl, client.MergeFromWithOptions(stored, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, err
		}
		if c := stalledCondition(&dcl.Status); c != nil && !sameStall(stalledCondition(&stored.Status), c) {
			r.Recorder.Eventf(dcl, nil, "Warning", c.Reason, "Reconcile", "%s", checklist.EventNote(c.Message))
		}
	}
	return ctrl.Result{RequeueAfter: stalledRetry}, nil
}

func sameStall(a, b *metav1.Condition) bool {
	return a != nil && b != nil && a.Reason == b.Reason && a.Message == b.Message
}

func stalledCondition(st *deployv1alpha1.DeploymentChecklistStatus) *metav1.Condition {
	return meta.FindStatusCondition(st.Conditions, checklist.CondStalled)
}

// template reads the template a checklist names from the cache; nil when it does not
// exist.
func (r *DeploymentChecklistReconciler) template(ctx context.Context, ns string, ref *deployv1alpha1.TemplateRef) (*templates.Template, error) {
	var obj client.Object
	key := types.NamespacedName{Name: ref.Name}
	switch ref.Kind {
	case "ClusterChecklistTemplate":
		obj = &deployv1alpha1.ClusterChecklistTemplate{}
	default:
		obj, key.Namespace = &deployv1alpha1.ChecklistTemplate{}, ns
	}
	if err := r.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
	}
	return templates.From(obj), nil
}

// watchTemplates enqueues, when a template changes or appears, the checklists made from
// it that have not been resolved yet (the others keep what they resolved).
func (r *DeploymentChecklistReconciler) checklistsOfTemplate(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list deployv1alpha1.DeploymentChecklistList
		opts := []client.ListOption{client.MatchingFields{templateIndex: kind + "/" + o.GetName()}}
		if kind == "ChecklistTemplate" {
			opts = append(opts, client.InNamespace(o.GetNamespace()))
		}
		if err := r.List(ctx, &list, opts...); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			if list.Items[i].Status.Resolved == nil {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
		}
		return reqs
	}
}

func indexTemplateRefs(o client.Object) []string {
	if ref := o.(*deployv1alpha1.DeploymentChecklist).Spec.TemplateRef; ref != nil {
		return []string{ref.Kind + "/" + ref.Name}
	}
	return nil
}

// gateChanged says why the resolved checklist may not be walked ("" when it may): its
// gate is not the one the checklist was created with (spec.gate, where the checklist
// webhook records the template's gate). The template changed between the checklist's
// admission and its resolution, or the checklist was created without the webhook: a
// gate that changes after creation could switch a release's hold off.
func gateChanged(dcl *deployv1alpha1.DeploymentChecklist, tmpl *templates.Template, body *deployv1alpha1.ChecklistBody) string {
	want, got := cmp.Or(dcl.Spec.Gate, deployv1alpha1.GatePause), cmp.Or(body.Gate, deployv1alpha1.GatePause)
	if want == got {
		return ""
	}
	return fmt.Sprintf("spec.gate: this checklist gates with %s, fixed when it was created, but %s %s now says gate: %s; "+
		"create a new checklist (spec.gate: %s) to release with it", want, tmpl.Kind, tmpl.Name, got, got)
}
