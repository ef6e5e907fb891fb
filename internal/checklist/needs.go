package checklist

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// NeedsFor says what the reconciler must observe before calling Decide at now: the
// metrics and HTTP checks that are due (never measured, or measured an interval ago)
// for the phase open now and, after T-0, for the rollback triggers; and the Jobs of the
// open phase's job checks.
func NeedsFor(dcl *deployv1alpha1.DeploymentChecklist, now time.Time) Needs {
	n := Needs{HTTP: map[string]deployv1alpha1.HTTPCheck{}}
	p, err := parsePlan(&dcl.Spec)
	if err != nil || terminal(dcl.Status.Phase) || dcl.Status.Phase == deployv1alpha1.PhaseBlocked {
		return n
	}
	e := &engine{dcl: dcl, spec: &dcl.Spec, p: p, now: now, st: dcl.Status.DeepCopy()}
	e.readTargets()
	e.syncRecords()
	due := func(last *time.Time) bool { return last == nil || !now.Before(p.nextDue(*last)) }
	addMetric := func(name string) {
		if !slices.Contains(n.Metrics, name) {
			n.Metrics = append(n.Metrics, name)
		}
	}

	phases, tplus := p.tminus, false
	if released(e.st.Phase) {
		phases, tplus = p.after, true
	}
	// Before the release, T-0 reached means every T-minus phase passed: nothing to
	// measure but what waits for the new template. While deploying, only the phase of
	// a step of a release in steps is open, once the step's pods are ready.
	i := e.firstPending(phases)
	if e.st.Phase == deployv1alpha1.PhaseDeploying {
		i = -1
		if k := e.step(); k >= 1 && k <= len(p.steps) && e.stepBaseAt() != nil {
			e.stepBase = e.stepBaseAt()
			phases = []phasePlan{p.steps[k-1].phase}
			i = e.firstPending(phases)
		}
	}
	if i >= 0 && (tplus || !e.atT0()) && !now.Before(e.openAt(phases, i, tplus)) {
		ph := phases[i]
		rec := e.phaseRecord(ph.spec.Name)
		for j := range ph.spec.Checks {
			c := &ph.spec.Checks[j]
			cr := checkRecord(rec, c.Name)
			var last *time.Time
			if cr != nil && cr.LastEvaluated != nil && cr.Outcome != deployv1alpha1.OutcomePending {
				last = &cr.LastEvaluated.Time
			}
			if tplus && e.inGracePeriod(e.p.checkAfter[CheckKey(ph.spec.Name, c.Name)]) {
				continue
			}
			switch {
			case c.Job != nil:
				n.Jobs = append(n.Jobs, CheckKey(ph.spec.Name, c.Name))
			case c.HTTP != nil:
				if due(last) {
					n.HTTP[CheckKey(ph.spec.Name, c.Name)] = *c.HTTP
				}
			case c.Metric != "":
				if due(last) {
					addMetric(MetricKey(c.Metric, c.Target))
				}
			}
		}
	}
	if released(e.st.Phase) {
		e.triggerNeeds(&n, due, addMetric)
	}
	// Every consumer of a metric gets the fresh value, so a metric due for one is
	// queried once for all.
	slices.Sort(n.Metrics)
	n.Baselines = e.baselineNeeds(n.Metrics)
	return n
}

// baselineNeeds are the baselines to ask for with metrics: each is asked with its
// metric until it has a value (the metric at T-0 does not change once measured).
func (e *engine) baselineNeeds(metrics []string) []string {
	if !released(e.st.Phase) || e.t0() == nil {
		return nil
	}
	var out []string
	for _, name := range metrics {
		if b := e.baselineRecord(name); e.p.baselined[name] && (b == nil || b.Result != BaselineValue) {
			out = append(out, name)
		}
	}
	return out
}

// inGracePeriod says whether a check or trigger with grace period after judges nothing yet.
func (e *engine) inGracePeriod(after time.Duration) bool {
	if after <= 0 {
		return false
	}
	from, ok := e.judgeFrom(after)
	return !ok || e.now.Before(from)
}

// LabelValue spells a name (up to 253 characters) as a label value (at most 63): as
// it is when it fits, else shortened with a hash so it stays unique.
func LabelValue(name string) string {
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(name[:54], "-.") + "-" + hex.EncodeToString(sum[:])[:8]
}

// JobName is the deterministic name of a job check's Job: a restart finds the Job it
// created instead of making a second one. Names longer than a label value allows are
// shortened with a hash, so they stay unique.
func JobName(checklist, phase, check string) string {
	name := strings.ToLower(checklist + "-" + PhaseSlug(phase) + "-" + check)
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(checklist + "\x00" + phase + "\x00" + check))
	return strings.TrimRight(name[:54], "-.") + "-" + hex.EncodeToString(sum[:])[:8]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// PhaseSlug spells a phase name with the characters a name or label value allows:
// T-60m is tm60m, T+5m is tp5m.
func PhaseSlug(phase string) string {
	return strings.ToLower(strings.NewReplacer("+", "p", "-", "m", ".", "-").Replace(phase))
}

// EvaluationTime is the time a measurement taken at now evaluates its query at.
// Measurements fall due on the interval's grid, and the reconciles of one round spread
// over a few seconds when many checklists share a tick: a reconcile less than half an
// interval after its tick evaluates at the tick, so every checklist of the round asks
// Prometheus the same question and they share one query. Later than that (a first
// measurement off the grid), it evaluates at now.
func EvaluationTime(now time.Time, interval time.Duration) time.Time {
	if tick := now.Truncate(interval); now.Sub(tick) < EvaluationSlack(interval) {
		return tick
	}
	return now
}

// EvaluationSlack is how long after a tick a measurement still evaluates at the tick:
// how long an answer for that evaluation time may be shared.
func EvaluationSlack(interval time.Duration) time.Duration { return interval / 2 }

// triggerNeeds adds what the rollback triggers due now measure.
func (e *engine) triggerNeeds(n *Needs, due func(*time.Time) bool, addMetric func(string)) {
	for i, t := range e.spec.RollbackTriggers {
		var last *time.Time
		if i < len(e.st.Triggers) && e.st.Triggers[i].LastEvaluated != nil {
			last = &e.st.Triggers[i].LastEvaluated.Time
		}
		if !due(last) || e.inGracePeriod(e.p.triggerAfter[t.Name]) {
			continue
		}
		if t.HTTP != nil {
			n.HTTP[TriggerKey(t.Name)] = *t.HTTP
		} else {
			addMetric(MetricKey(t.Metric, t.Target))
		}
	}
}
