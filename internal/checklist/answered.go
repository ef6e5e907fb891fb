package checklist

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Answered says whether a decision would record nothing new of what a checklist's
// annotations say: every sign-off (obs.Approvals), request (obs.Requests) and
// annotation that could not be read (the problems) is in st as the engine records it.
// It runs the engine's own bookkeeping of them, so it cannot drift from Decide. Only
// obs's sign-offs, requests and problems are read.
func Answered(st *deployv1alpha1.DeploymentChecklistStatus, obs Observations) bool {
	// syncApprovals replaces the lists it writes instead of changing them in place: a
	// copy of the struct is enough.
	cp := *st
	e := &engine{st: &cp, obs: obs}
	e.syncApprovals()
	if !equality.Semantic.DeepEqual(cp.Approvals, st.Approvals) || !slices.Equal(cp.ApprovalErrors, st.ApprovalErrors) {
		return false
	}
	return !slices.ContainsFunc(obs.Requests, func(r Request) bool { return !e.recorded(r) })
}
