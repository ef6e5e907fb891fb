package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/deputy"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
)

// +kubebuilder:rbac:groups=deploy.tminus.dev,resources=deploymentchecklists,verbs=step

// StatefulSetGatePath is where the StatefulSet admission webhook is served.
const StatefulSetGatePath = "/mutate-apps-v1-statefulset"

// StatefulSetGate is the Deployment gate's rule for StatefulSets, held by their
// rolling update's partition instead of a pause (and refuses, as StatefulSetScaleGate
// does, to scale one up while a live checklist releases it in steps): a new template
// no checklist released
// is admitted with the partition at deployv1alpha1.HoldPartition in the same write
// (the owner's partition kept in deploy.tminus.dev/owner-partition), a template a
// checklist rolled back is refused, and a write taking the hold partition off a held
// template is turned back into a hold. Scaling (the scale subresource) and the
// StatefulSet controller's status writes never reach it. A StatefulSet with the
// OnDelete strategy cannot be held: its writes are admitted with a warning (refusals
// still apply).
type StatefulSetGate struct {
	// Reader reads checklists and ControllerRevisions from the manager's cache, Fresh
	// from the API server (a write about to be held or refused is decided again on it).
	Reader, Fresh client.Reader
	// Authorizer judges a write dropping refused templates, as for Deployments, and one
	// changing the step mark (keepStepMark).
	Authorizer client.Client
}

// Handle admits, holds or refuses a write of a gated StatefulSet.
func (w *StatefulSetGate) Handle(ctx context.Context, req admission.Request) admission.Response {
	var cur appsv1.StatefulSet
	if err := json.Unmarshal(req.Object.Raw, &cur); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	var old *appsv1.StatefulSet
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old = &appsv1.StatefulSet{}
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		// Which revisions ran pods is the stored object's status, not what the writer
		// sent back.
		cur.Status = old.Status
	}
	markOps, markWarning, err := w.keepStepMark(ctx, req, old, &cur)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if old != nil {
		// Scaling up in a step: the one write of spec.replicas this webhook sees (its
		// match conditions), refused as through the scale subresource.
		why, err := scaleUpInStep(ctx, w.Reader, w.Fresh, old, replicasOf(old), replicasOf(&cur))
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		if why != "" {
			return admission.Denied(why)
		}
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
	ops := append(markOps, keepRefusalsIn(&cur.ObjectMeta, kept)...)
	v, cls, err := w.decide(ctx, old, &cur)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if v.Deny != "" {
		return admission.Denied(v.Deny)
	}
	stepping := slices.ContainsFunc(cls, func(c gate.Checklist) bool { return c.Live() })
	if why := target.NotGateableStatefulSet(&cur); why != "" && old != nil && v.Hold == "" && stepping &&
		old.Annotations[deployv1alpha1.StepAnnotation] != "" && cur.Annotations[deployv1alpha1.StepAnnotation] != "" {
		// In a step, the pods below the step's partition are not released yet: any pod
		// deleted after this write would start on the release.
		return admission.Denied(fmt.Sprintf("StatefulSet %s/%s is released in steps by tminus (%s, deploy.tminus.dev/step): "+
			"this write would make it ungateable (%s), and every pod deleted afterwards would start on the release before "+
			"its steps passed. Let the steps end, or roll the release back, first (docs/gitops.md)",
			cur.Namespace, cur.Name, old.Annotations[deployv1alpha1.StepAnnotation], why))
	}
	var warnings []string
	for _, msg := range []string{markWarning, warning} {
		if msg != "" {
			warnings = append(warnings, msg)
		}
	}
	if v.Hold != "" {
		if why := target.NotGateableStatefulSet(&cur); why != "" && old != nil && target.StatefulSetGateView(old, nil).Paused {
			// Held now, and the write would take the StatefulSet where tminus cannot hold
			// it: any pod deleted afterwards would come back on the held template.
			return admission.Denied(fmt.Sprintf("StatefulSet %s/%s is held by tminus (spec.updateStrategy.rollingUpdate.partition): %s "+
				"This write would make it ungateable (%s), and every pod deleted afterwards would start on a template no checklist "+
				"released. Release the template with a checklist first (docs/gitops.md)",
				cur.Namespace, cur.Name, v.Hold, why))
		} else if why != "" {
			warnings = append(warnings, "tminus did not hold this StatefulSet: "+why)
		} else {
			ops = append(ops, partitionHoldPatch(old, &cur, v)...)
			warnings = append(warnings, "tminus held this StatefulSet (spec.updateStrategy.rollingUpdate.partition): "+v.Hold)
		}
	} else if step := stepPartitionPatch(old, &cur); step != nil && stepping {
		ops = append(ops, step...)
		warnings = append(warnings, fmt.Sprintf("tminus releases this StatefulSet in steps (%s): the partition written is kept "+
			"as the owner's (deploy.tminus.dev/owner-partition), put back after the last step; the step's stays",
			old.Annotations[deployv1alpha1.StepAnnotation]))
	}
	resp := admission.Allowed("")
	if len(ops) > 0 {
		resp = admission.Patched("", ops...)
	}
	resp.Warnings = append(resp.Warnings, warnings...)
	return resp
}

// decide applies the rule on the cache's view, and a write it would hold or refuse
// again on the API server's (as DeploymentGate.decide does); the checklists it decided
// with come back too (a live one among them steps the StatefulSet, if any does).
func (w *StatefulSetGate) decide(ctx context.Context, old, cur *appsv1.StatefulSet) (gate.Verdict, []gate.Checklist, error) {
	cls, err := target.DecidingOf(ctx, w.Reader, deployv1alpha1.KindStatefulSet, cur.Namespace, cur.Name,
		gate.TemplateHash(&cur.Spec.Template))
	if err != nil {
		return gate.Verdict{}, nil, err
	}
	var revs []appsv1.ControllerRevision
	if cur.UID != "" {
		if revs, err = target.ControllerRevisions(ctx, w.Reader, cur); err != nil {
			return gate.Verdict{}, nil, err
		}
	}
	v := admitStatefulSet(old, cur, revs, cls)
	if (v.Deny == "" && v.Hold == "" && !gate.AwaitsTemplate(cls)) || w.Fresh == nil {
		return v, cls, nil
	}
	hash := gate.TemplateHash(&cur.Spec.Template)
	if cls, err = target.RefreshChecklists(ctx, w.Fresh, cur.Namespace, cls, func(c *gate.Checklist) bool {
		return c.Live() || gate.SameTemplate(c.RolledBackHash, hash)
	}); err != nil {
		return gate.Verdict{}, nil, err
	}
	if cur.UID != "" {
		if revs, err = target.ControllerRevisions(ctx, w.Fresh, cur); err != nil {
			return gate.Verdict{}, nil, err
		}
	}
	return admitStatefulSet(old, cur, revs, cls), cls, nil
}

func admitStatefulSet(old, cur *appsv1.StatefulSet, revs []appsv1.ControllerRevision, cls []gate.Checklist) gate.Verdict {
	curView := target.StatefulSetGateView(cur, revs)
	var oldView *gate.Deployment
	if old != nil {
		v := target.StatefulSetGateView(old, revs)
		oldView = &v
	}
	return gate.Admit(oldView, &curView, cls)
}

// partitionHoldPatch is the JSON patch of a hold on a StatefulSet: the hold partition,
// the partition the writer set kept as the owner's (a write setting none keeps the one
// old kept), and tminus's hold annotations;
// nothing else (maxUnavailable and every other field stay as written).
func partitionHoldPatch(old, s *appsv1.StatefulSet, v gate.Verdict) []jsonpatch.JsonPatchOperation {
	want := map[string]string{
		deployv1alpha1.HeldByAnnotation:     v.HeldBy,
		deployv1alpha1.HoldReasonAnnotation: v.Hold,
	}
	if v.HeldTemplate != "" {
		want[deployv1alpha1.HeldTemplateAnnotation] = v.HeldTemplate
	}
	ru := s.Spec.UpdateStrategy.RollingUpdate
	kept, wasKept := "", false
	if old != nil {
		kept, wasKept = old.Annotations[deployv1alpha1.OwnerPartitionAnnotation]
	}
	_, stillKept := s.Annotations[deployv1alpha1.OwnerPartitionAnnotation]
	switch {
	case stillKept && s.Annotations[deployv1alpha1.StepAnnotation] != "":
		// tminus releases it in steps: the partition is the step's, the owner's stays kept.
	case ru != nil && ru.Partition != nil && *ru.Partition < deployv1alpha1.HoldPartition:
		// The writer's own partition: the owner's, put back at the release.
		want[deployv1alpha1.OwnerPartitionAnnotation] = target.OwnerPartition(ru)
	case stillKept:
	case wasKept:
		// A writer that leaves the partition and the annotation out (a server-side
		// apply of a manifest without them: a GitOps tool ignoring the partition drops
		// what the hold wrote in its own earlier write, as the API server counts that
		// its) says nothing about the owner's partition: the one kept stays.
		want[deployv1alpha1.OwnerPartitionAnnotation] = kept
	default:
		want[deployv1alpha1.OwnerPartitionAnnotation] = target.OwnerPartition(ru)
	}
	ops := partitionPatch(s, deployv1alpha1.HoldPartition)
	if s.Annotations == nil {
		return append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", want))
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+pointerEscape(k), want[k]))
	}
	if _, ok := s.Annotations[deployv1alpha1.HeldTemplateAnnotation]; ok && v.HeldTemplate == "" {
		ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+pointerEscape(deployv1alpha1.HeldTemplateAnnotation), nil))
	}
	return ops
}

// keepStepMark judges a write that changes or drops the stored StatefulSet's step mark
// (deploy.tminus.dev/step) while a live checklist releases it in steps: tminus's manager
// changes it at each step and drops it at the last release, with the verb step on
// deploymentchecklists in the namespace. From a writer without it (kubectl annotate
// db deploy.tminus.dev/step-, a GitOps tool replacing the whole object), the mark is
// put back: without it the gate would admit a scale-up or a lowered partition that
// starts pods on the release before the step's phase judged them, and the manager's
// last release would not put the owner's partition back. ops is the JSON patch, cur's
// annotations are set as it stores them, and warning says what was kept and why.
func (w *StatefulSetGate) keepStepMark(ctx context.Context, req admission.Request, old, cur *appsv1.StatefulSet) (
	ops []jsonpatch.JsonPatchOperation, warning string, err error) {
	if old == nil {
		return nil, "", nil
	}
	step := old.Annotations[deployv1alpha1.StepAnnotation]
	if step == "" || cur.Annotations[deployv1alpha1.StepAnnotation] == step {
		return nil, "", nil
	}
	live, err := steppedBy(ctx, w.Reader, w.Fresh, old)
	if err != nil || len(live) == 0 {
		return nil, "", err
	}
	if w.Authorizer != nil {
		ok, err := deputy.Allowed(ctx, w.Authorizer, deputy.SubjectOf(req.UserInfo), authorizationv1.ResourceAttributes{
			Namespace: cur.Namespace, Verb: deployv1alpha1.StepVerb,
			Group: deployv1alpha1.GroupVersion.Group, Resource: checklistsResource,
		})
		if err != nil {
			return nil, "", fmt.Errorf("judging the step mark written: %w", err)
		}
		if ok {
			return nil, "", nil
		}
	}
	if cur.Annotations == nil {
		ops = []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/metadata/annotations",
			map[string]string{deployv1alpha1.StepAnnotation: step})}
	} else {
		ops = []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add",
			"/metadata/annotations/"+pointerEscape(deployv1alpha1.StepAnnotation), step)}
	}
	cur.Annotations = maps.Clone(cur.Annotations)
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[deployv1alpha1.StepAnnotation] = step
	return ops, fmt.Sprintf("tminus kept %s: %q: checklist %s releases this StatefulSet in steps, and user %q may not "+
		"change the mark (it needs the verb %s on deploymentchecklists in namespace %s). Let the release end, or roll it "+
		"back (kubectl checklist rollback %s -n %s --reason ...)", deployv1alpha1.StepAnnotation, step,
		strings.Join(live, ", "), req.UserInfo.Username, deployv1alpha1.StepVerb, cur.Namespace, live[0], cur.Namespace), nil
}

// stepPartitionPatch is the JSON patch that keeps a step's partition when a writer other
// than tminus lowers it during a release in steps (kubectl patch, a GitOps apply of the
// manifest's partition): the pods below the step's partition have not been released yet,
// so the partition written becomes the owner's, kept in OwnerPartitionAnnotation and put
// back after the last step, as a partition written during a hold is. tminus's own step
// writes change deploy.tminus.dev/step, and its last release and restore drop it: those
// are not kept back. Nil when the write lowers no step's partition.
func stepPartitionPatch(old, s *appsv1.StatefulSet) []jsonpatch.JsonPatchOperation {
	if old == nil {
		return nil
	}
	step := old.Annotations[deployv1alpha1.StepAnnotation]
	if step == "" || s.Annotations[deployv1alpha1.StepAnnotation] != step {
		return nil
	}
	if _, kept := s.Annotations[deployv1alpha1.OwnerPartitionAnnotation]; !kept {
		return nil
	}
	oru := old.Spec.UpdateStrategy.RollingUpdate
	if oru == nil || oru.Partition == nil || *oru.Partition == 0 {
		return nil
	}
	if s.Spec.UpdateStrategy.Type != "" && s.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return nil
	}
	ru := s.Spec.UpdateStrategy.RollingUpdate
	written := int32(0)
	if ru != nil && ru.Partition != nil {
		written = *ru.Partition
	}
	if written >= *oru.Partition {
		return nil
	}
	return append(partitionPatch(s, *oru.Partition), jsonpatch.NewOperation("add", "/metadata/annotations/"+pointerEscape(deployv1alpha1.OwnerPartitionAnnotation),
		target.OwnerPartition(ru)))
}

// partitionPatch is the JSON patch setting s's rolling update partition to partition
// (the RollingUpdate strategy when s names none), nothing else of the strategy.
func partitionPatch(s *appsv1.StatefulSet, partition int32) []jsonpatch.JsonPatchOperation {
	const key = "partition"
	switch {
	case s.Spec.UpdateStrategy.Type == "":
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/spec/updateStrategy", map[string]any{
			"type": string(appsv1.RollingUpdateStatefulSetStrategyType), "rollingUpdate": map[string]any{key: partition},
		})}
	case s.Spec.UpdateStrategy.RollingUpdate == nil:
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/spec/updateStrategy/rollingUpdate",
			map[string]any{key: partition})}
	default:
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/spec/updateStrategy/rollingUpdate/"+key, partition)}
	}
}
