package checklist

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Condition types. Ready, Reconciling and Stalled follow kstatus, so `kubectl wait
// --for=condition=Ready`, Flux and Argo CD read a checklist like any other resource.
const (
	CondReady            = "Ready"
	CondReconciling      = "Reconciling"
	CondStalled          = "Stalled"
	CondAwaitingApproval = "AwaitingApproval"
	CondHealthy          = "Healthy"
	CondDegraded         = "Degraded"
	CondRolledBack       = "RolledBack"
	// CondHeldChange is True while a template that replaced the released one during
	// verification is held, waiting for a checklist of its own.
	CondHeldChange = "HeldChange"
	// CondAdmissionGate says whether the target's template changes are held in the
	// same write that makes them (True), or only after tminus sees them (False).
	CondAdmissionGate = "AdmissionGate"
	// CondRecorded says whether the release record of a checklist that ended in this
	// version is kept (True, naming its ConfigMap) or still to be written (False).
	// Checklists that ended before records existed have none and get none.
	CondRecorded = "Recorded"
)

// Reasons of the Recorded condition.
const (
	ReasonRecordPending = "RecordPending"
	ReasonRecordKept    = "RecordKept"
)

// Reasons, on conditions and events. docs/conditions.md says what each means and what
// to do about it.
const (
	ReasonProgressing        = "Progressing"
	ReasonSucceeded          = "Succeeded"
	ReasonInvalidSpec        = "InvalidSpec"
	ReasonMissedDeployWindow = "MissedDeployWindow"
	ReasonPhaseTimedOut      = "PhaseTimedOut"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonRolloutStalled     = "RolloutStalled"
	ReasonTargetGone         = "TargetGone"
	ReasonTriggerFired       = "TriggerFired"
	ReasonTriggerBreaching   = "TriggerBreaching"
	ReasonTriggersClear      = "TriggersClear"
	ReasonNotReleased        = "NotReleased"
	ReasonWaitingForApproval = "WaitingForApproval"
	ReasonNoPendingApproval  = "NoPendingApproval"
	ReasonMeasurementErrors  = "MeasurementErrors"
	ReasonMeasurementsOK     = "MeasurementsOK"
	ReasonRolledBack         = "RolledBack"
	ReasonRollbackRequested  = "RollbackRequested"
	ReasonAborted            = "Aborted"
	ReasonRequestNotActed    = "RequestNotActed"
	ReasonRollbackDryRun     = "RollbackDryRun"
	ReasonNotRolledBack      = "NotRolledBack"
	ReasonTargetPaused       = "TargetPaused"
	ReasonHolding            = "Holding"
	ReasonReleased           = "Released"
	ReasonRolloutAvailable   = "RolloutAvailable"
	ReasonPhaseOpened        = "PhaseOpened"
	ReasonPhasePassed        = "PhasePassed"
	// ReasonStepReady: the pods of a step of a release in steps run the release and
	// are ready; the step's phase judges them. ReasonStepReleased: a step passed and
	// the next one releases more pods.
	ReasonStepReady          = "StepReady"
	ReasonStepReleased       = "StepReleased"
	ReasonCheckFailed        = "CheckFailed"
	ReasonApproved           = "Approved"
	ReasonRestored           = "Restored"
	ReasonDegraded           = "Degraded"
	ReasonInvalidApproval    = "InvalidApproval"
	ReasonInvalidRequest     = "InvalidRequest"
	ReasonBlocked            = "Blocked"
	ReasonTargetNotSettled   = "TargetNotSettled"
	ReasonTargetNotGateable  = "TargetNotGateable"
	ReasonWaitingForTemplate = "WaitingForTemplate"
	ReasonCandidateSeen      = "CandidateSeen"
	ReasonCandidateChanged   = "CandidateChanged"
	ReasonCandidateWithdrawn = "CandidateWithdrawn"
	ReasonAlreadyReleased    = "AlreadyReleased"
	ReasonReleaseWithdrawn   = "ReleaseWithdrawn"
	ReasonReleaseReplaced    = "ReleaseReplaced"
	ReasonHeldChange         = "HeldChange"
	ReasonHeldChangeGone     = "HeldChangeGone"
	ReasonNoHeldChange       = "NoHeldChange"
	ReasonNothingToRestore   = "NothingToRestore"
	ReasonMeasurementsDown   = "MeasurementsUnavailable"
	ReasonAdmitted           = "Admitted"
	ReasonWebhookNotServed   = "WebhookNotServed"
	ReasonGateDisabled       = "GateDisabled"
	ReasonNotGated           = "NotGated"
	ReasonGateObserve        = "GateObserve"
	ReasonJobRefused         = "JobRefused"
	ReasonActionFailed       = "ActionFailed"
	ReasonApprovalNotCounted = "ApprovalNotCounted"
)

func setCondition(st *deployv1alpha1.DeploymentChecklistStatus, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: gen,
	})
}

func (e *engine) setConditions() {
	st, gen := e.st, e.dcl.Generation
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		setCondition(st, gen, typ, status, reason, msg)
	}
	failReason, failMessage := e.failReason, e.failMessage
	if failReason == "" {
		// Terminal in an earlier reconcile: keep what Ready said then.
		if c := meta.FindStatusCondition(st.Conditions, CondReady); c != nil {
			failReason, failMessage = c.Reason, c.Message
		}
	}

	switch st.Phase {
	case deployv1alpha1.PhaseSucceeded:
		set(CondReady, metav1.ConditionTrue, ReasonSucceeded, "every phase passed")
		meta.RemoveStatusCondition(&st.Conditions, CondReconciling)
		meta.RemoveStatusCondition(&st.Conditions, CondStalled)
	case deployv1alpha1.PhaseFailed, deployv1alpha1.PhaseRolledBack:
		if st.Phase == deployv1alpha1.PhaseRolledBack && st.Rollback != nil {
			failReason, failMessage = st.Rollback.Reason, st.Rollback.Message
		}
		set(CondReady, metav1.ConditionFalse, failReason, failMessage)
		set(CondStalled, metav1.ConditionTrue, failReason, failMessage)
		meta.RemoveStatusCondition(&st.Conditions, CondReconciling)
	default:
		reason := ReasonProgressing
		if e.waiting != "" {
			reason = e.waiting
		}
		set(CondReady, metav1.ConditionFalse, reason, st.NextAction)
		if e.waiting == "" {
			reason = string(st.Phase)
		}
		set(CondReconciling, metav1.ConditionTrue, reason, st.NextAction)
		meta.RemoveStatusCondition(&st.Conditions, CondStalled)
	}

	pending := e.pendingApprovals()
	if len(pending) > 0 && !terminal(st.Phase) {
		set(CondAwaitingApproval, metav1.ConditionTrue, ReasonWaitingForApproval, "waiting for "+strings.Join(pending, ", "))
	} else {
		set(CondAwaitingApproval, metav1.ConditionFalse, ReasonNoPendingApproval, "no sign-off is awaited")
	}

	switch {
	case st.Rollback != nil:
		set(CondHealthy, metav1.ConditionFalse, ReasonRolledBack, st.Rollback.Message)
	case !released(st.Phase):
		set(CondHealthy, metav1.ConditionUnknown, ReasonNotReleased, "rollback triggers are watched from T-0")
	default:
		var breaching []string
		for _, t := range st.Triggers {
			if t.BreachingSince != nil {
				breaching = append(breaching, fmt.Sprintf("%s (%s %s)", t.Name, t.Value, t.Threshold))
			}
		}
		if len(breaching) > 0 {
			set(CondHealthy, metav1.ConditionFalse, ReasonTriggerBreaching, "breaching: "+strings.Join(breaching, ", "))
		} else {
			set(CondHealthy, metav1.ConditionTrue, ReasonTriggersClear, "no rollback trigger is breaching")
		}
	}

	e.setFrozen()

	wasDegraded := meta.IsStatusConditionTrue(e.dcl.Status.Conditions, CondDegraded)
	errs := e.erroring()
	switch {
	case e.outage != "" && !terminal(st.Phase):
		set(CondDegraded, metav1.ConditionTrue, ReasonMeasurementsDown, e.outage)
		if !wasDegraded {
			e.event(corev1.EventTypeWarning, ReasonDegraded, e.outage)
		}
	case len(errs) > 0 && !terminal(st.Phase):
		// The limit, not the count: the message stays still while the outage lasts.
		msg := fmt.Sprintf("%d or more measurements in a row failed, holding: %s", e.p.errorLimit, strings.Join(errs, "; "))
		set(CondDegraded, metav1.ConditionTrue, ReasonMeasurementErrors, msg)
		if !wasDegraded {
			e.event(corev1.EventTypeWarning, ReasonDegraded, msg)
		}
	default:
		set(CondDegraded, metav1.ConditionFalse, ReasonMeasurementsOK, "measurements are answering")
	}

	switch rb := st.Rollback; {
	case rb != nil && rb.NothingToRestore:
		set(CondRolledBack, metav1.ConditionFalse, ReasonNothingToRestore, failMessage)
	case rb != nil:
		reason := ReasonRolledBack
		if rb.DryRun {
			reason = ReasonRollbackDryRun
		}
		set(CondRolledBack, metav1.ConditionTrue, reason, rb.Message)
	default:
		set(CondRolledBack, metav1.ConditionFalse, ReasonNotRolledBack, "no rollback")
	}

	e.setTargetConditions(st, set)
}

// setTargetConditions sets HeldChange (a change held on any target during
// verification) and AdmissionGate.
func (e *engine) setTargetConditions(st *deployv1alpha1.DeploymentChecklistStatus,
	set func(typ string, status metav1.ConditionStatus, reason, msg string)) {
	var held []string
	for i := range st.Targets {
		if ts := &st.Targets[i]; ts.HeldTemplateHash != "" && !terminal(st.Phase) {
			held = append(held, fmt.Sprintf("%s %s's pod template changed to %s during verification", ts.Kind, ts.Name, images(ts.HeldImages)))
		}
	}
	if len(held) > 0 {
		set(CondHeldChange, metav1.ConditionTrue, ReasonHeldChange, strings.Join(held, "; ")+
			": held, it waits for a checklist of its own")
	} else {
		set(CondHeldChange, metav1.ConditionFalse, ReasonNoHeldChange, "no change is held")
	}
	// The admission gate is reported for the first target it does not cover (or the
	// first target, when it covers them all).
	defer func(cur int) { e.cur = cur }(e.cur)
	e.cur = 0
	for i := range e.refs {
		if l := e.obs.targetAt(i).GateLabel; e.pauses() && e.obs.AdmissionServed &&
			l != deployv1alpha1.GatedByUser && l != deployv1alpha1.GatedByChecklist {
			e.cur = i
			break
		}
	}
	e.setAdmissionGate(set)
}

// setAdmissionGate says whether a template change of the target is held in the same
// write that makes it, so nobody believes in a gate that is not there.
func (e *engine) setAdmissionGate(set func(typ string, status metav1.ConditionStatus, reason, msg string)) {
	served, label, name := e.obs.AdmissionServed, e.tobs().GateLabel, e.tdesc()
	switch {
	case !e.pauses():
		set(CondAdmissionGate, metav1.ConditionFalse, ReasonGateObserve, "gate Observe: tminus never holds "+name)
	case !served:
		set(CondAdmissionGate, metav1.ConditionFalse, ReasonWebhookNotServed, fmt.Sprintf(
			"the admission webhook is not served: tminus holds a change of %s only after it sees it, "+
				"and it may have started to roll by then", name))
	case label == deployv1alpha1.GatedByUser || label == deployv1alpha1.GatedByChecklist:
		set(CondAdmissionGate, metav1.ConditionTrue, ReasonAdmitted, fmt.Sprintf(
			"changes of %s's pod template are held at admission (label %s=%s)", name, deployv1alpha1.GatedLabel, label))
	case label == "":
		set(CondAdmissionGate, metav1.ConditionFalse, ReasonNotGated, fmt.Sprintf(
			"%s is not labelled %s yet: tminus labels it while this checklist is live; label it %s=true in Git "+
				"so a change committed with its checklist is held too", name, deployv1alpha1.GatedLabel, deployv1alpha1.GatedLabel))
	default:
		set(CondAdmissionGate, metav1.ConditionFalse, ReasonGateDisabled, fmt.Sprintf(
			"%s is labelled %s=%s: its template changes roll out without the admission gate (break-glass); "+
				"set it back to true to gate it again", name, deployv1alpha1.GatedLabel, label))
	}
}

// pendingApprovals lists the roles the open phase still waits for.
func (e *engine) pendingApprovals() []string {
	var out []string
	for _, ph := range e.st.Phases {
		if ph.State != deployv1alpha1.PhaseStateOpen {
			continue
		}
		for _, c := range ph.Checks {
			if c.Kind == KindApproval && c.Outcome != deployv1alpha1.OutcomePass {
				out = append(out, ph.Name+"/"+c.Name)
			}
		}
	}
	return out
}

// erroring lists checks and triggers whose errors in a row reached the limit.
func (e *engine) erroring() []string {
	var out []string
	for _, ph := range e.st.Phases {
		if ph.State != deployv1alpha1.PhaseStateOpen {
			continue
		}
		for _, c := range ph.Checks {
			if c.ConsecutiveErrors >= e.p.errorLimit {
				out = append(out, ph.Name+"/"+c.Name+": "+c.Message)
			}
		}
	}
	if released(e.st.Phase) {
		for _, t := range e.st.Triggers {
			if t.ConsecutiveErrors >= e.p.errorLimit {
				out = append(out, "trigger "+t.Name+": "+t.Message)
			}
		}
	}
	return out
}

// SetStalled marks a checklist that cannot go on (it cannot be made from its template)
// Stalled and not Ready, saying why; it does nothing to its target.
func SetStalled(st *deployv1alpha1.DeploymentChecklistStatus, gen int64, reason, msg string) {
	if st.Phase == "" {
		st.Phase = deployv1alpha1.PhasePending
	}
	st.ObservedGeneration = gen
	st.NextAction = truncate(msg, 256)
	setCondition(st, gen, CondStalled, metav1.ConditionTrue, reason, msg)
	setCondition(st, gen, CondReady, metav1.ConditionFalse, reason, msg)
	meta.RemoveStatusCondition(&st.Conditions, CondReconciling)
}
