package checklist

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Defaults applied when the spec leaves a value out (the CRD defaults most of them;
// these cover objects written before a default existed).
const (
	DefaultInterval          = 30 * time.Second
	DefaultWindow            = 30 * time.Minute
	DefaultLastPhaseTimeout  = 10 * time.Minute
	DefaultErrorLimit        = 4
	DefaultHTTPTimeout       = 5 * time.Second
	DefaultPrometheusTimeout = 10 * time.Second
)

// phasePlan is one checklist phase with its offset parsed.
type phasePlan struct {
	spec    *deployv1alpha1.PhaseSpec
	at      time.Duration
	timeout time.Duration // 0: none
}

// plan is the spec parsed once: durations and thresholds as numbers, phases split at T-0
// and ordered by `at`.
type plan struct {
	interval   time.Duration
	window     time.Duration
	errorLimit int32
	deployAt   *time.Time
	tminus     []phasePlan // at <= 0
	tplus      []phasePlan // at > 0
	metrics    map[string]*deployv1alpha1.MetricSpec
	triggerFor map[string]time.Duration
	// checkAfter (by CheckKey) and triggerAfter (by name) are grace periods.
	checkAfter   map[string]time.Duration
	triggerAfter map[string]time.Duration
	// baselined are the metrics some check or trigger compares with their baseline.
	baselined map[string]bool
	// steps are spec.release.steps, each with its phase (steps.go); after are the
	// T-plus phases no step names, walked once every pod runs the release.
	steps []stepPlan
	after []phasePlan
}

func parsePlan(spec *deployv1alpha1.DeploymentChecklistSpec) (*plan, error) {
	p := &plan{
		interval:     DefaultInterval,
		window:       DefaultWindow,
		errorLimit:   DefaultErrorLimit,
		metrics:      map[string]*deployv1alpha1.MetricSpec{},
		triggerFor:   map[string]time.Duration{},
		checkAfter:   map[string]time.Duration{},
		triggerAfter: map[string]time.Duration{},
		baselined:    map[string]bool{},
	}
	var err error
	if spec.Interval != "" {
		if p.interval, err = positiveDuration("spec.interval", spec.Interval); err != nil {
			return nil, err
		}
	}
	if spec.Window != "" {
		if p.window, err = positiveDuration("spec.window", spec.Window); err != nil {
			return nil, err
		}
	}
	if spec.ConsecutiveErrorLimit > 0 {
		p.errorLimit = spec.ConsecutiveErrorLimit
	}
	if spec.DeployAt != nil {
		t := spec.DeployAt.Time
		p.deployAt = &t
	}
	for i := range spec.Metrics {
		p.metrics[spec.Metrics[i].Name] = &spec.Metrics[i]
	}
	for i := range spec.Phases {
		ph := &spec.Phases[i]
		at, err := time.ParseDuration(ph.At)
		if err != nil {
			return nil, fmt.Errorf("spec.phases[%d].at: %w", i, err)
		}
		pp := phasePlan{spec: ph, at: at}
		if ph.Timeout != "" {
			if pp.timeout, err = positiveDuration(fmt.Sprintf("spec.phases[%d].timeout", i), ph.Timeout); err != nil {
				return nil, err
			}
		}
		for j := range ph.Checks {
			if err := p.addCheck(fmt.Sprintf("spec.phases[%d].checks[%d]", i, j), ph, &ph.Checks[j], at); err != nil {
				return nil, err
			}
		}
		if at <= 0 {
			p.tminus = append(p.tminus, pp)
		} else {
			p.tplus = append(p.tplus, pp)
		}
	}
	byAt := func(a, b phasePlan) int { return int(a.at - b.at) }
	slices.SortStableFunc(p.tminus, byAt)
	slices.SortStableFunc(p.tplus, byAt)
	for i := range spec.RollbackTriggers {
		t := &spec.RollbackTriggers[i]
		if err := checkLimitsOf(fmt.Sprintf("spec.rollbackTriggers[%d]", i), triggerLimits(t)); err != nil {
			return nil, err
		}
		if triggerLimits(t).relative() {
			p.baselined[MetricKey(t.Metric, t.Target)] = true
		}
		if t.After != "" {
			d, err := positiveDuration(fmt.Sprintf("spec.rollbackTriggers[%d].after", i), t.After)
			if err != nil {
				return nil, err
			}
			p.triggerAfter[t.Name] = d
		}
		if t.Metric != "" && p.metrics[t.Metric] == nil {
			return nil, fmt.Errorf("spec.rollbackTriggers[%d].metric: %q is not in spec.metrics", i, t.Metric)
		}
		if t.For != "" {
			d, err := positiveDuration(fmt.Sprintf("spec.rollbackTriggers[%d].for", i), t.For)
			if err != nil {
				return nil, err
			}
			p.triggerFor[t.Name] = d
		}
	}
	if err := p.parseSteps(spec); err != nil {
		return nil, err
	}
	return p, nil
}

// addCheck checks one check of phase ph (at its offset at) and records its grace
// period and whether it compares with a baseline.
func (p *plan) addCheck(field string, ph *deployv1alpha1.PhaseSpec, c *deployv1alpha1.CheckSpec, at time.Duration) error {
	if err := checkLimitsOf(field, checkLimits(c)); err != nil {
		return err
	}
	if c.Metric != "" && p.metrics[c.Metric] == nil {
		return fmt.Errorf("%s.metric: %q is not in spec.metrics", field, c.Metric)
	}
	if at <= 0 {
		if err := beforeT0(field, c, p.metrics[c.Metric]); err != nil {
			return err
		}
	}
	if c.After != "" {
		if c.Metric == "" && c.HTTP == nil {
			return fmt.Errorf("%s.after: only metric and http checks wait", field)
		}
		d, err := positiveDuration(field+".after", c.After)
		if err != nil {
			return err
		}
		p.checkAfter[CheckKey(ph.Name, c.Name)] = d
	}
	if checkLimits(c).relative() {
		p.baselined[MetricKey(c.Metric, c.Target)] = true
	}
	return nil
}

func positiveDuration(field, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: %q is not positive", field, s)
	}
	return d, nil
}

// checkLimitsOf checks that thresholds are decimal numbers and ratios of the baseline
// positive ones.
func checkLimitsOf(field string, l limits) error {
	for _, f := range []struct {
		name  string
		v     *string
		ratio bool
	}{{"below", l.below, false}, {"above", l.above, false}, {"belowBaseline", l.belowBaseline, true},
		{"aboveBaseline", l.aboveBaseline, true}} {
		if f.v == nil {
			continue
		}
		v, err := ParseThreshold(*f.v)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", field, f.name, err)
		}
		if f.ratio && v <= 0 {
			return fmt.Errorf("%s.%s: %q is not a ratio greater than 0", field, f.name, *f.v)
		}
	}
	return nil
}

// beforeT0 refuses in a T-minus phase what needs a release: a baseline, a grace
// period after the release, a query naming the released pods.
func beforeT0(field string, c *deployv1alpha1.CheckSpec, m *deployv1alpha1.MetricSpec) error {
	switch {
	case c.BelowBaseline != nil || c.AboveBaseline != nil:
		return fmt.Errorf("%s: belowBaseline and aboveBaseline are for T-plus phases: before T-0 there is no baseline yet", field)
	case c.After != "":
		return fmt.Errorf("%s.after: only T-plus phases wait after the release", field)
	case m != nil && UsesHashes(m.Query):
		return fmt.Errorf("%s.metric: the query of %q uses {{%s}} or {{%s}}, known only after T-0: use it in T-plus "+
			"phases and rollback triggers", field, m.Name, VarPodTemplateHash, VarPreDeployPodTemplateHash)
	}
	return nil
}

// ParseThreshold reads a decimal threshold string ("0.01", "5", "1e-3").
func ParseThreshold(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	if v != v || v > 1e308 || v < -1e308 { // NaN or ±Inf
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}

// threshold returns the parsed bound, which parsePlan already checked.
func threshold(s *string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	v, err := ParseThreshold(*s)
	return v, err == nil
}

// nextDue is when a measurement taken at last is due again: the next multiple of the
// interval after it. Checklists with the same interval thus measure at the same instants,
// and identical queries are shared by the provider.
func (p *plan) nextDue(last time.Time) time.Time {
	return last.Truncate(p.interval).Add(p.interval)
}

// Interval is the checklist's evaluation interval, defaulted.
func Interval(dcl *deployv1alpha1.DeploymentChecklist) time.Duration {
	if d, err := time.ParseDuration(dcl.Spec.Interval); err == nil && d > 0 {
		return d
	}
	return DefaultInterval
}

// Validate reads a spec as the engine will, and says what is wrong with it, naming the
// field: thresholds, durations, metric names. The CRD refuses most of it; a checklist
// made from a template (parameters filled in) is checked here.
func Validate(spec *deployv1alpha1.DeploymentChecklistSpec) error {
	if len(spec.Phases) == 0 {
		return fmt.Errorf("spec.phases: a checklist needs at least one phase")
	}
	if _, err := parsePlan(spec); err != nil {
		return err
	}
	if p := spec.Prometheus; p != nil {
		if !urlPattern.MatchString(p.Address) {
			return fmt.Errorf("spec.prometheus.address: %q is not an http:// or https:// URL with a host", p.Address)
		}
		if p.Timeout != "" {
			if _, err := positiveDuration("spec.prometheus.timeout", p.Timeout); err != nil {
				return err
			}
		}
	}
	for i, rb := range spec.Runbooks {
		if !urlPattern.MatchString(rb.URL) {
			return fmt.Errorf("spec.runbooks[%d].url: %q is not an http:// or https:// URL with a host", i, rb.URL)
		}
	}
	httpCheck := func(field string, h *deployv1alpha1.HTTPCheck) error {
		if !urlPattern.MatchString(h.URL) {
			return fmt.Errorf("%s.url: %q is not an http:// or https:// URL with a host", field, h.URL)
		}
		if h.Timeout != "" {
			if _, err := positiveDuration(field+".timeout", h.Timeout); err != nil {
				return err
			}
		}
		return nil
	}
	// A check or trigger judging one target names one of the release (the CRD says so of
	// a checklist's own; a template's are known once its parameters are filled in).
	for i, ph := range spec.Phases {
		for j := range ph.Checks {
			if t := ph.Checks[j].Target; t != "" && !spec.Names(t) {
				return fmt.Errorf("spec.phases[%d].checks[%d].target: %q is not a target of the release (%s)", i, j, t,
					strings.Join(spec.TargetNames(), ", "))
			}
		}
	}
	for i, t := range spec.RollbackTriggers {
		if t.Target != "" && !spec.Names(t.Target) {
			return fmt.Errorf("spec.rollbackTriggers[%d].target: %q is not a target of the release (%s)", i, t.Target,
				strings.Join(spec.TargetNames(), ", "))
		}
	}
	for i, ph := range spec.Phases {
		for j := range ph.Checks {
			if h := ph.Checks[j].HTTP; h != nil {
				if err := httpCheck(fmt.Sprintf("spec.phases[%d].checks[%d].http", i, j), h); err != nil {
					return err
				}
			}
		}
	}
	for i := range spec.RollbackTriggers {
		if h := spec.RollbackTriggers[i].HTTP; h != nil {
			if err := httpCheck(fmt.Sprintf("spec.rollbackTriggers[%d].http", i), h); err != nil {
				return err
			}
		}
	}
	return nil
}

var urlPattern = regexp.MustCompile(`^https?://[^/?# ]+([/?#][^ ]*)?$`)
