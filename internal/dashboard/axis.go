package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// defaultLastTimeout is how long the last T-plus phase may take without a timeout of
// its own (DESIGN: "the last one: within its timeout, default 10m").
const defaultLastTimeout = 10 * time.Minute

// Axis is the T-axis of a release: each phase a band from when it opens to when the
// next one may open (the last T-plus phase: to its deadline), in offsets from T-0.
type Axis struct {
	Min, Max time.Duration
	Bands    []Band
	// T0 is when T-0 happened or is due ("" while neither is known).
	T0 string
	// Now is now's offset from T-0, when T-0 is known.
	Now *time.Duration
	// RolledBack is the rollback's offset from T-0, when the release was rolled back
	// after T-0.
	RolledBack *time.Duration
}

// Band is one phase on the axis.
type Band struct {
	Name     string
	From, To time.Duration
	State    string
	Checks   []string
}

// AxisOf lays dcl's phases on the T-axis at now.
func AxisOf(dcl *deployv1alpha1.DeploymentChecklist, now time.Time) Axis {
	var a Axis
	state := map[string]deployv1alpha1.PhaseStatus{}
	for _, p := range dcl.Status.Phases {
		state[p.Name] = p
	}
	phases := dcl.Spec.Phases
	for i, p := range phases {
		at, err := time.ParseDuration(p.At)
		if err != nil {
			continue
		}
		to := time.Duration(0)
		switch {
		case i+1 < len(phases):
			if next, err := time.ParseDuration(phases[i+1].At); err == nil {
				to = next
			}
			if at < 0 && to > 0 {
				to = 0 // the last T-minus phase ends at T-0
			}
		case at >= 0:
			to = at + defaultLastTimeout
			if d, err := time.ParseDuration(p.Timeout); err == nil && p.Timeout != "" {
				to = at + d
			}
		}
		if to <= at {
			to = at + time.Minute
		}
		b := Band{Name: p.Name, From: at, To: to, State: string(deployv1alpha1.PhaseStatePending)}
		if s, ok := state[p.Name]; ok {
			b.State = string(s.State)
			for _, c := range s.Checks {
				b.Checks = append(b.Checks, c.Name+" "+Mark(string(c.Outcome)))
			}
		}
		a.Bands = append(a.Bands, b)
		a.Min, a.Max = min(a.Min, at), max(a.Max, to)
	}
	var t0 *time.Time
	if t := checklist.T0(dcl); t != nil {
		t0 = &t.Time
	} else if dcl.Spec.DeployAt != nil {
		t0 = &dcl.Spec.DeployAt.Time
	}
	if t0 != nil {
		a.T0 = t0.UTC().Format(time.RFC3339)
		n := now.Sub(*t0).Truncate(time.Second)
		a.Now = &n
		if rb := dcl.Status.Rollback; rb != nil && !rb.FiredAt.Time.Before(*t0) {
			d := rb.FiredAt.Sub(*t0).Truncate(time.Second)
			a.RolledBack = &d
			a.Max = max(a.Max, d) // a rollback past the last phase's deadline is still drawn
		}
	}
	if a.Max <= a.Min {
		a.Max = a.Min + time.Minute
	}
	return a
}

// stateMark is a phase state as a shape and a word.
func stateMark(s string) string {
	switch deployv1alpha1.PhaseState(s) {
	case deployv1alpha1.PhaseStatePassed:
		return "✓ Passed"
	case deployv1alpha1.PhaseStateFailed:
		return "✗ Failed"
	case deployv1alpha1.PhaseStateOpen:
		return "▶ Open"
	case deployv1alpha1.PhaseStateSkipped:
		return "↷ Skipped"
	}
	return "… " + s
}

// offset writes d as the checklist writes it: T-15m, T+5m, T-0.
func offset(d time.Duration) string {
	if d == 0 {
		return "T-0"
	}
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	s := d.String() // 1h30m0s, 15m0s, 45s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return "T" + sign + s
}

// SVG draws the axis: drawn on the server, so the page needs no script to show it, and
// every mark carries its words (a <title> and a text label), not only its colour.
func (a Axis) SVG() template.HTML {
	const width, left, right, top, bandH = 960.0, 20.0, 20.0, 30.0, 34.0
	span := float64(a.Max - a.Min)
	x := func(d time.Duration) float64 { return left + (width-left-right)*float64(d-a.Min)/span }
	h := top + float64(len(a.Bands))*(bandH+6) + 30
	if a.RolledBack != nil {
		h += 16 // a row of its own for the rollback's label
	}
	var b strings.Builder
	e := template.HTMLEscapeString
	fmt.Fprintf(&b, `<svg class="axis" role="img" viewBox="0 0 %.0f %.0f" aria-labelledby="axis-title">`, width, h)
	fmt.Fprintf(&b, `<title id="axis-title">T-axis: %d phases from %s to %s</title>`, len(a.Bands), offset(a.Min), offset(a.Max))
	fmt.Fprintf(&b, `<line class="t-axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, top-8, width-right, top-8)
	for i, band := range a.Bands {
		y := top + float64(i)*(bandH+6)
		x0, x1 := x(band.From), x(band.To)
		label := fmt.Sprintf("%s %s (%s to %s)", band.Name, stateMark(band.State), offset(band.From), offset(band.To))
		fmt.Fprintf(&b, `<g class="band state-%s"><title>%s%s</title>`, e(strings.ToLower(band.State)), e(label), e(checksText(band.Checks)))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="3"/>`, x0, y, max(x1-x0, 2), bandH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text></g>`, x0+4, y+bandH/2+5, e(band.Name+" "+stateMark(band.State)))
	}
	zero := x(0)
	fmt.Fprintf(&b, `<line class="t0" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, zero, top-16, zero, h-20)
	t0 := "T-0"
	if a.T0 != "" {
		t0 += " " + a.T0
	}
	fmt.Fprintf(&b, `<text class="t0-label" x="%.1f" y="%.1f">%s</text>`, zero+3, top-14, e(t0))
	if a.Now != nil && *a.Now >= a.Min && *a.Now <= a.Max {
		n := x(*a.Now)
		fmt.Fprintf(&b, `<line class="now" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, n, top-10, n, h-20)
		fmt.Fprintf(&b, `<text class="now-label" x="%.1f" y="%.1f">▼ now (%s)</text>`, n+3, h-6, e(offset(*a.Now)))
	}
	if a.RolledBack != nil {
		r := x(*a.RolledBack)
		fmt.Fprintf(&b, `<line class="rolled-back" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"><title>rolled back at %s</title></line>`,
			r, top-10, r, h-36, e(offset(*a.RolledBack)))
		lx, anchor := r+3, "start"
		if r > width*0.7 {
			lx, anchor = r-3, "end"
		}
		fmt.Fprintf(&b, `<text class="rolled-back-label" x="%.1f" y="%.1f" text-anchor="%s">⟲ rolled back (%s)</text>`,
			lx, h-24, anchor, e(offset(*a.RolledBack)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`, left, h-6, e(offset(a.Min)))
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every value written above is escaped
}

func checksText(checks []string) string {
	if len(checks) == 0 {
		return ""
	}
	return ": " + strings.Join(checks, ", ")
}
