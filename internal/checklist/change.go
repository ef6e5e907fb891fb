package checklist

import (
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Change grades how much a new status differs from the stored one. The reconciler
// writes a Material change at once, a Detail change at most once per refresh period,
// and a change of measurement times alone never: a checklist whose outcomes hold still
// costs the API server no writes, however often it is measured.
type Change int

const (
	// Unchanged: the two statuses are equal.
	Unchanged Change = iota
	// Timing: only when things were measured moved (lastEvaluated, history).
	Timing
	// Detail: a check's or trigger's value, message, resolved query or error count
	// changed, or the time of the next scheduled event, and nothing else did.
	Detail
	// Material: anything else: the phase, the next action, a condition, an outcome, a
	// phase's state, approvals, the rollback or target record, a breach starting. The
	// next action and the conditions name no measured value while nothing breaches, so
	// they hold still while outcomes do.
	Material
)

func (c Change) String() string {
	switch c {
	case Unchanged:
		return "Unchanged"
	case Timing:
		return "Timing"
	case Detail:
		return "Detail"
	}
	return "Material"
}

// Compare grades the change from old to cur.
func Compare(old, cur *deployv1alpha1.DeploymentChecklistStatus) Change {
	if equality.Semantic.DeepEqual(old, cur) {
		return Unchanged
	}
	o, c := old.DeepCopy(), cur.DeepCopy()
	clearTiming(o)
	clearTiming(c)
	if equality.Semantic.DeepEqual(o, c) {
		return Timing
	}
	clearDetail(o)
	clearDetail(c)
	if equality.Semantic.DeepEqual(o, c) {
		return Detail
	}
	return Material
}

func clearTiming(st *deployv1alpha1.DeploymentChecklistStatus) {
	for i := range st.Phases {
		for j := range st.Phases[i].Checks {
			cr := &st.Phases[i].Checks[j]
			cr.LastEvaluated, cr.History = nil, nil
		}
	}
	for i := range st.Triggers {
		st.Triggers[i].LastEvaluated = nil
	}
	for i := range st.Baselines {
		st.Baselines[i].LastEvaluated = nil
	}
}

func clearDetail(st *deployv1alpha1.DeploymentChecklistStatus) {
	st.NextActionAt = nil
	for i := range st.Phases {
		for j := range st.Phases[i].Checks {
			cr := &st.Phases[i].Checks[j]
			cr.Value, cr.Message, cr.Query, cr.ConsecutiveErrors = "", "", "", 0
		}
	}
	for i := range st.Triggers {
		tr := &st.Triggers[i]
		tr.Value, tr.Message, tr.ConsecutiveErrors = "", "", 0
	}
	for i := range st.Baselines {
		b := &st.Baselines[i]
		if b.Result != BaselineValue {
			b.Message, b.Query = "", ""
		}
	}
}

// LastRecorded is the newest measurement time a status holds: about when it was last
// written with fresh values. Zero when nothing was measured.
func LastRecorded(st *deployv1alpha1.DeploymentChecklistStatus) time.Time {
	var last time.Time
	see := func(t *time.Time) {
		if t != nil && t.After(last) {
			last = *t
		}
	}
	for i := range st.Phases {
		for j := range st.Phases[i].Checks {
			if le := st.Phases[i].Checks[j].LastEvaluated; le != nil {
				see(&le.Time)
			}
		}
	}
	for i := range st.Triggers {
		if le := st.Triggers[i].LastEvaluated; le != nil {
			see(&le.Time)
		}
	}
	return last
}
