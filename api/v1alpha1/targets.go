package v1alpha1

import "k8s.io/apimachinery/pkg/util/intstr"

// TargetRefs are the release's targets: spec.targets, or spec.target as a list of one.
func (s *DeploymentChecklistSpec) TargetRefs() []TargetRef {
	if len(s.Targets) > 0 {
		return s.Targets
	}
	if s.Target != nil {
		return []TargetRef{*s.Target}
	}
	return nil
}

// TargetNames are the names of the release's targets, in order.
func (s *DeploymentChecklistSpec) TargetNames() []string {
	refs := s.TargetRefs()
	names := make([]string, len(refs))
	for i := range refs {
		names[i] = refs[i].Name
	}
	return names
}

// Names says whether the release has the named target (of any kind: Deployment is the
// only one for now).
func (s *DeploymentChecklistSpec) Names(name string) bool {
	for _, t := range s.TargetRefs() {
		if t.Name == name {
			return true
		}
	}
	return false
}

// TargetStatusOf is the status of the named target: its entry of status.targets, or,
// for a checklist whose status was written before status.targets existed, status.target
// (its one target). Nil when nothing was recorded for it yet.
func (dcl *DeploymentChecklist) TargetStatusOf(name string) *TargetStatus {
	for i := range dcl.Status.Targets {
		if dcl.Status.Targets[i].Name == name {
			return &dcl.Status.Targets[i].TargetStatus
		}
	}
	if refs := dcl.Spec.TargetRefs(); dcl.Status.Target != nil && len(refs) == 1 && refs[0].Name == name {
		return dcl.Status.Target
	}
	return nil
}

// ShardTarget is the target whose name places the checklist in a shard (the manager's
// --shards): the first one.
func (s *DeploymentChecklistSpec) ShardTarget() string {
	if refs := s.TargetRefs(); len(refs) > 0 {
		return refs[0].Name
	}
	return ""
}

// TargetsOf is status st's record of each target of spec, in the order of spec's
// targets: status.targets, or for a status written before status.targets existed,
// status.target as the record of the one target. Targets nothing was recorded for are
// left out.
func (st *DeploymentChecklistStatus) TargetsOf(spec *DeploymentChecklistSpec) []ReleaseTargetStatus {
	if len(st.Targets) > 0 || st.Target == nil {
		return st.Targets
	}
	if refs := spec.TargetRefs(); len(refs) == 1 {
		kind := refs[0].Kind
		if kind == "" {
			kind = "Deployment"
		}
		return []ReleaseTargetStatus{{Kind: kind, Name: refs[0].Name, TargetStatus: *st.Target}}
	}
	return nil
}

// Sequential says whether the targets are released one after another (spec.release).
func (s *DeploymentChecklistSpec) Sequential() bool {
	return s.Release != nil && s.Release.Order == ReleaseSequential
}

// StepCount is how many steps a release in steps walks: spec.release.steps, and one
// more that releases every pod unless the last step already is 100%. 0 without steps.
func (s *DeploymentChecklistSpec) StepCount() int {
	if s.Release == nil || len(s.Release.Steps) == 0 {
		return 0
	}
	n := len(s.Release.Steps)
	if last := s.Release.Steps[n-1].Pods; last.Type == intstr.String && last.StrVal == "100%" {
		return n
	}
	return n + 1
}
