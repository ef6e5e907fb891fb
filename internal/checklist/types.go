// Package checklist is the pure engine of tminus: given a DeploymentChecklist, what was
// observed in this reconcile and the time, it decides the new status, the actions to
// take on the cluster, the events to emit and when to look again. It has no client, no
// clock and does no I/O, so every transition is a table-driven test.
package checklist

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/freeze"
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
	Exists bool
	// Refused holds the API server's message when it refused to create the Job
	// (quota, policy, an invalid template); the check reports it and the Job is
	// tried again at the next measurement.
	Refused   string
	Succeeded bool
	Failed    bool
	// Message says why a Job failed.
	Message string
	// UID is the uid of the Job tminus created for the check, recorded in the check's
	// status (jobUID).
	UID types.UID
	// NotOurs, when set, says why the Job of the check's name is not the one tminus
	// created for it (made by someone else, or left by a deleted checklist of the
	// same name): it is never taken as the check's result.
	NotOurs string
}

// Approval is one sign-off that names the checklist's revision.
type Approval struct {
	// Key is its annotation's name after the prefix: <role> or <role>.<suffix>.
	Key      string
	Role     string
	Approver string
	Revision string
	Verified bool
	// AdmittedTemplate is the hash (gate.TemplateHash) of the target Deployment's pod
	// template when the approval webhook admitted the sign-off: the template its signer
	// was shown. NoTemplate when the Deployment did not exist then; "" when not known
	// (not verified, or verified before the webhook recorded it).
	AdmittedTemplate string
}

// NoTemplate is the AdmittedTemplate of a sign-off given while its target Deployment
// did not exist.
const NoTemplate = "none"

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
	// ProgressDeadlineExceeded is the Progressing=False/ProgressDeadlineExceeded
	// condition, and ProgressingSince that condition's last transition.
	ProgressDeadlineExceeded bool
	ProgressingSince         time.Time
	// Template is the Deployment's spec.template now, TemplateHash identifies it
	// (gate.TemplateHash) and TemplateImages are its container images.
	Template       *corev1.PodTemplateSpec
	TemplateHash   string
	TemplateImages []string
	// TemplateFirstRan is when the first ReplicaSet of Template was created; zero when
	// the Deployment never ran it (a change held before it could roll).
	TemplateFirstRan time.Time
	// Revision is the Deployment's deployment.kubernetes.io/revision.
	Revision string
	// Settled: the Deployment controller saw the current generation and at most one
	// ReplicaSet has pods. A paused Deployment with a template it has not rolled is
	// settled on the old one.
	Settled bool
	// Serving is the template of the ReplicaSet that serves every replica (without its
	// pod-template-hash label), ServingHash identifies it and ServingRevision is its
	// revision. Nil when nothing serves yet (a new Deployment) or while not Settled.
	Serving         *corev1.PodTemplateSpec
	ServingHash     string
	ServingRevision string
	// ServingPodTemplateHash is the serving ReplicaSet's pod-template-hash label.
	ServingPodTemplateHash string
	// PodTemplateHashes maps a template hash (gate.TemplateHash) to the pod-template-hash
	// label of the newest ReplicaSet running it (a restart makes a new one).
	PodTemplateHashes map[string]string
	// HeldBy is tminus's held-by annotation: who tminus paused the Deployment for; and
	// HeldTemplate its held-template annotation: the change it holds.
	HeldBy       string
	HeldTemplate string
	// ReleasedRevisions are the revisions tminus released on it, newest first.
	ReleasedRevisions []string
	// GateLabel is its deploy.tminus.dev/gated label, "" when absent.
	GateLabel string
	// Labels are the Deployment's labels (change freezes select by them too); only read.
	Labels map[string]string
	// Partition is a StatefulSet's rollingUpdate.partition now (0 when none), and
	// OwnerPartition the one its owner set (kept in an annotation while tminus holds or
	// steps it): the pods below it never take a new template. Both 0 for other kinds.
	Partition, OwnerPartition int32
	// UpdateHash is the template hash of a StatefulSet's update revision: the template
	// of the pods at and above the partition. "" for other kinds.
	UpdateHash string
	// NotGateable says why tminus cannot hold the target (a StatefulSet with the
	// OnDelete strategy, a kind it does not gate); "" when it can. Such a target is
	// reported and never written to.
	NotGateable string
}

// Request is a person's request read from the checklist's annotations
// (rollback-requested, abort-requested; internal/request).
type Request struct {
	Kind   deployv1alpha1.RequestKind
	By     string
	Reason string
	// WrittenBy is the user the checklist webhook verified writing it; Verified says it
	// did (and the webhook is installed, so its record can be believed).
	WrittenBy string
	Verified  bool
}

// Observations are the facts gathered once per reconcile.
type Observations struct {
	// Metrics holds a measurement for each metric the engine asked for (Needs). A
	// metric whose query names a variable not known yet is left out: not measured.
	Metrics map[string]Measurement
	// Baselines holds a measurement of each baseline asked for (Needs.Baselines).
	Baselines map[string]Measurement
	// HTTP holds a measurement per HTTP check or trigger key asked for (Needs).
	HTTP map[string]Measurement
	// Jobs holds the Job of each job check key (CheckKey) of open phases.
	Jobs map[string]JobState
	// Approvals are the sign-offs that count for spec.revision, by role.
	Approvals map[string][]Approval
	// ApprovalProblems describe approval annotations that could not be read.
	ApprovalProblems []string
	// Requests are the people's requests on the checklist (abort, rollback).
	Requests []Request
	// RequestProblems describe request annotations that could not be read: reported
	// beside the approval problems, never acted on.
	RequestProblems []string
	// Targets are the release's targets, in the order of spec.targets.
	Targets []TargetState
	// Blocker names another live checklist of one of the targets that comes first:
	// while it lives, this one waits and touches nothing. BlockedOn names the target
	// they share.
	Blocker   string
	BlockedOn string
	// RequireVerified: only sign-offs the approval webhook verified count.
	RequireVerified bool
	// AdmissionServed says whether the manager serves the Deployment admission webhook,
	// so a gated target's template changes are held in the write that makes them.
	AdmissionServed bool
	// Freezes are the change freezes that apply to the checklist (its namespace's and
	// the cluster's that select it). Only read before the release.
	Freezes []freeze.Freeze
}

// ActionKind is what the reconciler must do to the cluster.
type ActionKind string

const (
	// ActionHold pauses the target and records why, in tminus's hold annotations
	// (the hold before T-0, or a change held during verification).
	ActionHold ActionKind = "Hold"
	// ActionResume takes tminus's pause off the target (nothing left to hold).
	ActionResume ActionKind = "Resume"
	// ActionRelease resumes the target at T-0 and records the revision as released.
	ActionRelease ActionKind = "Release"
	// ActionCreateJob creates the Job of a job check.
	ActionCreateJob ActionKind = "CreateJob"
	// ActionRestore puts the pre-deploy template back and resumes the target: the
	// rollback.
	ActionRestore ActionKind = "Restore"
)

// Action is one write the reconciler performs. Every action is idempotent: doing it
// twice has the effect of doing it once.
type Action struct {
	Kind ActionKind
	// Target names the workload a Hold, Resume, Release or Restore writes to, and
	// TargetKind its kind ("" is a Deployment).
	Target     string
	TargetKind string
	// Phase and Check name the job check (ActionCreateJob).
	Phase, Check string
	// Template is what ActionRestore writes, and RolledBack the template hash it rolls
	// back (marked on the Deployment in the same write; empty: no mark).
	Template   *corev1.PodTemplateSpec
	RolledBack string
	// Reason is the hold's reason, HeldBy whom it is made for (this checklist when
	// empty) and HeldTemplate the change it holds (ActionHold).
	Reason, HeldBy, HeldTemplate string
	// Revision is what ActionRelease records.
	Revision string
	// Pods is, for ActionRelease of a release in steps, how many pods of the
	// StatefulSet take the released template (the partition goes to replicas - Pods,
	// never below the owner's); 0 releases every pod (the owner's partition). Step
	// says which step it is ("1 of 2"), as the StatefulSet's step annotation shows.
	Pods int32
	Step string
	// TemplateHash is the pod template ActionRelease, ActionResume and ActionRestore
	// were decided on: they write only to a Deployment that still holds it (a restore
	// also over its own template), so a push landing between the decision and the
	// write (or its retry) is decided again: never released under another template's
	// sign-offs, never overwritten by a restore.
	TemplateHash string
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
	// Baselines are metric names whose baseline to query: the metric at T-0
	// (status.target.t0At), as the version that served before (BaselineVars).
	Baselines []string
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

// CheckKey names a phase's check in Observations and Needs: "<phase>/<check>".
func CheckKey(phase, check string) string { return phase + "/" + check }

// TriggerKey names a trigger's HTTP measurement in Observations.HTTP.
func TriggerKey(trigger string) string { return "trigger/" + trigger }
