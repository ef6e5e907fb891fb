package dashboard

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// HistorySVG plots a metric check's evaluations kept in status (value over time) with
// its threshold as a dashed line: each point a shape by outcome (● Pass, ✗ Fail) with
// its time, value and outcome in its title. "" for a check with fewer than one numeric
// value.
func HistorySVG(c deployv1alpha1.CheckStatus) template.HTML {
	type point struct {
		x       int64
		v       float64
		outcome string
		label   string
	}
	var pts []point
	for _, m := range c.History {
		v, err := strconv.ParseFloat(m.Value, 64)
		if err != nil || v != v {
			continue
		}
		pts = append(pts, point{m.Time.Unix(), v, string(m.Outcome),
			fmt.Sprintf("%s: %s %s", m.Time.UTC().Format("15:04:05Z"), m.Value, Mark(string(m.Outcome)))})
	}
	if len(pts) == 0 {
		return ""
	}
	thrs := thresholdsOf(c.Threshold)
	lo, hi := pts[0].v, pts[0].v
	x0, x1 := pts[0].x, pts[0].x
	for _, p := range pts {
		lo, hi = min(lo, p.v), max(hi, p.v)
		x0, x1 = min(x0, p.x), max(x1, p.x)
	}
	for _, t := range thrs {
		lo, hi = min(lo, t), max(hi, t)
	}
	if hi == lo {
		hi = lo + 1
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	const w, h, pad = 320.0, 90.0, 8.0
	px := func(x int64) float64 { return pad + (w-2*pad)*float64(x-x0)/float64(x1-x0) }
	py := func(v float64) float64 { return h - pad - (h-2*pad)*(v-lo)/(hi-lo) }
	e := template.HTMLEscapeString
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="history" role="img" viewBox="0 0 %.0f %.0f"><title>%s: %d evaluations, threshold %s</title>`,
		w, h, e(c.Name), len(pts), e(c.Threshold))
	for _, t := range thrs {
		fmt.Fprintf(&b, `<line class="threshold" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"><title>threshold %s</title></line>`,
			pad, py(t), w-pad, py(t), e(c.Threshold))
	}
	var line strings.Builder
	for i, p := range pts {
		if i > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", px(p.x), py(p.v))
	}
	fmt.Fprintf(&b, `<polyline class="series" points="%s"/>`, line.String())
	for _, p := range pts {
		x, y := px(p.x), py(p.v)
		if p.outcome == string(deployv1alpha1.OutcomeFail) {
			fmt.Fprintf(&b, `<path class="fail" d="M%.1f %.1fl6 6m0 -6l-6 6"><title>%s</title></path>`, x-3, y-3, e(p.label))
		} else {
			fmt.Fprintf(&b, `<circle class="pass" cx="%.1f" cy="%.1f" r="3"><title>%s</title></circle>`, x, y, e(p.label))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every value written above is escaped
}

// thresholdsOf reads the bounds of a status threshold: "< 0.01" is 0.01; in
// "< 0.01 and < 1.5 × baseline 0.004 (0.006)" they are 0.01 and 0.006 (the ratio is no
// bound, the resolved value in brackets is).
func thresholdsOf(s string) []float64 {
	f := strings.Fields(s)
	var out []float64
	for i, tok := range f {
		if inner, ok := strings.CutPrefix(tok, "("); ok {
			if v, err := strconv.ParseFloat(strings.TrimSuffix(inner, ")"), 64); err == nil {
				out = append(out, v)
			}
			continue
		}
		if (tok != "<" && tok != ">") || i+1 >= len(f) || (i+2 < len(f) && f[i+2] == "×") {
			continue
		}
		if v, err := strconv.ParseFloat(f[i+1], 64); err == nil && v == v {
			out = append(out, v)
		}
	}
	return out
}
