// Package checklist is the pure engine of tminus: given a DeploymentChecklist, what was
// observed in this reconcile and the time, it decides the new status, the actions to
// take on the cluster, the events to emit and when to look again. It has no client, no
// clock and does no I/O, so every transition is a table-driven test.
package checklist

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// ResultKind classifies one measurement. The kinds are never folded together.
type ResultKind string

const (
	// ResultValue: a number was measured (a sample, or an HTTP status code).
	ResultValue ResultKind = "Value"
	// ResultNoData: the query returned an empty vector, NaN or ±Inf.
	ResultNoData ResultKind = "NoData"
	// ResultError: the measurement itself failed (unreachable, timeout, bad answer).
	ResultError ResultKind = "Error"
)

// Measurement is what one metric query or one HTTP request returned.
type Measurement struct {
	Kind ResultKind
	// Value is the sample (metric) or the status code (HTTP); set for ResultValue.
	Value float64
	// Display is the value as recorded in status: "0.0042", "NaN", "503".
	Display string
	// Query is the PromQL as sent, variables resolved (metric only).
	Query string
	// OK is the verdict of an HTTP check (status and body matched). Unused for metrics.
	OK bool
	// Message explains errors and HTTP failures, bounded in length.
	Message string
}

// JobState is what was observed of a check's Job.
type JobState struct {
	// Exists is false until the Job was created.
	Exists    bool
	Succeeded bool
	Failed    bool
	// Message says why a Job failed.
	Message string
}

// Approval is one sign-off that counts for the checklist's revision.
type Approval struct {
	Role     string
	Approver string
	Revision string
	Verified bool
}

// TargetState is what was observed of the target Deployment.
type TargetState struct {
	// Found is false when the Deployment does not exist.
	Found  bool
	Paused bool
	// Generation and ObservedGeneration of the Deployment.
	Generation         int64
	ObservedGeneration int64
	Replicas           int32
	UpdatedReplicas    int32
	AvailableReplicas  int32
	// TotalReplicas counts pods of every ReplicaSet, old ones still terminating included.
	TotalReplicas int32
	// Available is the Deployment's Available condition.
	Available bool
	// ProgressDeadlineExceeded is the Progressing=False/ProgressDeadlineExceeded condition.
	ProgressDeadlineExceeded bool
	// Template is the Deployment's spec.template now.
	Template *corev1.PodTemplateSpec
	// TemplateHash identifies Template (same function as RunningHash).
	TemplateHash string
	// Revision is the Deployment's deployment.kubernetes.io/revision.
	Revision string
	// RunningTemplate is the template of the ReplicaSet that serves now (the one
	// matching Revision), without its pod-template-hash label; what a rollback restores.
	RunningTemplate *corev1.PodTemplateSpec
	// RunningHash identifies RunningTemplate.
	RunningHash string
}

// Observations are the facts gathered once per reconcile.
type Observations struct {
	// Metrics holds a measurement for each metric the engine asked for (Needs).
	Metrics map[string]Measurement
	// HTTP holds a measurement per HTTP check or trigger key asked for (Needs).
	HTTP map[string]Measurement
	// Jobs holds the Job of each job check key ("<phase>/<check>") of open phases.
	Jobs map[string]JobState
	// Approvals are the sign-offs that count for spec.revision, by role.
	Approvals map[string][]Approval
	// ApprovalProblems describe approval annotations that could not be read.
	ApprovalProblems []string
	// Target is the target Deployment.
	Target TargetState
}

// ActionKind is what the reconciler must do to the cluster.
type ActionKind string

const (
	// ActionPause sets the target's spec.paused (the hold).
	ActionPause ActionKind = "Pause"
	// ActionResume clears spec.paused (the release at T-0).
	ActionResume ActionKind = "Resume"
	// ActionCreateJob creates the Job of a job check.
	ActionCreateJob ActionKind = "CreateJob"
	// ActionRestore puts the pre-deploy template back and resumes the target (the
	// rollback, and the safe exit of a checklist that failed before T-0).
	ActionRestore ActionKind = "Restore"
)

// Action is one write the reconciler performs. Every action is idempotent: doing it
// twice has the effect of doing it once.
type Action struct {
	Kind ActionKind
	// Phase and Check name the job check (ActionCreateJob).
	Phase, Check string
	// Template is what ActionRestore writes.
	Template *corev1.PodTemplateSpec
}

// Event is a Kubernetes event to emit on the checklist.
type Event struct {
	Type    string // corev1.EventTypeNormal or corev1.EventTypeWarning
	Reason  string
	Message string
}

// Needs says which measurements the engine wants in this reconcile: what is due.
type Needs struct {
	// Metrics are metric names to query.
	Metrics []string
	// HTTP maps keys ("<phase>/<check>" or "trigger/<name>") to the checks to run.
	HTTP map[string]deployv1alpha1.HTTPCheck
	// Jobs are job check keys ("<phase>/<check>") to look up.
	Jobs []string
}

// Decision is the outcome of one Decide call.
type Decision struct {
	// Status is the new status; the reconciler patches it before acting, so a crash
	// between the two leaves the intent recorded and the next reconcile completes it.
	Status deployv1alpha1.DeploymentChecklistStatus
	// Actions to take, in order.
	Actions []Action
	// Events to emit, only on transitions.
	Events []Event
	// RequeueAfter is when to look again (0: only on a watch event).
	RequeueAfter time.Duration
}

// JobKey names a job check's Job in Observations.Jobs and Needs.Jobs.
func JobKey(phase, check string) string { return phase + "/" + check }

// TriggerKey names a trigger's HTTP measurement in Observations.HTTP.
func TriggerKey(trigger string) string { return "trigger/" + trigger }
