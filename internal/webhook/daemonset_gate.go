package webhook

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
)

// DaemonSetGatePath is where the DaemonSet admission webhook is served.
const DaemonSetGatePath = "/mutate-apps-v1-daemonset"

// DaemonSetGate is the Deployment gate's rule for DaemonSets, held by the OnDelete
// update strategy instead of a pause: a new template no checklist released is admitted
// with updateStrategy OnDelete in the same write (the strategy written kept as the
// owner's in deploy.tminus.dev/owner-strategy), a template a checklist rolled back is
// refused, and a write putting a strategy back on a held template is turned back into
// a hold. A DaemonSet its owner runs with OnDelete cannot be held: its writes are
// admitted with a warning (refusals still apply).
type DaemonSetGate struct {
	// Reader reads checklists and ControllerRevisions from the manager's cache, Fresh
	// from the API server (a write about to be held or refused is decided again on it).
	Reader, Fresh client.Reader
	// Authorizer judges a write dropping refused templates, as for Deployments.
	Authorizer client.Client
}

// Handle admits, holds or refuses a write of a gated DaemonSet.
func (w *DaemonSetGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	var cur appsv1.DaemonSet
	if err := json.Unmarshal(req.Object.Raw, &cur); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	var old *appsv1.DaemonSet
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old = &appsv1.DaemonSet{}
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		cur.Status = old.Status
	}
	refusals := &DeploymentGate{Authorizer: w.Authorizer}
	var oldMeta *appsv1.Deployment
	if old != nil {
		oldMeta = &appsv1.Deployment{ObjectMeta: old.ObjectMeta}
	}
	kept, warning, err := refusals.keepRefusals(ctx, req, oldMeta, &appsv1.Deployment{ObjectMeta: cur.ObjectMeta})
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	ops := keepRefusalsIn(&cur.ObjectMeta, kept)
	ops = append(ops, keepHoldMarks(old, &cur)...)
	v, err := w.decide(ctx, old, &cur)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if v.Deny != "" {
		return admission.Denied(v.Deny)
	}
	var warnings []string
	if warning != "" {
		warnings = append(warnings, warning)
	}
	heldAfter := heldDaemonSetWrite(&cur)
	if v.Hold != "" {
		if why := target.NotGateableDaemonSet(&cur); why != "" && !heldDaemonSetWrite(&cur) {
			warnings = append(warnings, "tminus did not hold this DaemonSet: "+why)
		} else {
			hold, err := strategyHoldPatch(old, &cur, v)
			if err != nil {
				return admission.Errored(http.StatusInternalServerError, err)
			}
			ops = append(ops, hold...)
			heldAfter = true
			warnings = append(warnings, "tminus held this DaemonSet (spec.updateStrategy OnDelete): "+v.Hold)
		}
	}
	if heldAfter {
		ops = append(ops, keepServing(old, &cur)...)
	}
	resp := admission.Allowed("")
	if len(ops) > 0 {
		resp = admission.Patched("", ops...)
	}
	resp.Warnings = append(resp.Warnings, warnings...)
	return resp
}

// keepHoldMarks puts back tminus's hold marks (the owner's strategy kept aside, and who
// holds it) that a write drops from a DaemonSet tminus holds, while the write keeps it
// held (OnDelete, the same template). Without them the next write would see a DaemonSet
// its owner runs with OnDelete, and a RollingUpdate written then would release the held
// template with no checklist. tminus's own release writes the owner's strategy back in
// the same write, so it is not one of these.
func keepHoldMarks(old, cur *appsv1.DaemonSet) []jsonpatch.JsonPatchOperation {
	if old == nil || !heldDaemonSetWrite(old) || cur.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType ||
		gate.TemplateHash(&old.Spec.Template) != gate.TemplateHash(&cur.Spec.Template) {
		return nil
	}
	var ops []jsonpatch.JsonPatchOperation
	for _, k := range []string{deployv1alpha1.OwnerStrategyAnnotation, deployv1alpha1.HeldByAnnotation} {
		was, ok := old.Annotations[k]
		if now, still := cur.Annotations[k]; !ok || (still && now == was) {
			continue
		}
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", map[string]string{}))
		}
		cur.Annotations[k] = was
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+pointerEscape(k), was))
	}
	return ops
}

// keepServing records on a DaemonSet the write leaves held the template that served when
// the hold began (ServingTemplateAnnotation): the one the stored DaemonSet keeps, or, as
// the hold begins, its template once every pod runs it. What a rollback restores is
// read from it, never guessed; a writer cannot set it nor drop it. Nothing is recorded
// when nothing is known to serve (a DaemonSet created held).
func keepServing(old, cur *appsv1.DaemonSet) []jsonpatch.JsonPatchOperation {
	want := ""
	if old != nil {
		want = target.DaemonSetServingTemplate(old)
	}
	have, has := cur.Annotations[deployv1alpha1.ServingTemplateAnnotation]
	key := "/metadata/annotations/" + pointerEscape(deployv1alpha1.ServingTemplateAnnotation)
	switch {
	case want == "" && has:
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("remove", key, nil)}
	case want != "" && (!has || have != want):
		// The hold's patch, or the write itself, leaves cur with annotations.
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", key, want)}
	}
	return nil
}

// heldDaemonSetWrite says whether the write keeps tminus's hold (OnDelete with the
// owner's strategy kept): not an owner's OnDelete.
func heldDaemonSetWrite(ds *appsv1.DaemonSet) bool {
	_, kept := ds.Annotations[deployv1alpha1.OwnerStrategyAnnotation]
	return ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType && kept
}

func (w *DaemonSetGate) decide(ctx context.Context, old, cur *appsv1.DaemonSet) (gate.Verdict, error) {
	cls, err := target.DecidingOf(ctx, w.Reader, deployv1alpha1.KindDaemonSet, cur.Namespace, cur.Name,
		gate.TemplateHash(&cur.Spec.Template))
	if err != nil {
		return gate.Verdict{}, err
	}
	key := types.NamespacedName{Namespace: cur.Namespace, Name: cur.Name}
	view := func(r client.Reader) (gate.Deployment, *gate.Deployment, error) {
		var revs []appsv1.ControllerRevision
		if cur.UID != "" {
			if revs, err = target.DaemonSetControllerRevisions(ctx, r, cur); err != nil {
				return gate.Deployment{}, nil, err
			}
		}
		if old == nil {
			return target.DaemonSetGateView(cur, cur, revs), nil, nil
		}
		// The stored DaemonSet says what ran: the write may drop tminus's marks, and
		// its status is the stored one, of the stored template.
		curView := target.DaemonSetGateView(cur, old, revs)
		oldView := target.DaemonSetGateView(old, old, revs)
		return curView, &oldView, nil
	}
	curView, oldView, err := view(w.Reader)
	if err != nil {
		return gate.Verdict{}, err
	}
	v := gate.Admit(oldView, &curView, cls)
	if (v.Deny == "" && v.Hold == "" && !gate.AwaitsTemplate(cls)) || w.Fresh == nil {
		return v, nil
	}
	hash := gate.TemplateHash(&cur.Spec.Template)
	if cls, err = target.RefreshChecklists(ctx, w.Fresh, key.Namespace, cls, func(c *gate.Checklist) bool {
		return c.Live() || gate.SameTemplate(c.RolledBackHash, hash)
	}); err != nil {
		return gate.Verdict{}, err
	}
	if curView, oldView, err = view(w.Fresh); err != nil {
		return gate.Verdict{}, err
	}
	return gate.Admit(oldView, &curView, cls), nil
}

// strategyHoldPatch is the JSON patch of a hold on a DaemonSet: updateStrategy OnDelete,
// the strategy the writer set kept as the owner's, and tminus's hold annotations.
func strategyHoldPatch(old, ds *appsv1.DaemonSet, v gate.Verdict) ([]jsonpatch.JsonPatchOperation, error) {
	want := map[string]string{
		deployv1alpha1.HeldByAnnotation:     v.HeldBy,
		deployv1alpha1.HoldReasonAnnotation: v.Hold,
	}
	if v.HeldTemplate != "" {
		want[deployv1alpha1.HeldTemplateAnnotation] = v.HeldTemplate
	}
	kept, wasKept := "", false
	if old != nil {
		kept, wasKept = old.Annotations[deployv1alpha1.OwnerStrategyAnnotation]
	}
	written, stillKept := ds.Annotations[deployv1alpha1.OwnerStrategyAnnotation]
	switch {
	case wasKept && (!stillKept || written == kept) &&
		(ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType || defaultDaemonSetStrategy(ds.Spec.UpdateStrategy)):
		// A server-side apply of a manifest without updateStrategy drops the strategy
		// the hold wrote in the writer's earlier write (the API server counts it as the
		// writer's), and the API server defaults it; one with the live OnDelete may drop
		// the annotation. Neither says what the owner's strategy is: the one kept stays
		// (a manifest setting the default strategy itself is not told apart).
		want[deployv1alpha1.OwnerStrategyAnnotation] = kept
	case !heldDaemonSetWrite(ds):
		// The writer's own strategy: the owner's, put back at the release.
		raw, err := json.Marshal(ds.Spec.UpdateStrategy)
		if err != nil {
			return nil, err
		}
		want[deployv1alpha1.OwnerStrategyAnnotation] = string(raw)
	}
	ops := []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/spec/updateStrategy",
		map[string]any{"type": string(appsv1.OnDeleteDaemonSetStrategyType)})}
	if ds.Annotations == nil {
		return append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", want)), nil
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+pointerEscape(k), want[k]))
	}
	if _, ok := ds.Annotations[deployv1alpha1.HeldTemplateAnnotation]; ok && v.HeldTemplate == "" {
		ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+pointerEscape(deployv1alpha1.HeldTemplateAnnotation), nil))
	}
	return ops, nil
}

// defaultDaemonSetStrategy says whether us is what the API server defaults a DaemonSet
// written without updateStrategy to: RollingUpdate, maxUnavailable 1, maxSurge 0.
func defaultDaemonSetStrategy(us appsv1.DaemonSetUpdateStrategy) bool {
	ru := us.RollingUpdate
	return us.Type == appsv1.RollingUpdateDaemonSetStrategyType && ru != nil &&
		ru.MaxUnavailable != nil && ru.MaxUnavailable.String() == "1" &&
		(ru.MaxSurge == nil || ru.MaxSurge.String() == "0")
}
