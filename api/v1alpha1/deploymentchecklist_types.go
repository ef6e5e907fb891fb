/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// List bounds. Every list in spec and status is bounded so that a checklist, however
// long it runs, stays far below etcd's object size limit and CEL rules stay cheap.
const (
	MaxMetrics          = 16
	MaxPhases           = 16
	MaxChecksPerPhase   = 16
	MaxRollbackTriggers = 8
	MaxHeaders          = 8
	MaxHistory          = 10
	MaxApprovalRecords  = 32
	MaxApprovalErrors   = 16
	MaxConditions       = 16
	MaxTargets          = 16
)

// ApprovalAnnotationPrefix starts every sign-off annotation:
// approve.tminus.dev/<role>: "<approver> for <revision>".
const ApprovalAnnotationPrefix = "approve.tminus.dev/"

// A person's request on a checklist is an annotation, "<who>: <why>", verified by the
// checklist webhook like a sign-off (docs/approvals.md): the requester needs the RBAC
// verb rollback (or abort) on deploymentchecklists.
const (
	// RollbackRequestedAnnotation asks tminus to roll the release back now (during
	// verification, or after Succeeded while the release still serves).
	RollbackRequestedAnnotation = "deploy.tminus.dev/rollback-requested"
	// AbortRequestedAnnotation asks tminus not to start the release (before T-0).
	AbortRequestedAnnotation = "deploy.tminus.dev/abort-requested"
	// RetriedAsAnnotation, on a checklist that ended, names the checklist made to retry
	// it and who made it: "<name> by <who>" (kubectl checklist retry).
	RetriedAsAnnotation = "deploy.tminus.dev/retried-as"
	// RetryOfAnnotation, on a checklist made by kubectl checklist retry, names the one
	// it retries.
	RetryOfAnnotation = "deploy.tminus.dev/retry-of"
)

// GateMode says whether tminus holds the target's rollout.
// +kubebuilder:validation:Enum=Pause;Observe
type GateMode string

const (
	// GatePause keeps the target's spec.paused true until T-0, then resumes it.
	GatePause GateMode = "Pause"
	// GateObserve never touches the target; tminus only measures and reports.
	GateObserve GateMode = "Observe"
)

// NoDataPolicy says how a measurement that returned nothing (an empty vector, NaN or
// ±Inf) counts.
// +kubebuilder:validation:Enum=Hold;Pass;Fail
type NoDataPolicy string

const (
	// NoDataHold neither passes nor fails: the check waits for data.
	NoDataHold NoDataPolicy = "Hold"
	// NoDataPass counts no data as a pass (for example an error rate with no errors).
	NoDataPass NoDataPolicy = "Pass"
	// NoDataFail counts no data as a failure.
	NoDataFail NoDataPolicy = "Fail"
)

// RollbackAction is what tminus does to the target when a rollback trigger fires or a
// T-plus phase fails.
// +kubebuilder:validation:Enum=Undo;None
type RollbackAction string

const (
	// RollbackUndo restores the pod template the target ran before T-0, like
	// `kubectl rollout undo`.
	RollbackUndo RollbackAction = "Undo"
	// RollbackNone records what would have happened and touches nothing (a dry run).
	RollbackNone RollbackAction = "None"
)

// ReleaseOrder is how the targets of a release are released at T-0.
// +kubebuilder:validation:Enum=Together;Sequential
type ReleaseOrder string

const (
	// ReleaseTogether releases every target at once.
	ReleaseTogether ReleaseOrder = "Together"
	// ReleaseSequential releases the targets in the order of spec.targets, each once
	// the previous one's rollout is available (the backend first, then the frontend).
	ReleaseSequential ReleaseOrder = "Sequential"
)

// ReleaseSpec says how the targets are released.
type ReleaseSpec struct {
	// order is Together (every target at once) or Sequential (in the order of
	// spec.targets, each waiting for the previous one's rollout to be available; a
	// target waiting its turn stays held, and a new template it gets meanwhile is what
	// it releases at its turn). A target whose template did not change is skipped.
	// +kubebuilder:default=Together
	// +optional
	Order ReleaseOrder `json:"order,omitempty"`

	// steps expose a StatefulSet's new template a few pods at a time, by its rolling
	// update's partition: each step updates its pods (the highest ordinals), waits for
	// them to be ready and runs its T-plus phase, judged on the updated pods alone
	// ({{podTemplateHash}} is the update revision's hash); once it passes the next step
	// updates more. After the last step every pod is updated (the owner's partition),
	// and the T-plus phases no step names run as without steps. A failure or a fired
	// rollback trigger at any step restores the pre-deploy template: only the pods
	// updated so far roll back. Only for StatefulSets, released Together. Pods
	// increase from step to step (counts among counts, percentages among percentages:
	// a checklist whose percentages do not is Stalled with InvalidSpec).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(s, self.exists_one(u, u.phase == s.phase))",message="spec.release.steps[].phase: each phase may follow one step only"
	// +kubebuilder:validation:XValidation:rule="[0, 1, 2, 3, 4, 5, 6].all(i, [1, 2, 3, 4, 5, 6, 7].all(j, j <= i || j >= size(self) || type(self[i].pods) != int || type(self[j].pods) != int || int(self[i].pods) < int(self[j].pods)))",message="spec.release.steps[].pods must increase from one step to the next (pod counts among counts; percentages among percentages, which the manager checks)"
	// +optional
	Steps []ReleaseStep `json:"steps,omitempty"`
}

// ReleaseStep is one step of a release in steps: how many pods of each StatefulSet run
// the new template, and the T-plus phase that judges them.
type ReleaseStep struct {
	// pods is how many pods take the new template at this step: a count (1) or a
	// percentage of spec.replicas ("50%", rounded up, at least one pod). The pods are
	// the highest ordinals: the partition is set to replicas minus pods (never below
	// the owner's partition).
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=4
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? int(self) >= 1 : string(self).matches('^([1-9][0-9]?|100)%$')",message="spec.release.steps[].pods must be a pod count of at least 1 or a percentage from 1% to 100%, e.g. \"50%\""
	// +required
	Pods intstr.IntOrString `json:"pods"`

	// phase names the T-plus phase (of spec.phases) that judges this step: it opens
	// its `at` after the step's pods are updated and ready, and its checks and the
	// rollback triggers judge the updated pods ({{podTemplateHash}}). Its deadline is
	// its timeout, or 10m. Each phase follows one step at most.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=16
	// +required
	Phase string `json:"phase"`
}

// TargetRef names a workload the checklist holds and rolls back, in the checklist's
// own namespace. A workload is named by kind and name, so other kinds than Deployment
// (StatefulSet, DaemonSet) take their place in the same list.
type TargetRef struct {
	// kind of the target: Deployment (held with spec.paused), StatefulSet (held
	// with spec.updateStrategy.rollingUpdate.partition; a StatefulSet with the
	// OnDelete strategy cannot be gated, and the checklist says so) or DaemonSet
	// (held by switching spec.updateStrategy to OnDelete, the owner's strategy put
	// back at the release).
	// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
	// +kubebuilder:default=Deployment
	// +optional
	Kind string `json:"kind,omitempty"`

	// name of the target in the checklist's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`
}

// SecretKeyRef selects one key of a Secret in the checklist's own namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}

// BasicAuth reads HTTP basic auth credentials from Secrets.
type BasicAuth struct {
	// username is read from this Secret key.
	// +required
	Username SecretKeyRef `json:"username"`
	// password is read from this Secret key.
	// +required
	Password SecretKeyRef `json:"password"`
}

// HTTPHeader is one header sent with every Prometheus query. Exactly one of value and
// secretKeyRef is set.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.secretKeyRef)",message="spec.prometheus.headers[]: set exactly one of value and secretKeyRef"
type HTTPHeader struct {
	// name of the header.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[!#$%&'*+\-.^_|~0-9A-Za-z]+$`
	// +required
	Name string `json:"name"`
	// value of the header, in clear text.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Value string `json:"value,omitempty"`
	// secretKeyRef reads the value from a Secret key, for values that are credentials.
	// +optional
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// TLSConfig says how to verify the Prometheus server's certificate.
type TLSConfig struct {
	// caSecretRef reads a PEM bundle of CAs to trust, instead of the system roots.
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`
	// serverName overrides the name checked against the server's certificate.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// insecureSkipVerify turns off certificate verification. Never use it in production.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// PrometheusSpec says where and how to query Prometheus.
// +kubebuilder:validation:XValidation:rule="!(has(self.bearerTokenSecretRef) && has(self.basicAuth))",message="spec.prometheus: set at most one of bearerTokenSecretRef and basicAuth"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || !self.timeout.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.timeout) > duration('0s')",message="spec.prometheus.timeout must be positive"
type PrometheusSpec struct {
	// address of the Prometheus HTTP API, e.g. http://prometheus.monitoring.svc:9090.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?# ]+(/[^?# ]*)?$') || self.matches('^(https?://)?[^ ]*[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}][^ ]*$')",message="spec.prometheus.address must be an http:// or https:// URL with a host and no query (or contain a {{params.NAME}})"
	// +required
	Address string `json:"address"`

	// bearerTokenSecretRef reads a bearer token sent as "Authorization: Bearer <token>".
	// +optional
	BearerTokenSecretRef *SecretKeyRef `json:"bearerTokenSecretRef,omitempty"`

	// basicAuth sends HTTP basic auth credentials.
	// +optional
	BasicAuth *BasicAuth `json:"basicAuth,omitempty"`

	// headers are extra HTTP headers sent with every query (e.g. X-Scope-OrgID).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Headers []HTTPHeader `json:"headers,omitempty"`

	// tls configures verification of the server's certificate for https addresses.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// timeout bounds each query. It must not exceed spec.interval. Unset, it is 10s or
	// spec.interval, whichever is shorter.
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+|[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}])$`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Timeout string `json:"timeout,omitempty"`
}

// MetricSpec is a named PromQL query that checks and rollback triggers refer to.
type MetricSpec struct {
	// name by which checks and triggers refer to this metric.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// query is an instant PromQL query that must return a scalar or a vector of exactly
	// one sample. It may use the variables {{namespace}}, {{target}}, {{revision}} and
	// {{checklist}}.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Query string `json:"query"`

	// onNoData says how an empty result, NaN or ±Inf counts: Hold (default) waits,
	// Pass passes, Fail fails. A Prometheus error is never "no data".
	// +kubebuilder:default=Hold
	// +optional
	OnNoData NoDataPolicy `json:"onNoData,omitempty"`
}

// PhaseSpec is one block of the checklist, such as "T-60m" or "T+5m".
// +kubebuilder:validation:XValidation:rule="!(self.at.startsWith('-') || self.at.matches('^[+]?0+([.]0*)?(ns|us|ms|s|m|h)?$')) || self.checks.all(c, !has(c.belowBaseline) && !has(c.aboveBaseline) && !has(c.after))",message="spec.phases[]: belowBaseline, aboveBaseline and after are for T-plus phases (at > 0): before T-0 there is no release to compare with the baseline or to wait for"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || !self.timeout.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.timeout) > duration('0s')",message="spec.phases[].timeout must be positive"
type PhaseSpec struct {
	// name of the phase as the checklist reads, e.g. T-60m, T-0 or T+5m.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^T([+-]?[0-9]+([.][0-9]+)?(ns|us|ms|s|m|h|d)?)+$')",message="spec.phases[].name must read like the checklist's own, e.g. T-60m, T-0 or T+5m"
	// +required
	Name string `json:"name"`

	// at is when the phase opens relative to T-0, as a signed Go duration: "-60m" opens
	// an hour before the deploy, "5m" five minutes after it. Phases at or before "0"
	// gate the release; phases after it verify the release.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[+-]?(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$') || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.phases[].at must be a signed Go duration such as -60m, 0 or 5m, or a {{params.NAME}}"
	// +required
	At string `json:"at"`

	// timeout bounds how long the phase may wait for its checks once it opened. A T-minus
	// phase without one waits as long as it takes (bounded by spec.window when
	// spec.deployAt is set); the last T-plus phase defaults to 10m.
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+|[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}])$`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Timeout string `json:"timeout,omitempty"`

	// checks are the lines of this phase. The phase passes when all of them pass at once.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	Checks []CheckSpec `json:"checks"`
}

// CheckSpec is one line of the checklist. Exactly one of metric, approval, job and http
// is set.
// +kubebuilder:validation:XValidation:rule="[has(self.metric), has(self.approval), has(self.job), has(self.http)].filter(x, x).size() == 1",message="spec.phases[].checks[]: set exactly one of metric, approval, job and http"
// +kubebuilder:validation:XValidation:rule="!has(self.metric) || has(self.below) || has(self.above) || has(self.belowBaseline) || has(self.aboveBaseline)",message="spec.phases[].checks[]: a metric check needs below, above, belowBaseline or aboveBaseline"
// +kubebuilder:validation:XValidation:rule="has(self.metric) || !(has(self.below) || has(self.above) || has(self.belowBaseline) || has(self.aboveBaseline))",message="spec.phases[].checks[]: below, above, belowBaseline and aboveBaseline apply only to a metric check"
// +kubebuilder:validation:XValidation:rule="!has(self.after) || has(self.metric) || has(self.http)",message="spec.phases[].checks[].after applies only to metric and http checks"
// +kubebuilder:validation:XValidation:rule="!(has(self.belowBaseline) && has(self.aboveBaseline)) || !self.belowBaseline.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || !self.aboveBaseline.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || double(self.aboveBaseline) < double(self.belowBaseline)",message="spec.phases[].checks[]: aboveBaseline must be less than belowBaseline, or no value can pass"
// +kubebuilder:validation:XValidation:rule="!(has(self.below) && has(self.above)) || !self.below.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || !self.above.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || double(self.above) < double(self.below)",message="spec.phases[].checks[]: above must be less than below, or no value can pass"
type CheckSpec struct {
	// name of the check, a DNS label unique within its phase.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// metric names an entry of spec.metrics; the check passes while its value is below
	// `below` and above `above`.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Metric string `json:"metric,omitempty"`

	// target names the target of spec.targets whose series the metric check judges:
	// {{target}} and {{podTemplateHash}} in its query are filled in for that target
	// alone. Without it the check judges the whole release ({{target}} stands for every
	// target).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Target string `json:"target,omitempty"`

	// below is the exclusive upper bound a metric must stay under, as a decimal string
	// ("0.01").
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.phases[].checks[].below must be a decimal number in a string, e.g. \"0.01\", or a {{params.NAME}}"
	// +optional
	Below *string `json:"below,omitempty"`

	// above is the exclusive lower bound a metric must stay over, as a decimal string.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.phases[].checks[].above must be a decimal number in a string, e.g. \"0.99\", or a {{params.NAME}}"
	// +optional
	Above *string `json:"above,omitempty"`

	// belowBaseline is an upper bound relative to the baseline (the same metric at T-0, as the
	// version that served before the release): "1.2" passes while the value is below 1.2 ×
	// the baseline. Only in T-plus phases. A baseline of 0 bounds nothing: then below and
	// above judge alone, and without them the metric's onNoData decides (docs/prometheus.md).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="(self.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') && double(self) > 0.0) || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.phases[].checks[].belowBaseline must be a decimal ratio greater than 0 in a string, e.g. \"1.5\", or a {{params.NAME}}"
	// +optional
	BelowBaseline *string `json:"belowBaseline,omitempty"`

	// aboveBaseline is a lower bound relative to the baseline: "0.8" passes while the value is
	// above 0.8 × the baseline (e.g. throughput). Only in T-plus phases.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="(self.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') && double(self) > 0.0) || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.phases[].checks[].aboveBaseline must be a decimal ratio greater than 0 in a string, e.g. \"1.5\", or a {{params.NAME}}"
	// +optional
	AboveBaseline *string `json:"aboveBaseline,omitempty"`

	// after is a grace period: the check judges nothing until this long after the
	// released revision became available (status.target.availableAt), so a rate window
	// holds only the new version. Set it to at least the query's range window. Only in
	// T-plus phases; the phase's deadline is at least one interval after it.
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+|[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}])$`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	After string `json:"after,omitempty"`

	// approval waits for a human sign-off recorded as an annotation.
	// +optional
	Approval *ApprovalCheck `json:"approval,omitempty"`

	// job runs a Job from a template and passes when it succeeds.
	// +optional
	Job *JobCheck `json:"job,omitempty"`

	// http sends a GET and passes on the expected status (and body, if set).
	// +optional
	HTTP *HTTPCheck `json:"http,omitempty"`
}

// ApprovalCheck waits for sign-offs recorded as annotations
// approve.tminus.dev/<role>: "<approver> for <revision>".
type ApprovalCheck struct {
	// role whose sign-off is needed, e.g. deployment-lead or security-review.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Role string `json:"role"`

	// count of distinct approvers needed (2 for four-eyes).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	// +kubebuilder:default=1
	// +optional
	Count int32 `json:"count,omitempty"`
}

// JobCheck runs a Job created from a template, owned by the checklist.
type JobCheck struct {
	// template of the Job to create. The Job is named after the checklist and the check,
	// so a restart never creates a second one.
	// +required
	Template JobTemplate `json:"template"`
}

// JobTemplate is the labels, annotations and spec of a Job.
type JobTemplate struct {
	// metadata holds labels and annotations copied onto the Job.
	// +optional
	Metadata JobTemplateMetadata `json:"metadata,omitempty"`
	// spec of the Job (batch/v1 JobSpec). The API server validates it when tminus creates
	// the Job; the CRD does not repeat the pod schema, which would make it too large for
	// client-side `kubectl apply` (see docs/decisions.md).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +required
	Spec batchv1.JobSpec `json:"spec"`
}

// JobTemplateMetadata is the part of ObjectMeta a Job template may set.
type JobTemplateMetadata struct {
	// labels added to the Job.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations added to the Job.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// HTTPCheck sends a GET request. Redirects are not followed.
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || !self.timeout.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.timeout) > duration('0s')",message="http.timeout must be positive"
type HTTPCheck struct {
	// url to GET, http:// or https://.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?# ]+([/?#][^ ]*)?$') || self.matches('^(https?://)?[^ ]*[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}][^ ]*$')",message="http.url must be an http:// or https:// URL with a host (or contain a {{params.NAME}})"
	// +required
	URL string `json:"url"`

	// expectStatus is the status code that passes.
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	// +kubebuilder:default=200
	// +optional
	ExpectStatus int32 `json:"expectStatus,omitempty"`

	// bodyMatch, if set, is an RE2 regular expression the response body must match.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	BodyMatch string `json:"bodyMatch,omitempty"`

	// timeout bounds the request.
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+|[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}])$`
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:default="5s"
	// +optional
	Timeout string `json:"timeout,omitempty"`
}

// RollbackTrigger is a condition watched from T-0 until the last phase passes. It fires
// when its condition holds continuously for `for` (or once, without `for`).
// +kubebuilder:validation:XValidation:rule="has(self.metric) != has(self.http)",message="spec.rollbackTriggers[]: set exactly one of metric and http"
// +kubebuilder:validation:XValidation:rule="!has(self.metric) || has(self.above) || has(self.below) || has(self.aboveBaseline) || has(self.belowBaseline)",message="spec.rollbackTriggers[]: a metric trigger needs above, below, aboveBaseline or belowBaseline"
// +kubebuilder:validation:XValidation:rule="has(self.metric) || !(has(self.below) || has(self.above) || has(self.aboveBaseline) || has(self.belowBaseline))",message="spec.rollbackTriggers[]: below, above, aboveBaseline and belowBaseline apply only to a metric trigger"
// +kubebuilder:validation:XValidation:rule="!(has(self.belowBaseline) && has(self.aboveBaseline)) || !self.belowBaseline.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || !self.aboveBaseline.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || double(self.belowBaseline) < double(self.aboveBaseline)",message="spec.rollbackTriggers[]: belowBaseline must be less than aboveBaseline, or every value fires"
// +kubebuilder:validation:XValidation:rule="!has(self.__for__) || !self.__for__.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.__for__) > duration('0s')",message="spec.rollbackTriggers[].for must be positive"
// +kubebuilder:validation:XValidation:rule="!(has(self.below) && has(self.above)) || !self.below.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || !self.above.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || double(self.below) < double(self.above)",message="spec.rollbackTriggers[]: below must be less than above (the trigger fires outside the band below..above), or every value fires"
type RollbackTrigger struct {
	// name of the trigger, a DNS label.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// metric names an entry of spec.metrics.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Metric string `json:"metric,omitempty"`

	// target names the target of spec.targets whose series the metric trigger judges:
	// {{target}} and {{podTemplateHash}} in its query are filled in for that target
	// alone. Without it the trigger judges the whole release. A trigger that fires rolls
	// back the whole release either way.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Target string `json:"target,omitempty"`

	// above fires the trigger while the metric is greater than this decimal string.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.rollbackTriggers[].above must be a decimal number in a string, e.g. \"0.05\", or a {{params.NAME}}"
	// +optional
	Above *string `json:"above,omitempty"`

	// below fires the trigger while the metric is less than this decimal string.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.rollbackTriggers[].below must be a decimal number in a string, or a {{params.NAME}}"
	// +optional
	Below *string `json:"below,omitempty"`

	// aboveBaseline fires the trigger while the metric is greater than this ratio of the
	// baseline (the same metric at T-0, as the version that served before the release):
	// "1.5" fires above 1.5 × the baseline. A baseline of 0 bounds nothing: then above
	// and below judge alone, and without them the metric's onNoData decides.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="(self.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') && double(self) > 0.0) || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.rollbackTriggers[].aboveBaseline must be a decimal ratio greater than 0 in a string, e.g. \"1.5\", or a {{params.NAME}}"
	// +optional
	AboveBaseline *string `json:"aboveBaseline,omitempty"`

	// belowBaseline fires the trigger while the metric is less than this ratio of the
	// baseline: "0.5" fires below half the baseline (e.g. throughput).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="(self.matches('^([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') && double(self) > 0.0) || self.matches('^[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}]$')",message="spec.rollbackTriggers[].belowBaseline must be a decimal ratio greater than 0 in a string, e.g. \"1.5\", or a {{params.NAME}}"
	// +optional
	BelowBaseline *string `json:"belowBaseline,omitempty"`

	// http fires the trigger while the health check fails.
	// +optional
	HTTP *HTTPCheck `json:"http,omitempty"`

	// after is a grace period: the trigger judges nothing until this long after the
	// released revision became available (status.target.availableAt). With a rate over
	// a window, set it to at least the window: before that the value still averages in
	// the version that served before, and a release that fixes a bad error rate would
	// be rolled back for the old version's errors.
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+|[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}])$`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	After string `json:"after,omitempty"`

	// for is how long the condition must hold continuously before the trigger fires.
	// Without it, one breaching measurement fires.
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+|[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}])$`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	For string `json:"for,omitempty"`
}

// RollbackSpec says what a fired trigger or a failed verification does to the target.
type RollbackSpec struct {
	// action is Undo (restore the template the target ran before T-0) or None (dry run:
	// record what would have happened, touch nothing).
	// +kubebuilder:default=Undo
	// +optional
	Action RollbackAction `json:"action,omitempty"`
}

// Contact is someone to call during a release.
type Contact struct {
	// role, e.g. On-Call Engineer; unique among the contacts.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +required
	Role string `json:"role"`

	// name of the person or team, e.g. Dana Smith, or {{params.NAME}}.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +required
	Name string `json:"name"`

	// reach says how to reach them: a phone number, a pager, a chat channel, an address.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +required
	Reach string `json:"reach"`
}

// Runbook is a link a responder reads during a release.
type Runbook struct {
	// title, e.g. Sentry; unique among the runbooks.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +required
	Title string `json:"title"`

	// url, http:// or https://, or containing a {{params.NAME}}.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?# ]+([/?#][^ ]*)?$') || self.matches('^(https?://)?[^ ]*[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}][^ ]*$')",message="spec.runbooks[].url must be an http:// or https:// URL with a host (or contain a {{params.NAME}})"
	// +required
	URL string `json:"url"`
}

// TemplateRef names the template a checklist is made from.
type TemplateRef struct {
	// kind is ChecklistTemplate (in the checklist's namespace) or
	// ClusterChecklistTemplate.
	// +kubebuilder:validation:Enum=ChecklistTemplate;ClusterChecklistTemplate
	// +required
	Kind string `json:"kind"`

	// name of the template.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`
}

// DeploymentChecklistSpec is the checklist a release walks through: the release (target,
// revision, when) and either a template to make the checklist from (templateRef and
// parameters) or the checklist itself (phases, metrics, triggers…).
// +kubebuilder:validation:XValidation:rule="has(self.templateRef) != has(self.phases)",message="spec: set exactly one of templateRef and phases"
// +kubebuilder:validation:XValidation:rule="!has(self.templateRef) || !(has(self.metrics) || has(self.prometheus) || has(self.rollbackTriggers))",message="spec: with templateRef the checklist's metrics, prometheus and rollbackTriggers come from the template; set them there"
// +kubebuilder:validation:XValidation:rule="!has(self.window) || has(self.deployAt)",message="spec.window applies only with spec.deployAt"
// +kubebuilder:validation:XValidation:rule="has(self.target) || has(self.targets)",message="spec.targets: name the workloads of the release (or the one in spec.target)"
// +kubebuilder:validation:XValidation:rule="!(has(self.target) && has(self.targets))",message="spec.targets: set spec.target (one workload) or spec.targets (a list), not both"
// +kubebuilder:validation:XValidation:rule="has(self.target) == has(oldSelf.target)",message="spec.targets is immutable: spec.target and spec.targets cannot replace each other; create a new checklist"
// +kubebuilder:validation:XValidation:rule="!has(self.phases) || self.phases.all(p, p.checks.all(c, !has(c.target) || (has(self.targets) ? self.targets.exists(t, t.name == c.target) : (has(self.target) && self.target.name == c.target))))",message="spec.phases[].checks[].target must name a target of spec.targets"
// +kubebuilder:validation:XValidation:rule="!has(self.rollbackTriggers) || self.rollbackTriggers.all(r, !has(r.target) || (has(self.targets) ? self.targets.exists(t, t.name == r.target) : (has(self.target) && self.target.name == r.target)))",message="spec.rollbackTriggers[].target must name a target of spec.targets"
// +kubebuilder:validation:XValidation:rule="!has(self.release) || !has(self.release.steps) || (has(self.targets) ? self.targets.all(t, t.kind == 'StatefulSet') : (has(self.target) && self.target.kind == 'StatefulSet'))",message="spec.release.steps: steps expose pods by a StatefulSet's partition; every target must be a StatefulSet"
// +kubebuilder:validation:XValidation:rule="!has(self.release) || !has(self.release.steps) || !has(self.release.order) || self.release.order == 'Together'",message="spec.release.steps: a release in steps releases its targets Together (order Sequential is not supported with steps)"
// +kubebuilder:validation:XValidation:rule="!has(self.release) || !has(self.release.steps) || !has(self.phases) || self.release.steps.all(s, self.phases.exists(p, p.name == s.phase && (p.at.startsWith('{{') || !(p.at.startsWith('-') || p.at.matches('^[+]?0+([.]0*)?(ns|us|ms|s|m|h)?$')))))",message="spec.release.steps[].phase must name a T-plus phase (at > 0) of spec.phases"
type DeploymentChecklistSpec struct {
	// target is the one workload of the release: the same as a spec.targets of one.
	// Set target or targets, not both. It cannot change: the checklist records the
	// target's pre-deploy template, which must never be written into another
	// Deployment. Create a new checklist instead.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.target is immutable: create a new checklist for another Deployment"
	// +optional
	Target *TargetRef `json:"target,omitempty"`

	// targets are the workloads of the release (at most 16, each name once, whatever
	// the kind: checks, triggers and the status name a target by its name): held
	// together until T-0, released together, verified together and rolled back
	// together in reverse order of release. A target whose template did not change is
	// neither released nor restored; a template it gets after T-0 is held for a
	// checklist of its own. They cannot change, like target.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(t, self.exists_one(u, u.name == t.name))",message="spec.targets: each name may appear only once, whatever the kind: checks, triggers and status.targets name a target by its name"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.targets is immutable: create a new checklist for other workloads"
	// +optional
	Targets []TargetRef `json:"targets,omitempty"`

	// release says how the targets are released at T-0: together (the default) or in
	// sequence. It cannot change: a release in flight keeps its order.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.release is immutable: create a new checklist to release in another order"
	// +optional
	Release *ReleaseSpec `json:"release,omitempty"`

	// revision names what is being released, e.g. v2.7.0. Approvals bind to it: an
	// approval counts only when it names this revision.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-A-Za-z0-9_.+]*$`
	// +optional
	Revision string `json:"revision,omitempty"`

	// deployAt is T-0, the earliest time the release may start. Without it, T-0 is as
	// soon as every T-minus phase has passed.
	// +optional
	DeployAt *metav1.Time `json:"deployAt,omitempty"`

	// window is how late after deployAt the release may still start; past it the
	// checklist fails with "missed the deploy window" and the workload stays as it was.
	// Defaults to 30m when deployAt is set.
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="spec.window must be positive"
	// +optional
	Window string `json:"window,omitempty"`

	// templateRef makes the checklist from a ChecklistTemplate or
	// ClusterChecklistTemplate: its phases, metrics and triggers, with parameters filled
	// in. The template is resolved once, when the checklist starts, and the resolved
	// checklist kept in status: editing or deleting the template never changes a
	// release in flight.
	// +optional
	TemplateRef *TemplateRef `json:"templateRef,omitempty"`

	// parameters fill {{params.NAME}} in the template (or in this checklist's own
	// strings): thresholds, durations, queries, URLs, Job arguments.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Parameters map[string]string `json:"parameters,omitempty"`

	ChecklistBody `json:",inline"`
}

// ChecklistBody is what a checklist checks and how: shared by a DeploymentChecklist and a
// (Cluster)ChecklistTemplate. Thresholds, durations and URLs may be {{params.NAME}}: a
// parameter, filled in when the checklist is resolved and validated then.
// +kubebuilder:validation:XValidation:rule="!has(self.phases) || self.phases.all(p, p.checks.all(c, !has(c.metric) || (has(self.metrics) && self.metrics.exists(m, m.name == c.metric))))",message="spec.phases[].checks[].metric must name a metric defined in spec.metrics"
// +kubebuilder:validation:XValidation:rule="!has(self.rollbackTriggers) || self.rollbackTriggers.all(t, !has(t.metric) || (has(self.metrics) && self.metrics.exists(m, m.name == t.metric)))",message="spec.rollbackTriggers[].metric must name a metric defined in spec.metrics"
// +kubebuilder:validation:XValidation:rule="!has(self.metrics) || size(self.metrics) == 0 || has(self.prometheus)",message="spec.prometheus is required when spec.metrics is set"
// +kubebuilder:validation:XValidation:rule="!has(self.prometheus) || !has(self.prometheus.timeout) || !has(self.interval) || !self.prometheus.timeout.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || !self.interval.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.prometheus.timeout) <= duration(self.interval)",message="spec.prometheus.timeout must not exceed spec.interval"
type ChecklistBody struct {
	// gate is Pause (keep the target paused until T-0) or Observe (never touch the
	// target, only report). It cannot change: what tminus paused and must undo depends
	// on it.
	// +kubebuilder:default=Pause
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.gate is immutable: create a new checklist to change how it gates"
	// +optional
	Gate GateMode `json:"gate,omitempty"`

	// interval is how often metric and http checks and rollback triggers are evaluated.
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+|[{][{]params[.][A-Za-z][A-Za-z0-9_]*[}][}])$`
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self) >= duration('1s')",message="spec.interval must be at least 1s"
	// +kubebuilder:default="30s"
	// +optional
	Interval string `json:"interval,omitempty"`

	// consecutiveErrorLimit is how many measurement errors in a row (Prometheus
	// unreachable, bad response) mark the checklist Degraded. It holds either way.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=4
	// +optional
	ConsecutiveErrorLimit int32 `json:"consecutiveErrorLimit,omitempty"`

	// historyLimit is how many ended checklists (Succeeded, Failed, RolledBack) tminus
	// keeps per target workload: past it, the manager deletes the oldest ended ones. A
	// live checklist is never deleted. The newest checklist of a target decides; without
	// it, the manager's --checklist-history-limit (10). Templates rolled back stay
	// refused after their checklist is deleted (the target's
	// deploy.tminus.dev/refused-templates).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	HistoryLimit *int32 `json:"historyLimit,omitempty"`

	// prometheus is where metric queries go. Required when metrics are defined.
	// +optional
	Prometheus *PrometheusSpec `json:"prometheus,omitempty"`

	// metrics are named PromQL queries, reused by checks and rollback triggers.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Metrics []MetricSpec `json:"metrics,omitempty"`

	// phases of the checklist, ordered by `at`. Required, unless the checklist is made
	// from a template (templateRef).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Phases []PhaseSpec `json:"phases,omitempty"`

	// rollbackTriggers are watched from T-0 until the last phase passes.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +optional
	RollbackTriggers []RollbackTrigger `json:"rollbackTriggers,omitempty"`

	// rollback says what happens when a trigger fires or a T-plus phase fails.
	// +kubebuilder:default={action: Undo}
	// +optional
	Rollback RollbackSpec `json:"rollback,omitempty"`

	// contacts are the people to call during the release (on-call engineer, leads…):
	// shown by kubectl checklist status and why, in every notification and in the
	// release record. Made from a template, a checklist's own contact replaces the
	// template's of the same role; the others are added (docs/templates.md).
	// +listType=map
	// +listMapKey=role
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Contacts []Contact `json:"contacts,omitempty"`

	// runbooks are links to what a responder reads (dashboards, runbooks, consoles):
	// shown where contacts are. Made from a template, a checklist's own runbook replaces
	// the template's of the same title; the others are added.
	// +listType=map
	// +listMapKey=title
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Runbooks []Runbook `json:"runbooks,omitempty"`

	// requireVerifiedApprovals: only sign-offs the approval webhook verified count (its
	// records show who wrote them; sign-offs written before it was installed, or while it
	// was not served, do not). Unset: the manager's --require-verified-approvals, which is
	// on when the manager serves the webhook.
	// +optional
	RequireVerifiedApprovals *bool `json:"requireVerifiedApprovals,omitempty"`
}

// ChecklistPhase is where the release stands.
// +kubebuilder:validation:Enum=Pending;Blocked;Running;Holding;Deploying;Verifying;Succeeded;Failed;RolledBack
type ChecklistPhase string

const (
	// PhasePending: nothing evaluated yet.
	PhasePending ChecklistPhase = "Pending"
	// PhaseBlocked: another live checklist targets the same Deployment; this one waits
	// for it to end and touches nothing meanwhile.
	PhaseBlocked ChecklistPhase = "Blocked"
	// PhaseRunning: T-minus phases are being evaluated.
	PhaseRunning ChecklistPhase = "Running"
	// PhaseHolding: every T-minus phase passed; waiting for deployAt, or (T-0 passed)
	// for the new template to release.
	PhaseHolding ChecklistPhase = "Holding"
	// PhaseDeploying: released at T-0; waiting for the new revision to be available.
	PhaseDeploying ChecklistPhase = "Deploying"
	// PhaseVerifying: T-plus phases and rollback triggers are being evaluated.
	PhaseVerifying ChecklistPhase = "Verifying"
	// PhaseSucceeded: every phase passed.
	PhaseSucceeded ChecklistPhase = "Succeeded"
	// PhaseFailed: the checklist ended without a verified release and without rolling
	// one back: the release did not start (missed window, failed T-minus phase, already
	// released), it was withdrawn outside tminus, or a rollback found nothing to restore.
	PhaseFailed ChecklistPhase = "Failed"
	// PhaseRolledBack: the target was rolled back (or would have been, with action None).
	PhaseRolledBack ChecklistPhase = "RolledBack"
)

// Outcome is the result of one evaluation of a check or trigger. Outcomes are never
// folded together: an Error is not a Fail and NoData is not a Pass.
// +kubebuilder:validation:Enum=Pending;Pass;Fail;NoData;Error
type Outcome string

const (
	OutcomePending Outcome = "Pending"
	OutcomePass    Outcome = "Pass"
	OutcomeFail    Outcome = "Fail"
	OutcomeNoData  Outcome = "NoData"
	OutcomeError   Outcome = "Error"
)

// PhaseState is where one checklist phase stands.
// +kubebuilder:validation:Enum=Pending;Open;Passed;Failed;Skipped
type PhaseState string

const (
	PhaseStatePending PhaseState = "Pending"
	PhaseStateOpen    PhaseState = "Open"
	PhaseStatePassed  PhaseState = "Passed"
	PhaseStateFailed  PhaseState = "Failed"
	PhaseStateSkipped PhaseState = "Skipped"
)

// Measurement is one past evaluation, kept in a bounded history.
type Measurement struct {
	// time of the evaluation.
	Time metav1.Time `json:"time"`
	// outcome of the evaluation.
	Outcome Outcome `json:"outcome"`
	// value observed, as a string ("0.0042", "NaN", "503").
	// +optional
	Value string `json:"value,omitempty"`
}

// CheckStatus is the latest record of one check.
type CheckStatus struct {
	// name of the check.
	Name string `json:"name"`
	// kind of the check: Metric, Approval, Job or HTTP.
	// +kubebuilder:validation:Enum=Metric;Approval;Job;HTTP
	Kind string `json:"kind"`
	// target is the target whose series a metric check judges (spec's check.target);
	// empty: the whole release.
	// +optional
	Target string `json:"target,omitempty"`
	// outcome of the latest evaluation.
	Outcome Outcome `json:"outcome"`
	// value last observed, as a string.
	// +optional
	Value string `json:"value,omitempty"`
	// threshold the value is compared with, e.g. "< 0.01".
	// +optional
	Threshold string `json:"threshold,omitempty"`
	// query as sent to Prometheus, with variables resolved.
	// +optional
	Query string `json:"query,omitempty"`
	// message explains the outcome in a sentence.
	// +optional
	Message string `json:"message,omitempty"`
	// lastEvaluated is when the outcome and value shown were measured. tminus measures
	// every interval but writes status only when something changed: an outcome at once,
	// a value or message at most every --status-refresh (5m). A check that keeps giving
	// the same answer keeps the time it was first given.
	// +optional
	LastEvaluated *metav1.Time `json:"lastEvaluated,omitempty"`
	// consecutiveErrors counts Error outcomes in a row.
	// +optional
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty"`
	// history holds the latest evaluations as of the last status write, newest last.
	// +kubebuilder:validation:MaxItems=10
	// +optional
	History []Measurement `json:"history,omitempty"`
	// jobUID is the uid of the Job tminus created for this job check. A Job of the
	// check's name with another uid (made by someone else, with or without an owner
	// reference to the checklist) is never taken as the check's result: the check fails
	// naming it.
	// +optional
	JobUID types.UID `json:"jobUID,omitempty"`
}

// PhaseStatus is the record of one checklist phase.
type PhaseStatus struct {
	// name of the phase.
	Name string `json:"name"`
	// state of the phase.
	State PhaseState `json:"state"`
	// openedAt is when the phase opened.
	// +optional
	OpenedAt *metav1.Time `json:"openedAt,omitempty"`
	// completedAt is when the phase passed or failed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// unavailableSince is when the T-plus phase's measurements stopped answering
	// (Prometheus errors, or no data held by onNoData) with no check failing. Past its
	// deadline such a phase holds instead of failing: an outage is not a failure.
	// +optional
	UnavailableSince *metav1.Time `json:"unavailableSince,omitempty"`
	// deadlineExtendedBy is how far the phase's deadline moved for the time its
	// measurements did not answer, e.g. "25s".
	// +kubebuilder:validation:MaxLength=32
	// +optional
	DeadlineExtendedBy string `json:"deadlineExtendedBy,omitempty"`
	// checks holds one record per check of the phase.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Checks []CheckStatus `json:"checks,omitempty"`
}

// TriggerStatus is the latest record of one rollback trigger.
type TriggerStatus struct {
	// name of the trigger.
	Name string `json:"name"`
	// target is the target whose series the trigger judges (spec's trigger.target);
	// empty: the whole release.
	// +optional
	Target string `json:"target,omitempty"`
	// outcome of the latest evaluation: Pass means not breached, Fail means breached.
	Outcome Outcome `json:"outcome"`
	// value last observed.
	// +optional
	Value string `json:"value,omitempty"`
	// threshold that breaches, e.g. "> 0.05".
	// +optional
	Threshold string `json:"threshold,omitempty"`
	// breachingSince is when the condition started to hold without a break.
	// +optional
	BreachingSince *metav1.Time `json:"breachingSince,omitempty"`
	// lastEvaluated is when the outcome and value shown were measured (written as for
	// a check's lastEvaluated).
	// +optional
	LastEvaluated *metav1.Time `json:"lastEvaluated,omitempty"`
	// message explains the outcome in a sentence.
	// +optional
	Message string `json:"message,omitempty"`
	// consecutiveErrors counts Error outcomes in a row.
	// +optional
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty"`
}

// ApprovalRecord is a sign-off seen on the checklist.
type ApprovalRecord struct {
	// role signed off.
	Role string `json:"role"`
	// approver named in the annotation.
	Approver string `json:"approver"`
	// revision the approval names.
	Revision string `json:"revision"`
	// firstSeen is when tminus first saw this approval.
	FirstSeen metav1.Time `json:"firstSeen"`
	// verified is true when the admission webhook checked that the approver wrote it.
	// +optional
	Verified bool `json:"verified,omitempty"`
	// key is the annotation's name after approve.tminus.dev/: <role> or <role>.<suffix>.
	// +optional
	Key string `json:"key,omitempty"`
	// candidateTemplateHash identifies the template the Deployment held for release when
	// the sign-off was given (or, for one given before any new template arrived, the first
	// one that did): the sign-off is for that template only.
	// +optional
	CandidateTemplateHash string `json:"candidateTemplateHash,omitempty"`
	// candidateImages are that template's container images.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	CandidateImages []string `json:"candidateImages,omitempty"`
	// notCounted says why this sign-off does not count, when it does not: the template
	// changed after it was given, or it is not verified and verified sign-offs are
	// required.
	// +optional
	NotCounted string `json:"notCounted,omitempty"`
}

// TargetStatus records what the target served when the checklist started, the template
// it releases, and what happened to it.
type TargetStatus struct {
	// preDeployRevision is the Deployment revision (deployment.kubernetes.io/revision)
	// that served when the checklist started.
	// +optional
	PreDeployRevision string `json:"preDeployRevision,omitempty"`
	// preDeployTemplate is the pod template of the ReplicaSet that served every replica
	// when the checklist started: what a rollback restores. Captured once, never
	// replaced.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	PreDeployTemplate *runtime.RawExtension `json:"preDeployTemplate,omitempty"`
	// preDeployTemplateHash identifies preDeployTemplate.
	// +optional
	PreDeployTemplateHash string `json:"preDeployTemplateHash,omitempty"`
	// preDeployImages are the container images of preDeployTemplate.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	PreDeployImages []string `json:"preDeployImages,omitempty"`
	// capturedAt is when the serving template was captured. Unset while the Deployment
	// was rolling out between two ReplicaSets (TargetNotSettled) or did not exist. Set
	// with no template when nothing served yet (a new Deployment): then a rollback has
	// nothing to restore.
	// +optional
	CapturedAt *metav1.Time `json:"capturedAt,omitempty"`
	// candidateTemplateHash identifies the template this checklist releases: the
	// template, other than the pre-deploy one, that the Deployment holds. Before T-0 it
	// follows the Deployment (a new push replaces it, with an event); at T-0 it is fixed.
	// +optional
	CandidateTemplateHash string `json:"candidateTemplateHash,omitempty"`
	// candidateImages are the container images of the candidate template.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	CandidateImages []string `json:"candidateImages,omitempty"`
	// candidateSeenAt is when the candidate was first seen on the Deployment.
	// +optional
	CandidateSeenAt *metav1.Time `json:"candidateSeenAt,omitempty"`
	// t0At is when T-0 happened: every T-minus phase passed and deployAt (if set) was
	// reached. A checklist at T-0 without a candidate waits for the new template and
	// releases it as soon as it arrives.
	// +optional
	T0At *metav1.Time `json:"t0At,omitempty"`
	// releasedAt is when tminus released the candidate.
	// +optional
	ReleasedAt *metav1.Time `json:"releasedAt,omitempty"`
	// releasedTemplateHash identifies the template released; only it is verified.
	// +optional
	ReleasedTemplateHash string `json:"releasedTemplateHash,omitempty"`
	// availableAt is when the released revision became available; T-plus phases count
	// from it.
	// +optional
	AvailableAt *metav1.Time `json:"availableAt,omitempty"`

	// step is, in a release in steps (spec.release.steps), the step whose pods are
	// exposed now (1 is the first); one past the last: every pod. 0 without steps.
	// +optional
	Step int32 `json:"step,omitempty"`

	// stepReadyAt is when the pods of the current step were all updated and ready:
	// its phase's `at` counts from then.
	// +optional
	StepReadyAt *metav1.Time `json:"stepReadyAt,omitempty"`
	// preDeployPodTemplateHash is the pod-template-hash label of the ReplicaSet that
	// served when the checklist started: {{preDeployPodTemplateHash}} in queries, and
	// {{podTemplateHash}} in baseline queries.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	PreDeployPodTemplateHash string `json:"preDeployPodTemplateHash,omitempty"`
	// releasedPodTemplateHash is the pod-template-hash label of the ReplicaSet running the
	// released template (the newest, after a restart): {{podTemplateHash}} in queries.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	ReleasedPodTemplateHash string `json:"releasedPodTemplateHash,omitempty"`
	// heldTemplateHash identifies a template that replaced the released one during
	// verification: it is held (the Deployment stays paused on it) and waits for a
	// checklist of its own; verification of the released template goes on.
	// +optional
	HeldTemplateHash string `json:"heldTemplateHash,omitempty"`
	// heldImages are the container images of the held template.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	HeldImages []string `json:"heldImages,omitempty"`
	// restoredAt is when tminus saw the pre-deploy template back on the target after a
	// rollback.
	// +optional
	RestoredAt *metav1.Time `json:"restoredAt,omitempty"`
}

// ReleaseTargetStatus is what one target of the release ran, what was released on it
// and what was restored: a TargetStatus named by its target.
type ReleaseTargetStatus struct {
	// kind of the target.
	// +required
	Kind string `json:"kind"`
	// name of the target.
	// +required
	Name string `json:"name"`

	TargetStatus `json:",inline"`
}

// BaselineStatus is one metric's baseline: its query evaluated at T-0, as the version
// that served before the release ({{podTemplateHash}} standing for the pre-deploy
// ReplicaSet's hash).
type BaselineStatus struct {
	// metric names the entry of spec.metrics; for a check or trigger judging one
	// target, metric@target (the baseline of that target's series).
	// +kubebuilder:validation:MaxLength=317
	// +required
	Metric string `json:"metric"`
	// result is Value, NoData (empty, NaN or ±Inf: the metric's onNoData decides) or
	// Error (the query failed: it is asked again every interval, and nothing relative to
	// it passes or fires meanwhile).
	// +kubebuilder:validation:Enum=Value;NoData;Error
	// +required
	Result string `json:"result"`
	// value measured, as a decimal string.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Value string `json:"value,omitempty"`
	// at is the evaluation time of the query: T-0.
	// +required
	At metav1.Time `json:"at"`
	// query is the PromQL as sent.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Query string `json:"query,omitempty"`
	// message explains an error or a baseline that bounds nothing.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Message string `json:"message,omitempty"`
	// lastEvaluated is when the query was last sent.
	// +optional
	LastEvaluated *metav1.Time `json:"lastEvaluated,omitempty"`
}

// TemplateStatus names the template a checklist was made from.
type TemplateStatus struct {
	// kind is ChecklistTemplate or ClusterChecklistTemplate.
	Kind string `json:"kind"`
	// name of the template.
	Name string `json:"name"`
	// generation of the template when it was resolved.
	Generation int64 `json:"generation"`
	// resolvedAt is when the checklist was made from it.
	ResolvedAt metav1.Time `json:"resolvedAt"`
	// parameters are the values the template was filled in with, defaults included.
	// +optional
	Parameters map[string]string `json:"parameters,omitempty"`
}

// RollbackRecord says what fired and what was done about it.
type RollbackRecord struct {
	// reason is the trigger or phase that caused the rollback.
	Reason string `json:"reason"`
	// message explains the rollback in a sentence, with the observed value.
	// +optional
	Message string `json:"message,omitempty"`
	// value observed when it fired.
	// +optional
	Value string `json:"value,omitempty"`
	// firedAt is when the trigger fired or the phase failed.
	FiredAt metav1.Time `json:"firedAt"`
	// completedAt is when the target was restored (unset for a dry run).
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// dryRun is true when spec.rollback.action is None: nothing was touched.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// nothingToRestore is true when a rollback was due but there was nothing to put
	// back: the Deployment served nothing when the checklist started, or the released
	// template is the pre-deploy one. The checklist then ends Failed, never RolledBack.
	// +optional
	NothingToRestore bool `json:"nothingToRestore,omitempty"`
}

// RequestKind is what a person asked for.
// +kubebuilder:validation:Enum=Rollback;Abort
type RequestKind string

const (
	RequestRollback RequestKind = "Rollback"
	RequestAbort    RequestKind = "Abort"
)

// RequestState is what tminus made of a person's request.
// +kubebuilder:validation:Enum=Acted;Unverified;NotApplicable
type RequestState string

const (
	// RequestActed: tminus did what was asked.
	RequestActed RequestState = "Acted"
	// RequestUnverified: the checklist webhook did not verify the request (it was
	// written before the webhook was installed, or while it was not served); it is
	// reported and not acted on.
	RequestUnverified RequestState = "Unverified"
	// RequestNotApplicable: verified, but the checklist could no longer act on it when
	// tminus read it (message says why).
	RequestNotApplicable RequestState = "NotApplicable"
)

// RequestRecord is a person's request (rollback-requested or abort-requested) as tminus
// read it and what it made of it.
type RequestRecord struct {
	// kind is Rollback or Abort.
	// +required
	Kind RequestKind `json:"kind"`
	// by is who asked.
	// +kubebuilder:validation:MaxLength=256
	// +required
	By string `json:"by"`
	// reason is why they asked.
	// +kubebuilder:validation:MaxLength=512
	// +required
	Reason string `json:"reason"`
	// writtenBy is the user the checklist webhook verified writing the request: by
	// itself, or a trusted GitOps writer committing it.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	WrittenBy string `json:"writtenBy,omitempty"`
	// state is Acted, Unverified or NotApplicable.
	// +required
	State RequestState `json:"state"`
	// message says what was done, or why not.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
	// at is when tminus read it.
	// +required
	At metav1.Time `json:"at"`
	// after is the phase the checklist was in when it acted on the request.
	// +optional
	After ChecklistPhase `json:"after,omitempty"`
}

// DeploymentChecklistStatus is what tminus observed and did.
type DeploymentChecklistStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase is where the release stands.
	// +optional
	Phase ChecklistPhase `json:"phase,omitempty"`

	// currentPhase is the name of the checklist phase open now, e.g. T-15m.
	// +optional
	CurrentPhase string `json:"currentPhase,omitempty"`

	// nextAction says in a few words what happens next, e.g. "release at 20:00:00Z".
	// +optional
	NextAction string `json:"nextAction,omitempty"`

	// nextActionAt is when the next scheduled event is due: a phase opens, T-0, a
	// deadline, a trigger's duration ends. Measurements, every interval, are not shown.
	// +optional
	NextActionAt *metav1.Time `json:"nextActionAt,omitempty"`

	// phases holds one record per checklist phase.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Phases []PhaseStatus `json:"phases,omitempty"`

	// triggers holds one record per rollback trigger.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Triggers []TriggerStatus `json:"triggers,omitempty"`

	// baselines holds, for each metric a check or trigger compares with its baseline,
	// the metric's value at T-0 as the version that served before the release: what
	// belowBaseline and aboveBaseline are ratios of.
	// +listType=map
	// +listMapKey=metric
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Baselines []BaselineStatus `json:"baselines,omitempty"`

	// approvals holds the sign-offs seen for the current revision.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Approvals []ApprovalRecord `json:"approvals,omitempty"`

	// approvalErrors lists approval and request annotations that could not be read, e.g.
	// a value that is not "<approver> for <revision>", or a rollback request without a
	// reason. They count for nothing until fixed.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	ApprovalErrors []string `json:"approvalErrors,omitempty"`

	// targetNames are the names of the release's targets, comma-separated, in the order
	// of spec.targets (kubectl get's TARGETS column).
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	TargetNames string `json:"targetNames,omitempty"`

	// releasing names the target released now in a Sequential release (spec.release):
	// the one whose rollout the next target waits for. Empty before T-0, once every
	// target rolled out, and in a release of order Together.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Releasing string `json:"releasing,omitempty"`

	// targets records, for each target of the release in the order of spec.targets,
	// what it ran before T-0, what was released on it and what was restored.
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Targets []ReleaseTargetStatus `json:"targets,omitempty"`

	// target is where checklists written before status.targets existed recorded their
	// one target. It is read, moved into status.targets at the next reconcile, and no
	// longer written.
	// +optional
	Target *TargetStatus `json:"target,omitempty"`

	// breakGlass records a release started during a change freeze: which freezes, who
	// signed the exception and why.
	// +optional
	BreakGlass *BreakGlassRecord `json:"breakGlass,omitempty"`

	// rollback records the rollback, once it happened.
	// +optional
	Rollback *RollbackRecord `json:"rollback,omitempty"`

	// request is the last person's request (kubectl checklist rollback or abort) tminus
	// read: who, why, and what it made of it.
	// +optional
	Request *RequestRecord `json:"request,omitempty"`

	// record names the ConfigMap in this namespace that keeps this release's record
	// (docs/records.md), once the release ended and it was written. The record
	// outlives the checklist: `kubectl checklist record <name>`.
	// +optional
	Record string `json:"record,omitempty"`

	// recordUID is the uid of the ConfigMap tminus created for the record: a ConfigMap
	// of that name with another uid is not this release's record.
	// +optional
	RecordUID types.UID `json:"recordUID,omitempty"`

	// notifications holds, for each transition a NotificationPolicy of the namespace
	// notifies, its message to each receiver: pending, sent (when) or failed (why).
	// Past 64 entries the oldest sent or failed ones go; notified keeps them.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Notifications []NotificationStatus `json:"notifications,omitempty"`

	// notified remembers, one entry per transition, every receiver its message was
	// sent to or given up on: what is here is never sent again, across restarts and
	// replicas, while the checklist lives.
	// +optional
	Notified *NotifiedStatus `json:"notified,omitempty"`

	// template records the template the checklist was made from, when it was resolved.
	// +optional
	Template *TemplateStatus `json:"template,omitempty"`

	// resolved is the checklist made from the template with its parameters filled in
	// (gate, interval, prometheus, metrics, phases, rollbackTriggers…): what tminus walks.
	// Kept, so editing or deleting the template never changes a release in flight.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	Resolved *runtime.RawExtension `json:"resolved,omitempty"`

	// conditions: Ready, Reconciling and Stalled (kstatus), AwaitingApproval, Healthy,
	// Degraded, RolledBack, HeldChange, AdmissionGate, Recorded, Notified and Frozen.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DeploymentChecklist walks a release of one or several workloads through T-minus phases (before
// the deploy) and T-plus phases (after it), holds the rollout until the T-minus phases
// pass, and rolls the workload back when a rollback trigger fires.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dcl,categories=tminus
// +kubebuilder:printcolumn:name="Targets",type=string,JSONPath=`.status.targetNames`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Template",type=string,JSONPath=`.spec.templateRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Current",type=string,JSONPath=`.status.currentPhase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextAction`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeploymentChecklist struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object's metadata. Sign-offs are annotations
	// approve.tminus.dev/<role>: "<approver> for <revision>".
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the checklist.
	// +required
	Spec DeploymentChecklistSpec `json:"spec"`

	// status is what tminus observed and did.
	// +optional
	Status DeploymentChecklistStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DeploymentChecklistList contains a list of DeploymentChecklist.
type DeploymentChecklistList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeploymentChecklist `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &DeploymentChecklist{}, &DeploymentChecklistList{})
		return nil
	})
}
