// Package slim keeps the manager's cache from growing with the past: an ended
// checklist is cached without the parts no reader of the cache needs (its phases,
// checks, triggers, baselines, approvals, notifications, and its resolved template
// but for the gate and history limit), marked with deploy.tminus.dev/cache-stripped.
// What the cache's readers keep reading from it: the targets, gate, template
// reference, history limit, phase, rollback, the targets' template hashes and images,
// the record's name, the conditions, and the retry-of annotation. The engine refuses a
// stripped checklist (checklist.WholeOf): the reconciler reads the whole one from the
// API server.
package slim

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
)

// Transform is the cache transform for checklists: managed fields dropped from every
// object (as cache.TransformStripManagedFields does), and an ended checklist not being
// deleted stripped (Strip).
func Transform(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
	}
	dcl, ok := obj.(*deployv1alpha1.DeploymentChecklist)
	if !ok || !gate.Terminal(dcl.Status.Phase) || !dcl.DeletionTimestamp.IsZero() {
		return obj, nil
	}
	return Strip(dcl), nil
}

// Stripped says whether the checklist is a stripped copy.
func Stripped(dcl *deployv1alpha1.DeploymentChecklist) bool {
	_, ok := dcl.Annotations[deployv1alpha1.StrippedAnnotation]
	return ok
}

// Strip is what the cache keeps of an ended checklist.
func Strip(dcl *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.DeploymentChecklist {
	out := &deployv1alpha1.DeploymentChecklist{TypeMeta: dcl.TypeMeta, ObjectMeta: dcl.ObjectMeta}
	out.ManagedFields = nil
	out.Annotations = map[string]string{deployv1alpha1.StrippedAnnotation: "true"}
	if v, ok := dcl.Annotations[deployv1alpha1.RetryOfAnnotation]; ok {
		out.Annotations[deployv1alpha1.RetryOfAnnotation] = v
	}
	s := &dcl.Spec
	out.Spec.Target, out.Spec.Targets, out.Spec.Revision, out.Spec.TemplateRef = s.Target, s.Targets, s.Revision, s.TemplateRef
	out.Spec.Gate, out.Spec.HistoryLimit = s.Gate, s.HistoryLimit
	st := &dcl.Status
	out.Status = deployv1alpha1.DeploymentChecklistStatus{
		ObservedGeneration: st.ObservedGeneration, Phase: st.Phase, Rollback: st.Rollback,
		Record: st.Record, RecordUID: st.RecordUID, Conditions: st.Conditions, TargetNames: st.TargetNames,
		Resolved: resolvedKeep(st.Resolved),
	}
	for _, t := range st.Targets {
		t.PreDeployTemplate = nil
		out.Status.Targets = append(out.Status.Targets, t)
	}
	if st.Target != nil {
		t := *st.Target
		t.PreDeployTemplate = nil
		out.Status.Target = &t
	}
	return out
}

// resolvedKeep is the part of a resolved template body the cache's readers read: the
// gate (gate.GateOf) and the history limit (history.LimitOf).
func resolvedKeep(r *runtime.RawExtension) *runtime.RawExtension {
	if r == nil {
		return nil
	}
	var body struct {
		Gate         deployv1alpha1.GateMode `json:"gate,omitempty"`
		HistoryLimit *int32                  `json:"historyLimit,omitempty"`
	}
	if json.Unmarshal(r.Raw, &body) != nil {
		return &runtime.RawExtension{Raw: []byte("{}")}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return &runtime.RawExtension{Raw: []byte("{}")}
	}
	return &runtime.RawExtension{Raw: raw}
}
