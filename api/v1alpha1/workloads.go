package v1alpha1

import (
	"math"
	"strings"
)

// The kinds of workload a checklist gates, each held by its own update strategy.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

const (
	// OwnerPartitionAnnotation keeps, while tminus holds a StatefulSet at
	// HoldPartition, the rollingUpdate.partition its owner set ("" when none): the
	// release puts it back.
	OwnerPartitionAnnotation = "deploy.tminus.dev/owner-partition"

	// StepAnnotation says, while tminus releases a StatefulSet in steps
	// (spec.release.steps), which step it is on ("1 of 2"): its partition is the
	// step's, and the owner's stays in OwnerPartitionAnnotation until the last step.
	StepAnnotation = "deploy.tminus.dev/step"

	// StepVerb is the RBAC verb, on deploymentchecklists in the StatefulSet's
	// namespace, that lets a write change or drop StepAnnotation while a live
	// checklist releases the StatefulSet in steps. tminus's manager has it (its steps
	// change the mark, its last release drops it); a writer without it has the mark put
	// back: the manager reads from it whose partition the StatefulSet has, and the
	// admission gate which writes it keeps back.
	StepVerb = "step"

	// OwnerStrategyAnnotation keeps, while tminus holds a DaemonSet with the OnDelete
	// strategy, the update strategy its owner set (as JSON): the release puts it back,
	// maxUnavailable and maxSurge included.
	OwnerStrategyAnnotation = "deploy.tminus.dev/owner-strategy"

	// ServingTemplateAnnotation keeps, while tminus holds a DaemonSet, the hash of the
	// pod template its pods ran when the hold began (none when they ran none: a
	// DaemonSet created held). A DaemonSet has no currentRevision: under OnDelete this
	// is what serves, whatever templates are held after it, and the only template a
	// rollback may put back; a pod recreated under the hold (a new node, an eviction)
	// starts on the held template, which does not make it one the DaemonSet ran.
	ServingTemplateAnnotation = "deploy.tminus.dev/serving-template"

	// HoldPartition is the partition tminus holds a StatefulSet at: no ordinal is
	// below it, so no pod is updated, and a StatefulSet scaled up while held makes its
	// new pods from the template that serves (a partition equal to replicas would let
	// them start on the held template).
	HoldPartition int32 = math.MaxInt32
)

// KindOf is the target's kind, Deployment when not set.
func (t TargetRef) KindOf() string {
	if t.Kind == "" {
		return KindDeployment
	}
	return t.Kind
}

// String names the target as messages do: "StatefulSet web".
func (t TargetRef) String() string { return t.KindOf() + " " + t.Name }

// DescribeTargets names targets as messages do: with the kind once when they share it
// ("Deployment web, api", "StatefulSet db"), each with its own when they do not
// ("Deployment web, StatefulSet db").
func DescribeTargets(refs []TargetRef) string {
	if len(refs) == 0 {
		return ""
	}
	same := true
	names := make([]string, len(refs))
	descs := make([]string, len(refs))
	for i, r := range refs {
		same = same && r.KindOf() == refs[0].KindOf()
		names[i], descs[i] = r.Name, r.String()
	}
	if same {
		return refs[0].KindOf() + " " + strings.Join(names, ", ")
	}
	return strings.Join(descs, ", ")
}

// HasTarget says whether the release has the target of this kind and name.
func (s *DeploymentChecklistSpec) HasTarget(kind, name string) bool {
	for _, t := range s.TargetRefs() {
		if t.Name == name && t.KindOf() == kind {
			return true
		}
	}
	return false
}
