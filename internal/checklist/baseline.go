package checklist

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Baseline results as recorded in status.
const (
	BaselineValue  = "Value"
	BaselineNoData = "NoData"
	BaselineError  = "Error"
)

// limits are a metric check's or trigger's bounds as written: absolute values and
// ratios of the baseline. A check passes under every below and over every above; a
// trigger fires over any above or under any below.
type limits struct {
	below, above, belowBaseline, aboveBaseline *string
}

func checkLimits(c *deployv1alpha1.CheckSpec) limits {
	return limits{c.Below, c.Above, c.BelowBaseline, c.AboveBaseline}
}

func triggerLimits(t *deployv1alpha1.RollbackTrigger) limits {
	return limits{t.Below, t.Above, t.BelowBaseline, t.AboveBaseline}
}

func (l limits) relative() bool { return l.belowBaseline != nil || l.aboveBaseline != nil }

func (l limits) absolute() bool { return l.below != nil || l.above != nil }

// bounds are limits in numbers, the baseline applied. When the baseline decides
// instead of the bounds (not measured yet, its query failed, no data at T-0, or a
// baseline of 0 with no absolute bound), decided holds the outcome and why says so.
type bounds struct {
	below, above []float64
	decided      deployv1alpha1.Outcome
	why          string
}

// bounds applies the baseline of metric to l.
func (e *engine) bounds(metric string, l limits) bounds {
	var b bounds
	if v, ok := threshold(l.below); ok {
		b.below = append(b.below, v)
	}
	if v, ok := threshold(l.above); ok {
		b.above = append(b.above, v)
	}
	if !l.relative() {
		return b
	}
	base := e.baselineRecord(metric)
	noData := func(why string) bounds {
		switch e.p.metrics[metricName(metric)].OnNoData {
		case deployv1alpha1.NoDataPass:
			return b // the ratios are left out
		case deployv1alpha1.NoDataFail:
			b.decided, b.why = deployv1alpha1.OutcomeFail, why+"; onNoData is Fail"
		default:
			b.decided, b.why = deployv1alpha1.OutcomeNoData, why+"; onNoData is Hold"
		}
		return b
	}
	switch {
	case base == nil:
		b.decided, b.why = deployv1alpha1.OutcomePending, "waiting for the baseline (the metric at T-0)"
	case base.Result == BaselineError:
		b.decided, b.why = deployv1alpha1.OutcomeError, truncate("baseline: "+base.Message, 512)
	case base.Result == BaselineNoData:
		return noData("the baseline (the metric at T-0) has no data")
	default:
		v, err := strconv.ParseFloat(base.Value, 64)
		switch {
		case err != nil || v <= 0:
			// A ratio of nothing bounds nothing: the absolute bounds judge alone.
			if !l.absolute() {
				return noData(fmt.Sprintf("the baseline is %s, and a ratio of it bounds nothing", base.Value))
			}
		default:
			if r, ok := threshold(l.belowBaseline); ok {
				b.below = append(b.below, r*v)
			}
			if r, ok := threshold(l.aboveBaseline); ok {
				b.above = append(b.above, r*v)
			}
		}
	}
	return b
}

// passes says whether v is within a check's bounds.
func (b bounds) passes(v float64) bool {
	for _, x := range b.below {
		if !(v < x) {
			return false
		}
	}
	for _, x := range b.above {
		if !(v > x) {
			return false
		}
	}
	return true
}

// breaches says whether v trips a trigger's bounds.
func (b bounds) breaches(v float64) bool {
	return slices.ContainsFunc(b.above, func(x float64) bool { return v > x }) ||
		slices.ContainsFunc(b.below, func(x float64) bool { return v < x })
}

// limitText renders what a check needs (join " and ") or what fires a trigger (join
// " or "), with the baseline's value once it is known: "< 2 and < 1.5 × baseline 0.1 (0.15)".
func (e *engine) limitText(metric string, l limits, check bool) string {
	var parts []string
	rel := func(op string, ratio *string) {
		if ratio == nil {
			return
		}
		s := op + " " + *ratio + " × baseline"
		if base := e.baselineRecord(metric); base != nil && base.Result == BaselineValue {
			s += " " + base.Value
			if v, err := strconv.ParseFloat(base.Value, 64); err == nil && v > 0 {
				if r, ok := threshold(ratio); ok {
					s += " (" + strconv.FormatFloat(r*v, 'g', 4, 64) + ")"
				}
			}
		}
		parts = append(parts, s)
	}
	if l.above != nil {
		parts = append(parts, "> "+*l.above)
	}
	rel(">", l.aboveBaseline)
	if l.below != nil {
		parts = append(parts, "< "+*l.below)
	}
	rel("<", l.belowBaseline)
	join := " or "
	if check {
		join = " and "
	}
	return strings.Join(parts, join)
}

// baselineRecord is metric's baseline in status, nil before it was measured.
func (e *engine) baselineRecord(metric string) *deployv1alpha1.BaselineStatus {
	for i := range e.st.Baselines {
		if e.st.Baselines[i].Metric == metric {
			return &e.st.Baselines[i]
		}
	}
	return nil
}

// recordBaselines takes the baselines measured in this reconcile into status. A value
// is kept for good: it is the metric at T-0, which does not change. No data and errors
// are asked again while something compares with them.
func (e *engine) recordBaselines() {
	t0 := e.t0()
	if t0 == nil {
		return
	}
	for _, name := range sortedKeys(e.obs.Baselines) {
		m := e.obs.Baselines[name]
		rec := e.baselineRecord(name)
		if rec == nil {
			e.st.Baselines = append(e.st.Baselines, deployv1alpha1.BaselineStatus{Metric: name})
			rec = &e.st.Baselines[len(e.st.Baselines)-1]
		}
		if rec.Result == BaselineValue {
			continue
		}
		t := e.stamp()
		rec.At, rec.Query, rec.LastEvaluated = *t0, truncate(m.Query, 1024), &t
		rec.Value, rec.Message = m.Display, ""
		switch m.Kind {
		case ResultValue:
			rec.Result = BaselineValue
			if m.Value <= 0 {
				rec.Message = "a baseline of 0 or less bounds nothing: ratios of it are left out, and below and above judge alone"
			}
		case ResultNoData:
			rec.Result, rec.Message = BaselineNoData, "no data at T-0: the metric's onNoData decides"
		default:
			rec.Result, rec.Value, rec.Message = BaselineError, "", truncate(m.Message, 512)
		}
	}
	slices.SortFunc(e.st.Baselines, func(a, b deployv1alpha1.BaselineStatus) int { return strings.Compare(a.Metric, b.Metric) })
}

// followRelease records the pod-template-hash of the ReplicaSet running the released
// template ({{podTemplateHash}}); a restart makes a new one, which it follows.
func (e *engine) followRelease() {
	for _, i := range e.releasedTargets() {
		e.cur = i
		if ts := e.ts(); ts != nil {
			if h := e.tobs().PodTemplateHashes[ts.ReleasedTemplateHash]; h != "" {
				ts.ReleasedPodTemplateHash = h
			}
		}
	}
}

// judgeFrom is when a check or trigger with a grace period `after` starts judging:
// that long after the release became available. ok is false while it is not
// available yet.
func (e *engine) judgeFrom(after time.Duration) (time.Time, bool) {
	at := e.availableAt()
	if at == nil {
		return time.Time{}, false
	}
	return at.Add(after), true
}

// inGrace says whether a check or trigger with grace period after judges nothing yet,
// and says until when.
func (e *engine) inGrace(after time.Duration) (bool, string) {
	if !e.inGracePeriod(after) {
		return false, ""
	}
	from, ok := e.judgeFrom(after)
	if !ok {
		return true, fmt.Sprintf("grace: judged from %s after the release is available", after)
	}
	e.wakeAt(from)
	return true, fmt.Sprintf("grace: judged from %s (%s after the release became available)",
		from.UTC().Format(time.RFC3339), after)
}
