package checklist

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// A release is a set of targets (spec.targets, or spec.target as a list of one). The
// engine walks the steps that concern one target (capture, hold, follow the candidate,
// release, restore) once per target, with e.cur naming the one at hand; what concerns
// the release as a whole (phases, triggers, sign-offs) is walked once.

// kindOf is a target's kind, defaulted as the CRD defaults it.
func kindOf(ref deployv1alpha1.TargetRef) string {
	if ref.Kind == "" {
		return "Deployment"
	}
	return ref.Kind
}

// podsWord is what messages call the pods of targets of these kinds: "replicas", or
// "pods" when one is a DaemonSet (one pod per node: it has no replicas).
func podsWord(refs ...deployv1alpha1.TargetRef) string {
	for _, r := range refs {
		if kindOf(r) == deployv1alpha1.KindDaemonSet {
			return "pods"
		}
	}
	return "replicas"
}

// ref is the target at hand.
func (e *engine) ref() deployv1alpha1.TargetRef {
	if e.cur < len(e.refs) {
		return e.refs[e.cur]
	}
	return deployv1alpha1.TargetRef{}
}

// tname is the name of the target at hand.
func (e *engine) tname() string { return e.ref().Name }

// tdesc names the target at hand with its kind, as messages do: "StatefulSet db".
func (e *engine) tdesc() string { return kindOf(e.ref()) + " " + e.ref().Name }

// descNamed names the target called name with its kind: "DaemonSet agent".
func (e *engine) descNamed(name string) string {
	for _, r := range e.refs {
		if r.Name == name {
			return r.String()
		}
	}
	return deployv1alpha1.TargetRef{Name: name}.String()
}

// descs names the i-th targets with their kinds: "Deployment web, StatefulSet db", or
// with the kind once when they share it: "Deployment web, api".
func (e *engine) descs(idx []int) string {
	refs := make([]deployv1alpha1.TargetRef, len(idx))
	for j, i := range idx {
		refs[j] = e.refs[i]
	}
	return deployv1alpha1.DescribeTargets(refs)
}

// heldAs says how the target at hand is held, as messages do: a Deployment is paused,
// a StatefulSet held at its rolling update's partition, a DaemonSet by the OnDelete
// update strategy.
func (e *engine) heldAs() string {
	switch kindOf(e.ref()) {
	case deployv1alpha1.KindStatefulSet:
		return "held (rolling update partition)"
	case deployv1alpha1.KindDaemonSet:
		return "held (update strategy OnDelete)"
	}
	return "paused"
}

// sameKind says whether every target is of one kind.
func (e *engine) sameKind() bool {
	for _, r := range e.refs {
		if kindOf(r) != kindOf(e.refs[0]) {
			return false
		}
	}
	return true
}

// alldesc names every target with its kind, as descs does.
func (e *engine) alldesc() string { return deployv1alpha1.DescribeTargets(e.refs) }

// descOf names the target called name with its kind ("StatefulSet db"); a name no
// target has is taken for a Deployment's.
func (e *engine) descOf(name string) string {
	if i := slices.IndexFunc(e.refs, func(r deployv1alpha1.TargetRef) bool { return r.Name == name }); i >= 0 {
		return e.refs[i].String()
	}
	return deployv1alpha1.TargetRef{Name: name}.String()
}

// tobs is what was observed of the target at hand.
func (e *engine) tobs() *TargetState { return e.obs.targetAt(e.cur) }

// targetAt is what was observed of the i-th target; a target not observed is not found.
func (o *Observations) targetAt(i int) *TargetState {
	if i < len(o.Targets) {
		return &o.Targets[i]
	}
	return &TargetState{}
}

// ts is the status of the target at hand, nil while nothing was recorded for it.
func (e *engine) ts() *deployv1alpha1.TargetStatus {
	ref := e.ref()
	for i := range e.st.Targets {
		if t := &e.st.Targets[i]; t.Name == ref.Name && t.Kind == kindOf(ref) {
			return &t.TargetStatus
		}
	}
	return nil
}

// target is the status of the target at hand, recorded from now on. Entries are
// appended (the list has room for every target, so a pointer handed out stays good for
// the whole Decide) and put in the order of spec.targets when the decision is made.
func (e *engine) target() *deployv1alpha1.TargetStatus {
	if ts := e.ts(); ts != nil {
		return ts
	}
	ref := e.ref()
	e.st.Targets = append(e.st.Targets, deployv1alpha1.ReleaseTargetStatus{Kind: kindOf(ref), Name: ref.Name})
	return &e.st.Targets[len(e.st.Targets)-1].TargetStatus
}

// readTargets sets the engine up for the release's targets: status written before
// status.targets existed (status.target, one target) moves into the list, and the list
// gets room for every target.
func (e *engine) readTargets() {
	e.refs = e.spec.TargetRefs()
	if old := e.st.Target; old != nil {
		if len(e.st.Targets) == 0 && len(e.refs) == 1 {
			e.st.Targets = []deployv1alpha1.ReleaseTargetStatus{{Kind: kindOf(e.refs[0]), Name: e.refs[0].Name, TargetStatus: *old}}
		}
		e.st.Target = nil
	}
	list := make([]deployv1alpha1.ReleaseTargetStatus, len(e.st.Targets), max(len(e.refs), len(e.st.Targets)))
	copy(list, e.st.Targets)
	e.st.Targets = list
	if len(list) == 0 {
		e.st.Targets = nil
	}
	e.st.TargetNames = joinNames(e.refs)
}

// sortTargets puts status.targets in the order of spec.targets.
func (e *engine) sortTargets() {
	pos := func(t deployv1alpha1.ReleaseTargetStatus) int {
		return slices.IndexFunc(e.refs, func(r deployv1alpha1.TargetRef) bool { return r.Name == t.Name && kindOf(r) == t.Kind })
	}
	slices.SortStableFunc(e.st.Targets, func(a, b deployv1alpha1.ReleaseTargetStatus) int { return pos(a) - pos(b) })
}

func joinNames(refs []deployv1alpha1.TargetRef) string {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Name
	}
	return strings.Join(names, ",")
}

// T0 is when T-0 happened for the release: every target records it at once. Nil before.
func T0(dcl *deployv1alpha1.DeploymentChecklist) *metav1.Time {
	for _, name := range dcl.Spec.TargetNames() {
		if ts := dcl.TargetStatusOf(name); ts != nil && ts.T0At != nil {
			return ts.T0At
		}
	}
	return nil
}

// CandidateSet identifies the set of candidate templates a sign-off is for: for one
// target, its candidate's hash (gate.TemplateHash) as before; for several, a digest of
// each target's name and candidate hash ("" for a target with no candidate), so a
// change to any candidate is another set.
func CandidateSet(names, hashes []string) string {
	if len(names) == 1 && len(hashes) == 1 {
		return hashes[0]
	}
	h := sha256.New()
	for i, name := range names {
		v := ""
		if i < len(hashes) {
			v = hashes[i]
		}
		h.Write([]byte(name + "=" + v + "\n"))
	}
	return "set-" + hex.EncodeToString(h.Sum(nil))
}

// CandidateSetOf is the set of candidates dcl's status records (CandidateSet); "" while
// no target holds one.
func CandidateSetOf(dcl *deployv1alpha1.DeploymentChecklist) string {
	names := dcl.Spec.TargetNames()
	hashes := make([]string, len(names))
	any := false
	for i, name := range names {
		if ts := dcl.TargetStatusOf(name); ts != nil && ts.CandidateTemplateHash != "" {
			hashes[i], any = ts.CandidateTemplateHash, true
		}
	}
	if !any {
		return ""
	}
	return CandidateSet(names, hashes)
}

// each runs f once per target, in the order of spec.targets, with the target at hand
// set; it stops at the first f that returns false and reports whether every f went on.
func (e *engine) each(f func() bool) bool {
	defer func(cur int) { e.cur = cur }(e.cur)
	for i := range e.refs {
		e.cur = i
		if !f() {
			return false
		}
	}
	return true
}

// releasedTargets are the indexes of the targets released, in the order of release.
func (e *engine) releasedTargets() []int {
	var out []int
	for i := range e.refs {
		if ts := e.tsAt(i); ts != nil && ts.ReleasedTemplateHash != "" {
			out = append(out, i)
		}
	}
	return out
}

// tsAt is the status of the i-th target, nil while nothing was recorded for it.
func (e *engine) tsAt(i int) *deployv1alpha1.TargetStatus {
	defer func(cur int) { e.cur = cur }(e.cur)
	e.cur = i
	return e.ts()
}

// capturedHere says whether the target at hand's serving template was recorded.
func (e *engine) capturedHere() bool { ts := e.ts(); return ts != nil && ts.CapturedAt != nil }

// setT0 records T-0 (or takes it back, nil) for every target: T-0 is the release's.
func (e *engine) setT0(at *metav1.Time) {
	e.each(func() bool {
		if at != nil {
			e.target().T0At = at
		} else if ts := e.ts(); ts != nil {
			ts.T0At = nil
		}
		return true
	})
}

// availableAt is when the release became available: every released target at once.
func (e *engine) availableAt() *metav1.Time {
	if e.stepBase != nil {
		return e.stepBase
	}
	for _, i := range e.releasedTargets() {
		if at := e.tsAt(i).AvailableAt; at != nil {
			return at
		}
	}
	return nil
}

// t0 is when T-0 happened, nil before.
func (e *engine) t0() *metav1.Time {
	for i := range e.refs {
		if ts := e.tsAt(i); ts != nil && ts.T0At != nil {
			return ts.T0At
		}
	}
	return nil
}

// candidateSet is the set of candidates the release holds now (CandidateSet) and their
// images; "" while no target holds one.
func (e *engine) candidateSet() (string, []string) {
	hashes := make([]string, len(e.refs))
	var imgs []string
	any := false
	for i := range e.refs {
		if ts := e.tsAt(i); ts != nil && ts.CandidateTemplateHash != "" {
			hashes[i], any = ts.CandidateTemplateHash, true
			imgs = append(imgs, ts.CandidateImages...)
		}
	}
	if !any {
		return "", nil
	}
	return CandidateSet(e.spec.TargetNames(), hashes), imgs
}

// restorable says whether a rollback has something to put back on the target at hand:
// it was released, served something when the checklist started, and the release is not
// that very template.
func (e *engine) restorable() bool {
	ts := e.ts()
	return ts != nil && ts.ReleasedTemplateHash != "" && ts.PreDeployTemplate != nil && ts.ReleasedTemplateHash != ts.PreDeployTemplateHash
}
