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
	ReasonTriggerFired       = "TriggerFired"
	ReasonTriggerBreaching   = "TriggerBreaching"
	ReasonTriggersClear      = "TriggersClear"
	ReasonNotReleased        = "NotReleased"
	ReasonWaitingForApproval = "WaitingForApproval"
	ReasonNoPendingApproval  = "NoPendingApproval"
	ReasonMeasurementErrors  = "MeasurementErrors"
	ReasonMeasurementsOK     = "MeasurementsOK"
	ReasonRolledBack         = "RolledBack"
	ReasonRollbackDryRun     = "RollbackDryRun"
	ReasonNotRolledBack      = "NotRolledBack"
	ReasonTargetPaused       = "TargetPaused"
	ReasonHolding            = "Holding"
	ReasonReleased           = "Released"
	ReasonRolloutAvailable   = "RolloutAvailable"
	ReasonPhaseOpened        = "PhaseOpened"
	ReasonPhasePassed        = "PhasePassed"
	ReasonCheckFailed        = "CheckFailed"
	ReasonApproved           = "Approved"
	ReasonRestored           = "Restored"
	ReasonDegraded           = "Degraded"
	ReasonInvalidApproval    = "InvalidApproval"
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
		set(CondReady, metav1.ConditionFalse, ReasonProgressing, st.NextAction)
		set(CondReconciling, metav1.ConditionTrue, string(st.Phase), st.NextAction)
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

	wasDegraded := meta.IsStatusConditionTrue(e.dcl.Status.Conditions, CondDegraded)
	if errs := e.erroring(); len(errs) > 0 && !terminal(st.Phase) {
		// The limit, not the count: the message stays still while the outage lasts.
		msg := fmt.Sprintf("%d or more measurements in a row failed, holding: %s", e.p.errorLimit, strings.Join(errs, "; "))
		set(CondDegraded, metav1.ConditionTrue, ReasonMeasurementErrors, msg)
		if !wasDegraded {
			e.event(corev1.EventTypeWarning, ReasonDegraded, msg)
		}
	} else {
		set(CondDegraded, metav1.ConditionFalse, ReasonMeasurementsOK, "measurements are answering")
	}

	if st.Rollback != nil {
		reason := ReasonRolledBack
		if st.Rollback.DryRun {
			reason = ReasonRollbackDryRun
		}
		set(CondRolledBack, metav1.ConditionTrue, reason, st.Rollback.Message)
	} else {
		set(CondRolledBack, metav1.ConditionFalse, ReasonNotRolledBack, "no rollback")
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
