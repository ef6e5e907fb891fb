// Package slim keeps the manager's cache from growing with the past: an ended
// checklist that owes nothing more (Owed) is cached as a copy holding only what the
// cache's readers read of an ended checklist, marked with
// deploy.tminus.dev/cache-stripped. Those readers are the gate (gate.FromChecklistFor:
// the refusal of a rolled-back template and its restore), the decision and history
// indexes (the targets, the phase), the history limit (history.LimitOf, the creation
// time, uid and resourceVersion it deletes on), the template index and watch (the
// template reference, whether one was resolved), the request webhook's retry check
// (targets, revision, phase) and the state metrics (the phase).
//
// An ended checklist that still owes something (a rollback to see restored, a record
// to write, a sign-off or request to answer, a message to send, a finalizer to take
// off, a deletion, a spec not decided yet) stays whole in the cache until it is
// settled, so the reconciler decides on it without reading it from the API server.
// The one thing a stripped checklist may still owe that its own object does not show,
// a workload still held in its name, the reconciler reads from the workload (cached)
// before it reads the checklist whole from the API server. The engine refuses a
// stripped copy (checklist.WholeOf).
package slim

import (
	"slices"
	"strings"
	"unique"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/approval"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/history"
	"github.com/tminus-dev/tminus/internal/notify"
	"github.com/tminus-dev/tminus/internal/record"
	"github.com/tminus-dev/tminus/internal/request"
)

// What an ended checklist may still owe (Owed).
const (
	OwedDeletion     = "its deletion"
	OwedFinalizer    = "the finalizer of an earlier version to take off"
	OwedSpec         = "a spec changed since it was last decided"
	OwedRestore      = "a rollback not seen restored yet"
	OwedRecord       = "its release record"
	OwedNotification = "a notification not sent yet"
	OwedAnnotation   = "a sign-off or request (or an unreadable annotation) not recorded in status yet"
	OwedUpgrade      = "a status written by an earlier version (status.target, status.targetNames)"
)

// Rule tells an ended checklist that owes nothing more (Owed) from one that does, with
// the reconciler's settings.
type Rule struct {
	// VerifiedApprovals is the reconciler's: the approval webhook is installed, so
	// sign-offs and requests it verified are read as verified.
	VerifiedApprovals bool
}

// Transform is the cache transform for checklists: managed fields dropped from every
// object (as cache.TransformStripManagedFields does), and an ended checklist that
// owes nothing stripped (Strip).
func (r *Rule) Transform(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
	}
	dcl, ok := obj.(*deployv1alpha1.DeploymentChecklist)
	if !ok || !gate.Terminal(dcl.Status.Phase) || Stripped(dcl) || len(r.Owed(dcl)) > 0 {
		return obj, nil
	}
	return Strip(dcl), nil
}

// Stripped says whether the checklist is a stripped copy.
func Stripped(dcl *deployv1alpha1.DeploymentChecklist) bool {
	_, ok := dcl.Annotations[deployv1alpha1.StrippedAnnotation]
	return ok
}

// Owed lists what the reconciler still owes the ended checklist dcl (whole), nil when
// nothing: what a reconcile of it would do that the checklist shows by itself. Its
// cases are those of Reconcile and Decide for an ended checklist:
//
//   - deletion and the finalizer of earlier versions (Reconcile takes it off);
//   - a spec changed since the last decision (Decide syncs the status records to it);
//   - a rollback not seen restored (Decide restores and waits to see it: ended);
//   - the record (Recorded=False once the release has ended: keepRecord);
//   - a notification pending (the reconcile hands it to the dispatcher, which after a
//     restart only hears of it that way);
//   - a sign-off or request annotation, or an unreadable one, not in status yet
//     (Decide records it, and acts on a request: checklist.Answered);
//   - status written by an earlier version (Decide moves status.target to
//     status.targets and writes status.targetNames).
//
// What it cannot see is a workload still held in the checklist's name (Decide takes
// the hold off): that is read from the workload. What a reconcile of an ended
// checklist also did, and is not owed: refreshing the conditions that describe the
// workload now (AdmissionGate), and upgrading template hashes stored short by an
// earlier version (the gate compares them as they are).
func (r *Rule) Owed(dcl *deployv1alpha1.DeploymentChecklist) []string {
	var owed []string
	st := &dcl.Status
	if !dcl.DeletionTimestamp.IsZero() {
		owed = append(owed, OwedDeletion)
	}
	if slices.Contains(dcl.Finalizers, deployv1alpha1.ReleaseGuardFinalizer) {
		owed = append(owed, OwedFinalizer)
	}
	if dcl.Generation != st.ObservedGeneration {
		owed = append(owed, OwedSpec)
	}
	if rb := st.Rollback; st.Phase == deployv1alpha1.PhaseRolledBack && rb != nil && !rb.DryRun && !rb.NothingToRestore &&
		rb.CompletedAt == nil {
		owed = append(owed, OwedRestore)
	}
	if c := meta.FindStatusCondition(st.Conditions, checklist.CondRecorded); c != nil && c.Status == metav1.ConditionFalse &&
		record.Due(dcl) {
		owed = append(owed, OwedRecord)
	}
	if notify.Pending(st) {
		owed = append(owed, OwedNotification)
	}
	var obs checklist.Observations
	obs.Approvals, obs.ApprovalProblems = approval.Parse(dcl.Annotations, approval.Revision(dcl), r.VerifiedApprovals)
	obs.Requests, obs.RequestProblems = request.Read(dcl.Annotations, r.VerifiedApprovals)
	if !checklist.Answered(st, obs) {
		owed = append(owed, OwedAnnotation)
	}
	if st.Target != nil || st.TargetNames != strings.Join(dcl.Spec.TargetNames(), ",") {
		owed = append(owed, OwedUpgrade)
	}
	return owed
}

// Shared by every stripped copy, never written: the cache's objects are read only
// (a reader that changes one changes its own deep copy).
var (
	strippedAnnotations = map[string]string{deployv1alpha1.StrippedAnnotation: "true"}
	// resolvedMark stands for a resolved template body: the template index's watch
	// asks only whether there is one; the gate and history limit it gave are in the
	// stripped copy's spec.
	resolvedMark = &runtime.RawExtension{Raw: []byte("{}")}
	typeMeta     = metav1.TypeMeta{APIVersion: deployv1alpha1.GroupVersion.String(), Kind: "DeploymentChecklist"}
)

// Strip is what the cache keeps of a settled ended checklist: about 1.5 KB on the heap,
// most of it the fixed size of the Go type.
//
//   - metadata: name, namespace, uid, resourceVersion, generation, creation time (no
//     labels, annotations but the mark, owners or finalizers);
//   - spec: the targets, revision and template reference; the gate and history limit
//     as the checklist applies them (gate.GateOf, history.LimitOf: a template's, kept
//     in status.resolved, moved to spec);
//   - status: the phase; and for a rollback the gate refuses (gate.FromChecklistFor's
//     RolledBackHash), the rollback's time, message and completion, and per target
//     its name, kind, pre-deploy and released template hashes and released images.
func Strip(dcl *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.DeploymentChecklist {
	out := &deployv1alpha1.DeploymentChecklist{TypeMeta: typeMeta}
	out.Name, out.Namespace, out.UID, out.ResourceVersion = dcl.Name, unique.Make(dcl.Namespace).Value(), dcl.UID, dcl.ResourceVersion
	out.Generation, out.CreationTimestamp = dcl.Generation, dcl.CreationTimestamp
	out.Annotations = strippedAnnotations

	s := &dcl.Spec
	out.Spec.Target, out.Spec.Targets, out.Spec.Revision, out.Spec.TemplateRef = s.Target, s.Targets, s.Revision, s.TemplateRef
	out.Spec.Gate = gate.GateOf(dcl)
	if l := history.LimitOf(dcl); l > 0 {
		out.Spec.HistoryLimit = new(int32(l))
	}
	if dcl.Status.Resolved != nil {
		out.Status.Resolved = resolvedMark
	}
	out.Status.Phase = canonicalPhase(dcl.Status.Phase)
	out.Status.ObservedGeneration = dcl.Status.ObservedGeneration

	refusing := false
	for _, name := range s.TargetNames() {
		if gate.FromChecklistFor(dcl, name).RolledBackHash != "" {
			refusing = true
		}
	}
	if !refusing {
		return out
	}
	rb := dcl.Status.Rollback
	out.Status.Rollback = &deployv1alpha1.RollbackRecord{Message: rb.Message, FiredAt: rb.FiredAt, CompletedAt: rb.CompletedAt}
	for _, ref := range s.TargetRefs() {
		ts := dcl.TargetStatusOf(ref.Name)
		if ts == nil {
			continue
		}
		kept := deployv1alpha1.ReleaseTargetStatus{Kind: ref.KindOf(), Name: ref.Name, TargetStatus: deployv1alpha1.TargetStatus{
			PreDeployTemplateHash: ts.PreDeployTemplateHash, ReleasedTemplateHash: ts.ReleasedTemplateHash}}
		if ts.ReleasedTemplateHash != "" {
			kept.CandidateImages = ts.CandidateImages
		}
		out.Status.Targets = append(out.Status.Targets, kept)
	}
	return out
}

// canonicalPhase is phase as the package's constant, so that the cache holds no copy of
// it per checklist.
func canonicalPhase(phase deployv1alpha1.ChecklistPhase) deployv1alpha1.ChecklistPhase {
	for _, p := range []deployv1alpha1.ChecklistPhase{deployv1alpha1.PhaseSucceeded, deployv1alpha1.PhaseFailed,
		deployv1alpha1.PhaseRolledBack} {
		if p == phase {
			return p
		}
	}
	return phase
}
