package webhook

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/target"
)

// gateKept says why the checklist's gate may not be what the write makes it ("" when it
// may). The gate tminus applies (gate.GateOf: spec.gate, or the template's) is fixed
// when the checklist is created: a later edit (templateRef switched to a template of
// another gate, an inline checklist made from a template) would turn a release's hold
// off, or on, in the middle of it. And gate Observe, which holds nothing, may not
// switch off a gate its Deployment's owner put on (labelled gated=true: the label's
// break-glass is the way, and it takes the right to edit the Deployment), nor take over
// a Deployment that holds a change nothing released.
func (w *ApprovalWebhook) gateKept(ctx context.Context, req admission.Request, made, old *deployv1alpha1.DeploymentChecklist) (string, error) {
	mode := gate.GateOf(made)
	if req.Operation == admissionv1.Update {
		if was := gate.GateOf(old); was != mode {
			return fmt.Sprintf("spec.gate: this checklist gates with %s, fixed when it was created; this change would make it %s "+
				"(spec.templateRef, or the checklist's own phases). Create a new checklist to gate another way", was, mode), nil
		}
		return "", nil
	}
	if mode != deployv1alpha1.GateObserve {
		return "", nil
	}
	r := client.Reader(w.Client)
	if w.Fresh != nil {
		r = w.Fresh
	}
	for _, ref := range made.Spec.TargetRefs() {
		key := types.NamespacedName{Namespace: made.Namespace, Name: ref.Name}
		var msg string
		var err error
		if ref.KindOf() == deployv1alpha1.KindDeployment {
			msg, err = observeKept(ctx, r, key)
		} else {
			msg, err = observeKeptOf(ctx, r, ref.KindOf(), key)
		}
		if msg != "" || err != nil {
			return msg, err
		}
	}
	return "", nil
}

// recordGate writes, on the creation of a checklist made from a template, the
// template's gate into spec.gate: the gate it is created with, immutable from then on.
// It reports whether it changed obj.
func recordGate(req admission.Request, obj, made *deployv1alpha1.DeploymentChecklist) bool {
	if req.Operation != admissionv1.Create || obj.Spec.TemplateRef == nil || made.Spec.Gate == "" || obj.Spec.Gate == made.Spec.Gate {
		return false
	}
	obj.Spec.Gate = made.Spec.Gate
	return true
}

// observeKept refuses gate Observe for a target whose owner gated it, or that holds a
// change nothing released: a Deployment (observeKeptOf reads the other kinds).
func observeKept(ctx context.Context, r client.Reader, key types.NamespacedName) (string, error) {
	var d appsv1.Deployment
	if err := r.Get(ctx, key, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("reading Deployment %s: %w", key, err)
	}
	if d.Labels[deployv1alpha1.GatedLabel] == deployv1alpha1.GatedByUser {
		return fmt.Sprintf("spec.gate: Observe holds nothing, and Deployment %s is labelled %s=%s: every template change to it "+
			"is held until a checklist releases it. Use gate: Pause, or turn its gate off first by setting the label to off "+
			"(the break-glass, which takes the right to edit the Deployment)",
			d.Name, deployv1alpha1.GatedLabel, deployv1alpha1.GatedByUser), nil
	}
	if d.Spec.Paused && d.Annotations[deployv1alpha1.HeldByAnnotation] != "" {
		return fmt.Sprintf("spec.gate: Observe holds nothing, and Deployment %s holds a change tminus paused (%s): "+
			"an Observe checklist would let it roll unreleased. Release it with a checklist of gate Pause",
			d.Name, d.Annotations[deployv1alpha1.HoldReasonAnnotation]), nil
	}
	return "", nil
}

// observeKeptOf is observeKept for a StatefulSet or DaemonSet, held by its update
// strategy instead of a pause.
func observeKeptOf(ctx context.Context, r client.Reader, kind string, key types.NamespacedName) (string, error) {
	view, _, found, err := target.GateViewOf(ctx, r, kind, key)
	if err != nil {
		return "", fmt.Errorf("reading %s %s: %w", kind, key, err)
	}
	if !found {
		return "", nil
	}
	if view.GateLabel == deployv1alpha1.GatedByUser {
		return fmt.Sprintf("spec.gate: Observe holds nothing, and %s %s is labelled %s=%s: every template change to it "+
			"is held until a checklist releases it. Use gate: Pause, or turn its gate off first by setting the label to off "+
			"(the break-glass, which takes the right to edit the %s)",
			kind, key.Name, deployv1alpha1.GatedLabel, deployv1alpha1.GatedByUser, kind), nil
	}
	if view.Paused && view.HeldBy != "" {
		return fmt.Sprintf("spec.gate: Observe holds nothing, and %s %s holds a change tminus held (%s %s): "+
			"an Observe checklist would let it roll unreleased. Release it with a checklist of gate Pause",
			kind, key.Name, deployv1alpha1.HeldByAnnotation, view.HeldBy), nil
	}
	return "", nil
}
