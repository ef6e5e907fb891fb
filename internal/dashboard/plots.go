package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// Sample is one point of a range query.
type Sample struct {
	T time.Time
	V float64
}

// Ranger runs a range query for a checklist against the Prometheus it names, as the
// user: the credentials read with the user's rights, the address through the manager's
// guard. An error says why there is no plot ("cannot read the credentials: …").
type Ranger interface {
	Range(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist, query string, start, end time.Time, step time.Duration) ([]Sample, error)
}

// maxPoints bounds the points of a plot: the step grows with the window.
const maxPoints = 250

// Plot is one metric check or trigger over the release window.
type Plot struct {
	Name, Query, Threshold, For string
	// Rule says the threshold in words: "passes while < 0.01", "fires at > 0.05 for 2m".
	Rule       string
	Start, End time.Time
	T0         *time.Time
	Samples    []Sample
	// Marks are the evaluations tminus kept in status, placed on the series.
	Marks []deployv1alpha1.Measurement
	// FiredAt is when this trigger rolled the release back.
	FiredAt *time.Time
	Err     string
}

// Window is the span a release's plots cover: from its first phase's opening (or its
// creation) to now, or to a little after it ended.
func Window(dcl *deployv1alpha1.DeploymentChecklist, now time.Time) (time.Time, time.Time) {
	start, end := dcl.CreationTimestamp.Time, now
	ended := time.Time{}
	for _, p := range dcl.Status.Phases {
		if p.OpenedAt != nil && p.OpenedAt.Time.Before(start) {
			start = p.OpenedAt.Time
		}
		if p.CompletedAt != nil && p.CompletedAt.After(ended) {
			ended = p.CompletedAt.Time
		}
	}
	if rb := dcl.Status.Rollback; rb != nil && rb.FiredAt.After(ended) {
		ended = rb.FiredAt.Time
	}
	if checklist.Ended(dcl.Status.Phase) && !ended.IsZero() {
		if e := ended.Add(checklist.Interval(dcl) * 5); e.Before(now) {
			end = e
		}
	}
	if !end.After(start) {
		start = end.Add(-time.Hour)
	}
	return start, end
}

// Plots gathers the plots of dcl's metric checks and triggers: one range query per
// distinct query, whatever the number of checks sharing it.
func Plots(ctx context.Context, r Ranger, dcl *deployv1alpha1.DeploymentChecklist, now time.Time) []Plot {
	eff := effective(dcl)
	queries := map[string]string{}
	for _, m := range eff.Spec.Metrics {
		queries[m.Name] = m.Query
	}
	start, end := Window(dcl, now)
	step := max(checklist.Interval(dcl), end.Sub(start)/maxPoints, time.Second)
	var t0 *time.Time
	if t := checklist.T0(dcl); t != nil {
		t0 = &t.Time
	}
	type answer struct {
		s   []Sample
		err error
	}
	sent := map[string]answer{}
	run := func(p *Plot) {
		if checklist.Unresolved(p.Query) {
			p.Err = "the query names the released pods' template hash, known once the release is out"
			return
		}
		a, ok := sent[p.Query]
		if !ok {
			s, err := r.Range(ctx, dcl, p.Query, start, end, step)
			a = answer{s, err}
			sent[p.Query] = a
		}
		p.Samples = a.s
		if a.err != nil {
			p.Err = a.err.Error()
		}
	}
	status := map[string]deployv1alpha1.CheckStatus{}
	for _, ps := range dcl.Status.Phases {
		for _, c := range ps.Checks {
			status[ps.Name+"/"+c.Name] = c
		}
	}
	var out []Plot
	for _, ph := range eff.Spec.Phases {
		for _, c := range ph.Checks {
			if c.Metric == "" {
				continue
			}
			st := status[ph.Name+"/"+c.Name]
			p := Plot{Name: "check " + ph.Name + "/" + c.Name, Query: st.Query, Threshold: st.Threshold, Marks: st.History,
				Start: start, End: end, T0: t0}
			if p.Threshold == "" { // not measured yet: the spec's own bounds
				p.Threshold = specBounds(c.Below, c.Above, " and ")
			}
			if p.Threshold != "" {
				p.Rule = "passes while " + p.Threshold
			}
			if p.Query == "" {
				p.Query = checklist.ResolveQuery(dcl, queries[c.Metric])
			}
			run(&p)
			out = append(out, p)
		}
	}
	trig := map[string]deployv1alpha1.TriggerStatus{}
	for _, t := range dcl.Status.Triggers {
		trig[t.Name] = t
	}
	for _, t := range eff.Spec.RollbackTriggers {
		if t.Metric == "" {
			continue
		}
		p := Plot{Name: "trigger " + t.Name, Query: checklist.ResolveQuery(dcl, queries[t.Metric]),
			Threshold: trig[t.Name].Threshold, For: t.For, Start: start, End: end, T0: t0}
		if p.Threshold == "" {
			p.Threshold = specBounds(t.Below, t.Above, " or ")
		}
		if p.Threshold != "" {
			p.Rule = "fires at " + p.Threshold
			if p.For != "" {
				p.Rule += " held for " + p.For
			}
		}
		if rb := dcl.Status.Rollback; rb != nil && rb.Reason == checklist.ReasonTriggerFired &&
			strings.HasPrefix(rb.Message, "rollback trigger "+t.Name+" fired") {
			at := rb.FiredAt.Time
			p.FiredAt = &at
		}
		run(&p)
		out = append(out, p)
	}
	return out
}

// SVG draws the plot: the series, each threshold as a dashed line, T-0, the `for`
// window before a rollback this trigger fired and the rollback's time (a line labelled
// in words), and tminus's own evaluations marked. The series' values and the
// thresholds are in data-* attributes as well; the page lists the values in a table.
func (p Plot) SVG() template.HTML {
	if len(p.Samples) == 0 {
		return ""
	}
	thrs := thresholdsOf(p.Threshold)
	lo, hi := p.Samples[0].V, p.Samples[0].V
	for _, s := range p.Samples {
		lo, hi = min(lo, s.V), max(hi, s.V)
	}
	for _, t := range thrs {
		lo, hi = min(lo, t), max(hi, t)
	}
	marks := map[int]float64{}
	for i, m := range p.Marks {
		if v, err := strconv.ParseFloat(m.Value, 64); err == nil && v == v && !m.Time.Before(&metav1.Time{Time: p.Start}) &&
			!m.Time.After(p.End) {
			marks[i] = v
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	const w, h, pad = 640.0, 160.0, 10.0
	span := float64(p.End.Sub(p.Start))
	px := func(t time.Time) float64 { return pad + (w-2*pad)*float64(t.Sub(p.Start))/span }
	py := func(v float64) float64 { return h - pad - (h-2*pad)*(v-lo)/(hi-lo) }
	e := template.HTMLEscapeString
	var b strings.Builder
	fired := ""
	if p.FiredAt != nil {
		fired = ", rolled back at " + p.FiredAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(&b, `<svg class="plot" role="img" viewBox="0 0 %.0f %.0f"><title>%s from %s to %s: %d points, threshold %s, min %g, max %g%s</title>`,
		w, h, e(p.Name), p.Start.UTC().Format(time.RFC3339), p.End.UTC().Format(time.RFC3339), len(p.Samples), e(p.Threshold), lo, hi, fired)
	if p.FiredAt != nil {
		if d, err := time.ParseDuration(p.For); err == nil {
			x0, x1 := px(p.FiredAt.Add(-d)), px(*p.FiredAt)
			fmt.Fprintf(&b, `<rect class="for" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>breach held for %s, then rolled back at %s</title></rect>`,
				x0, pad, max(x1-x0, 1), h-2*pad, e(p.For), p.FiredAt.UTC().Format(time.RFC3339))
		}
	}
	for _, t := range thrs {
		fmt.Fprintf(&b, `<line class="threshold" data-value="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"><title>threshold %s</title></line>`,
			num(t), pad, py(t), w-pad, py(t), e(p.Threshold))
	}
	if p.T0 != nil && !p.T0.Before(p.Start) && !p.T0.After(p.End) {
		x := px(*p.T0)
		fmt.Fprintf(&b, `<line class="t0" x1="%.1f" y1="0" x2="%.1f" y2="%.0f"/><text x="%.1f" y="12">T-0</text>`, x, x, h, x+3)
	}
	firedIn := p.FiredAt != nil && !p.FiredAt.Before(p.Start) && !p.FiredAt.After(p.End)
	if firedIn {
		at := p.FiredAt.UTC().Format(time.RFC3339)
		fmt.Fprintf(&b, `<line class="fired" data-time="%s" x1="%.1f" y1="0" x2="%.1f" y2="%.0f"><title>rolled back at %s</title></line>`,
			at, px(*p.FiredAt), px(*p.FiredAt), h, at)
	}
	// The series, drawn from points and carried as data: data-points holds each sample
	// as unix-seconds,value, for scripts and tests reading the chart.
	var line, data strings.Builder
	for i, s := range p.Samples {
		if i > 0 {
			line.WriteByte(' ')
			data.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", px(s.T), py(s.V))
		fmt.Fprintf(&data, "%d,%s", s.T.Unix(), num(s.V))
	}
	fmt.Fprintf(&b, `<polyline class="series" points="%s" data-points="%s"/>`, line.String(), data.String())
	for i, m := range p.Marks {
		v, ok := marks[i]
		if !ok {
			continue
		}
		x, y := px(m.Time.Time), py(v)
		label := e(fmt.Sprintf("tminus evaluated %s at %s: %s", m.Value, m.Time.UTC().Format(time.RFC3339), Mark(string(m.Outcome))))
		if m.Outcome == deployv1alpha1.OutcomeFail {
			fmt.Fprintf(&b, `<path class="fail" d="M%.1f %.1fl6 6m0 -6l-6 6"><title>%s</title></path>`, x-3, y-3, label)
		} else {
			fmt.Fprintf(&b, `<circle class="pass" cx="%.1f" cy="%.1f" r="3"><title>%s</title></circle>`, x, y, label)
		}
	}
	if firedIn {
		// The rollback's time in words as well as a line, drawn over the series (the
		// style gives it a halo): on the side of the line with room for it.
		lx, anchor := px(*p.FiredAt)+3, "start"
		if lx > w*0.7 {
			lx, anchor = lx-6, "end"
		}
		fmt.Fprintf(&b, `<text class="fired-label" x="%.1f" y="24" text-anchor="%s">⟲ rolled back %s</text>`,
			lx, anchor, p.FiredAt.UTC().Format("15:04:05Z"))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
		pad, h-2, p.Start.UTC().Format("15:04Z"), w-pad, h-2, p.End.UTC().Format("15:04Z"))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every value written above is escaped
}

// num writes a value as the chart's data carries it: the shortest decimal that reads
// back as the same float.
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// specBounds writes a spec's plain bounds as status writes them: "< 0.01", "> 0.05".
// A check passes below "below" and above "above"; a trigger fires past them.
func specBounds(below, above *string, join string) string {
	var parts []string
	if above != nil {
		parts = append(parts, "> "+*above)
	}
	if below != nil {
		parts = append(parts, "< "+*below)
	}
	return strings.Join(parts, join)
}
