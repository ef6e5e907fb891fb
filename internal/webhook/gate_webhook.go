package webhook

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/deputy"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
)

// The manager drops the oldest refused template past the bound: it may allow one again.
// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=deploymentchecklists,verbs=unrefuse

// GatePath is where the Deployment admission webhook is served.
const GatePath = "/mutate-apps-v1-deployment"

// DeploymentGate is the admission side of the rule "while tminus gates a Deployment,
// no pod template rolls out that a checklist did not release". The API server calls
// it for gated Deployments only (object selector on deploy.tminus.dev/gated), and only
// for writes that change the pod template or the pause (match conditions), so scaling,
// labels and the Deployment controller's own writes never wait for it. It holds a new
// template in the same write that makes it (spec.paused: true and tminus's hold
// annotations) and refuses a template a checklist rolled back.
type DeploymentGate struct {
	// Reader reads checklists and ReplicaSets from the manager's cache (indexed by
	// target.Index).
	Reader client.Reader
	// Fresh reads from the API server: a write about to be held or refused is decided
	// again on fresh data, so a cache a moment behind (a release just written) never
	// holds what a checklist released. The other way round, a cache that does not show
	// a rollback yet is covered by the Deployment's own mark (RolledBackAnnotation).
	Fresh client.Reader
	// Authorizer creates the SubjectAccessReviews that judge a write taking a template
	// out of the Deployment's refused templates (deploy.tminus.dev/refused-templates);
	// without one, every entry a write drops is put back.
	Authorizer client.Client
	Decoder    admission.Decoder
}

// Handle admits, holds or refuses a write of a gated Deployment.
func (w *DeploymentGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	cur, err := decodeGateFields(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	var old *appsv1.Deployment
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err = decodeGateFields(req.OldObject.Raw); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	kept, warning, err := w.keepRefusals(ctx, req, old, cur)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	ops := keepRefusalsIn(&cur.ObjectMeta, kept)
	v, err := w.decide(ctx, old, cur)
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
	if v.Hold != "" {
		ops = append(ops, holdPatch(cur.Annotations, v)...)
		warnings = append(warnings, "tminus held this Deployment (spec.paused): "+v.Hold)
	}
	resp := admission.Allowed("")
	if len(ops) > 0 {
		resp = admission.Patched("", ops...)
	}
	resp.Warnings = append(resp.Warnings, warnings...)
	return resp
}

// keepRefusals judges a write that drops templates from the stored Deployment's
// refused templates (deploy.tminus.dev/refused-templates): allowing a rolled-back
// template again takes the verb unrefuse on deploymentchecklists in its namespace
// (tminus's own manager has it, to drop the oldest entry past the bound). A writer
// without it (an editor, a GitOps tool replacing the whole object) has what it dropped
// put back: kept is the list the write stores then, nil when the write stands as it
// is, and warning says what was kept and why.
func (w *DeploymentGate) keepRefusals(ctx context.Context, req admission.Request, old, cur *appsv1.Deployment) (
	kept []gate.Refusal, warning string, err error) {
	if old == nil {
		return nil, "", nil
	}
	before := gate.ParseRefusals(old.Annotations[deployv1alpha1.RefusedTemplatesAnnotation])
	after := gate.ParseRefusals(cur.Annotations[deployv1alpha1.RefusedTemplatesAnnotation])
	dropped := gate.Dropped(before, after)
	if len(dropped) == 0 {
		return nil, "", nil
	}
	if w.Authorizer != nil {
		ok, err := deputy.Allowed(ctx, w.Authorizer, deputy.SubjectOf(req.UserInfo), authorizationv1.ResourceAttributes{
			Namespace: cur.Namespace, Verb: deployv1alpha1.UnrefuseVerb,
			Group: deployv1alpha1.GroupVersion.Group, Resource: checklistsResource,
		})
		if err != nil {
			return nil, "", fmt.Errorf("judging the templates allowed again: %w", err)
		}
		if ok {
			return nil, "", nil
		}
	}
	// The stored entries first: a writer without the right can neither drop one nor
	// push one out past the bound with entries of its own.
	kept = slices.Clone(before)
	for _, r := range after {
		if len(kept) < deployv1alpha1.MaxRefusedTemplates && gate.RefusedIn(kept, r.Hash) == nil {
			kept = append(kept, r)
		}
	}
	names := make([]string, 0, len(dropped))
	for _, r := range dropped {
		names = append(names, fmt.Sprintf("%s (rolled back by checklist %s)", r.Hash, r.Checklist))
	}
	return kept, fmt.Sprintf("tminus kept the refused templates %s in annotation %s: user %q may not allow them again "+
		"(it needs the verb %s on deploymentchecklists in namespace %s)", strings.Join(names, ", "),
		deployv1alpha1.RefusedTemplatesAnnotation, req.UserInfo.Username, deployv1alpha1.UnrefuseVerb, cur.Namespace), nil
}

// refusalsPatch is the JSON patch setting the refused templates annotation to value,
// written against the object as the API server sent it (annotations are its own, nil
// when it has none).
// keepRefusalsIn puts the refusals kept back on the object the rule decides on and
// returns the patch that writes them (none when nothing was dropped).
func keepRefusalsIn(meta *metav1.ObjectMeta, kept []gate.Refusal) []jsonpatch.JsonPatchOperation {
	if kept == nil {
		return nil
	}
	value := gate.FormatRefusals(kept)
	ops := refusalsPatch(meta.Annotations, value)
	meta.Annotations = maps.Clone(meta.Annotations)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[deployv1alpha1.RefusedTemplatesAnnotation] = value
	return ops
}

func refusalsPatch(annotations map[string]string, value string) []jsonpatch.JsonPatchOperation {
	if annotations == nil {
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/metadata/annotations",
			map[string]string{deployv1alpha1.RefusedTemplatesAnnotation: value})}
	}
	return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add",
		"/metadata/annotations/"+pointerEscape(deployv1alpha1.RefusedTemplatesAnnotation), value)}
}

// holdPatch is the JSON patch of a hold: spec.paused and tminus's hold annotations,
// nothing else. It is written against the object as the API server sent it, never
// from a typed copy re-encoded: a field this build's types do not know (a pod-spec
// field newer than its k8s.io/api) would be removed by a diff of the two.
// annotations are the object's, nil when it has none.
func holdPatch(annotations map[string]string, v gate.Verdict) []jsonpatch.JsonPatchOperation {
	want := map[string]string{
		deployv1alpha1.HeldByAnnotation:     v.HeldBy,
		deployv1alpha1.HoldReasonAnnotation: v.Hold,
	}
	if v.HeldTemplate != "" {
		want[deployv1alpha1.HeldTemplateAnnotation] = v.HeldTemplate
	}
	ops := []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/spec/paused", true)}
	if annotations == nil {
		return append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", want))
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+pointerEscape(k), want[k]))
	}
	if _, ok := annotations[deployv1alpha1.HeldTemplateAnnotation]; ok && v.HeldTemplate == "" {
		ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+pointerEscape(deployv1alpha1.HeldTemplateAnnotation), nil))
	}
	return ops
}

// pointerEscape escapes a JSON pointer's reference token (RFC 6901): annotation keys
// hold "/".
func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// decide applies the rule to the write on the cache's view. A write it would hold or
// refuse is decided again on the API server's view of what can loosen the decision:
// the checklists that are live or refuse the template, read one by one (a checklist
// the cache does not know yet has no release to loosen anything with), and the
// Deployment's ReplicaSets, listed by its selector unless the cache's match the
// stored Deployment's status (target.ReplicaSetsMatchStatus: a settled Deployment's
// do). A refused self-heal storm then costs the API server one small read per
// write, not the namespace's history.
func (w *DeploymentGate) decide(ctx context.Context, old, cur *appsv1.Deployment) (gate.Verdict, error) {
	hash := gate.TemplateHash(&cur.Spec.Template)
	cls, err := target.Deciding(ctx, w.Reader, cur.Namespace, cur.Name, hash)
	if err != nil {
		return gate.Verdict{}, err
	}
	var rss []appsv1.ReplicaSet
	if cur.UID != "" {
		if rss, err = target.ReplicaSets(ctx, w.Reader, cur); err != nil {
			return gate.Verdict{}, err
		}
	}
	v := admit(old, cur, rss, cls)
	if (v.Deny == "" && v.Hold == "" && !gate.AwaitsTemplate(cls)) || w.Fresh == nil {
		return v, nil
	}
	if cls, err = target.RefreshChecklists(ctx, w.Fresh, cur.Namespace, cls, func(c *gate.Checklist) bool {
		return c.Live() || gate.SameTemplate(c.RolledBackHash, hash)
	}); err != nil {
		return gate.Verdict{}, err
	}
	if cur.UID != "" && !target.ReplicaSetsMatchStatus(old, rss) {
		if rss, err = target.ReplicaSetsFromAPI(ctx, w.Fresh, cur); err != nil {
			return gate.Verdict{}, err
		}
	}
	return admit(old, cur, rss, cls), nil
}

func admit(old, cur *appsv1.Deployment, rss []appsv1.ReplicaSet, cls []gate.Checklist) gate.Verdict {
	curView := target.GateView(cur, rss)
	var oldView *gate.Deployment
	if old != nil {
		v := target.GateView(old, rss)
		oldView = &v
	}
	return gate.Admit(oldView, &curView, cls)
}

// gateFields is the part of a Deployment the gate reads: decoding only it keeps the
// admission of a Deployment write well under a millisecond (a whole Deployment through
// the scheme's decoder is most of the cost otherwise).
type gateFields struct {
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		UID         types.UID         `json:"uid"`
		Generation  int64             `json:"generation"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Paused   bool                   `json:"paused"`
		Selector *metav1.LabelSelector  `json:"selector"`
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
	// Status is what target.ReplicaSetsMatchStatus compares the cache with.
	Status struct {
		ObservedGeneration int64 `json:"observedGeneration"`
		Replicas           int32 `json:"replicas"`
		UpdatedReplicas    int32 `json:"updatedReplicas"`
	} `json:"status"`
}

func decodeGateFields(raw []byte) (*appsv1.Deployment, error) {
	var f gateFields
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &f); err != nil {
		return nil, err
	}
	m := f.Metadata
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID,
		Generation: m.Generation, Labels: m.Labels, Annotations: m.Annotations}}
	d.Spec.Paused, d.Spec.Selector, d.Spec.Template = f.Spec.Paused, f.Spec.Selector, f.Spec.Template
	d.Status.ObservedGeneration, d.Status.Replicas, d.Status.UpdatedReplicas =
		f.Status.ObservedGeneration, f.Status.Replicas, f.Status.UpdatedReplicas
	return d, nil
}
