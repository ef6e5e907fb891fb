package checklist

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/freeze"
)

// CondFrozen says whether a change freeze holds the release's T-0 (True, Frozen), will
// hold its deployAt (True, DeployAtInFreeze), was broken by a break-glass (False,
// FreezeBroken) or holds nothing (False, NotFrozen). It appears once a freeze applied.
const CondFrozen = "Frozen"

// Reasons of the Frozen condition and its events.
const (
	ReasonFrozen           = "Frozen"
	ReasonDeployAtInFreeze = "DeployAtInFreeze"
	ReasonFreezeBroken     = "FreezeBroken"
	ReasonNotFrozen        = "NotFrozen"
)

// frozen reports whether a change freeze holds T-0 now, and says so. A freeze with an
// exception role lets the release through with that role's sign-offs (counted as every
// sign-off is: for this revision and template, verified when required) and the reason
// annotation: the break-glass, recorded in status and a Warning event. Rollbacks and
// releases already out never come here.
func (e *engine) frozen() bool {
	blocks := freeze.At(e.obs.Freezes, e.now)
	if len(blocks) == 0 {
		return false
	}
	reason := strings.TrimSpace(e.dcl.Annotations[deployv1alpha1.BreakGlassReasonAnnotation])
	var held, broken, approvers []string
	var until time.Time
	for i := range blocks {
		b := &blocks[i]
		if !b.Until.IsZero() && (until.IsZero() || b.Until.Before(until)) {
			until = b.Until
		}
		switch names := e.approvers(b.ExceptionRole); {
		case b.Err != "" || b.ExceptionRole == "":
			held = append(held, b.Describe()+"; it has no break-glass")
		case len(names) < b.ExceptionCount:
			held = append(held, fmt.Sprintf("%s; break-glass: %d of %d sign-offs of %s, and the annotation %s",
				b.Describe(), len(names), b.ExceptionCount, b.ExceptionRole, deployv1alpha1.BreakGlassReasonAnnotation))
		default:
			broken = append(broken, fmt.Sprintf("%s (%s)", b.ID, b.Reason))
			approvers = append(approvers, names...)
		}
	}
	if len(held) == 0 && reason == "" {
		held = append(held, fmt.Sprintf("the break-glass sign-offs are given, but the checklist has no annotation %s "+
			"saying why", deployv1alpha1.BreakGlassReasonAnnotation))
	}
	if len(held) > 0 {
		e.holdFrozen(strings.Join(held, "; "), until)
		return true
	}
	slices.Sort(approvers)
	approvers = slices.Compact(approvers)
	if e.st.BreakGlass == nil {
		e.st.BreakGlass = &deployv1alpha1.BreakGlassRecord{Freezes: broken, Reason: truncate(reason, 512),
			Approvers: approvers, At: e.stamp()}
		e.event(corev1.EventTypeWarning, ReasonFreezeBroken, fmt.Sprintf("T-0 during %s: break-glass by %s: %s",
			strings.Join(broken, ", "), strings.Join(approvers, ", "), reason))
	}
	return false
}

// holdFrozen holds the release before T-0 while a freeze is in force.
func (e *engine) holdFrozen(why string, until time.Time) {
	if c := meta.FindStatusCondition(e.st.Conditions, CondFrozen); c == nil || c.Reason != ReasonFrozen {
		e.event(corev1.EventTypeNormal, ReasonFrozen, "T-0 held: "+why)
	}
	e.st.Phase = deployv1alpha1.PhaseHolding
	e.st.CurrentPhase = ""
	e.waiting = ReasonFrozen
	e.frozenBy = why
	e.next = "frozen: " + why
	if !until.IsZero() {
		e.wakeAt(until)
	}
	e.pollIn(e.p.interval)
}

// deployAtInFreeze says, before deployAt, whether a freeze will hold it.
func (e *engine) deployAtInFreeze() {
	if e.p.deployAt == nil || !e.now.Before(*e.p.deployAt) || len(e.obs.Freezes) == 0 {
		return
	}
	blocks := freeze.At(e.obs.Freezes, *e.p.deployAt)
	if len(blocks) == 0 {
		return
	}
	why := make([]string, 0, len(blocks))
	for i := range blocks {
		why = append(why, blocks[i].Describe())
	}
	e.deployAtFrozen = fmt.Sprintf("deployAt %s falls in a change freeze: %s; T-0 waits for it to end, or a break-glass",
		e.p.deployAt.UTC().Format(time.RFC3339), strings.Join(why, "; "))
	if c := meta.FindStatusCondition(e.st.Conditions, CondFrozen); c == nil || c.Reason != ReasonDeployAtInFreeze {
		e.event(corev1.EventTypeWarning, ReasonDeployAtInFreeze, e.deployAtFrozen)
	}
}

// setFrozen sets the Frozen condition; it appears once a freeze applied to the
// checklist, and stays to say how it ended.
func (e *engine) setFrozen() {
	st, gen := e.st, e.dcl.Generation
	switch {
	case e.frozenBy != "":
		setCondition(st, gen, CondFrozen, metav1.ConditionTrue, ReasonFrozen, "T-0 held: "+e.frozenBy)
	case e.deployAtFrozen != "":
		setCondition(st, gen, CondFrozen, metav1.ConditionTrue, ReasonDeployAtInFreeze, e.deployAtFrozen)
	case st.BreakGlass != nil:
		bg := st.BreakGlass
		setCondition(st, gen, CondFrozen, metav1.ConditionFalse, ReasonFreezeBroken, fmt.Sprintf(
			"released during %s by break-glass of %s: %s", strings.Join(bg.Freezes, ", "),
			strings.Join(bg.Approvers, ", "), bg.Reason))
	case meta.FindStatusCondition(st.Conditions, CondFrozen) != nil:
		setCondition(st, gen, CondFrozen, metav1.ConditionFalse, ReasonNotFrozen, "no change freeze holds T-0")
	}
}
