package record

import (
	"fmt"
	"strings"
	"time"
)

// Markdown renders a record as a change ticket would take it: what was released, the
// result and why, who signed off, and what every gate measured.
func Markdown(r Record) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Release record: %s/%s (%s)\n\n", r.Checklist.Namespace, r.Checklist.Name, r.Checklist.Revision)
	w("- **Result:** %s", r.Result)
	if r.Reason != "" && r.Reason != r.Result {
		w(" (%s)", r.Reason)
	}
	w("\n")
	if r.Message != "" {
		w("- **Why:** %s\n", cell(r.Message))
	}
	targetLines(w, r)
	if t := r.Checklist.Template; t != nil {
		w("- **Checklist template:** %s %s (generation %d)\n", t.Kind, t.Name, t.Generation)
	}
	w("\n## Timings (UTC)\n\n| event | at |\n|---|---|\n")
	w("| checklist created | %s |\n", stamp(&r.Timings.Created))
	for _, e := range []struct {
		name string
		at   *time.Time
	}{{"T-0", r.Timings.T0}, {"released", r.Timings.Released}, {"available", r.Timings.Available},
		{"restored (rollback)", r.Timings.Restored}, {"ended", r.Timings.Ended}} {
		if e.at != nil {
			w("| %s | %s |\n", e.name, stamp(e.at))
		}
	}
	if bg := r.BreakGlass; bg != nil {
		w("\n## Change freeze broken\n\n- **Freezes:** %s\n- **By:** %s\n- **Why:** %s\n- **At:** %s\n",
			cell(strings.Join(bg.Freezes, ", ")), cell(strings.Join(bg.Approvers, ", ")), cell(bg.Reason), stamp(&bg.At))
	}
	if rb := r.Rollback; rb != nil {
		w("\n## Rollback\n\n- **Cause:** %s", rb.Reason)
		if rb.Value != "" {
			w(" (value %s)", rb.Value)
		}
		w("\n- **Fired:** %s\n", stamp(&rb.FiredAt))
		if rb.CompletedAt != nil {
			w("- **Restored:** %s\n", stamp(rb.CompletedAt))
		}
		if rb.DryRun {
			w("- **Dry run:** nothing was touched\n")
		}
		if rb.Message != "" {
			w("- **Message:** %s\n", cell(rb.Message))
		}
	}
	if rq := r.Request; rq != nil {
		w("\n## Request\n\n- **%s requested by:** %s\n- **Why:** %s\n", rq.Kind, cell(rq.By), cell(rq.Reason))
		if rq.WrittenBy != "" && rq.WrittenBy != rq.By {
			w("- **Committed by:** %s\n", cell(rq.WrittenBy))
		}
		w("- **At:** %s\n- **Outcome:** %s\n", stamp(&rq.At), rq.State)
		if rq.Message != "" {
			w("- **Message:** %s\n", cell(rq.Message))
		}
	}
	contacts(&b, r)
	if len(r.SignOffs) > 0 {
		w("\n## Sign-offs\n\n| role | by | at | verified | counted |\n|---|---|---|---|---|\n")
		for _, s := range r.SignOffs {
			counted := "yes"
			if !s.Counted {
				counted = "no: " + cell(s.NotCounted)
			}
			w("| %s | %s | %s | %s | %s |\n", cell(s.Role), cell(s.Approver), stamp(&s.At), yesNo(s.Verified), counted)
		}
	}
	w("\n## Gates\n")
	for _, p := range r.Phases {
		w("\n### %s: %s\n\n", p.Name, p.State)
		if len(p.Checks) == 0 {
			continue
		}
		w("| check | kind | outcome | value | threshold | query or detail |\n|---|---|---|---|---|---|\n")
		for _, c := range p.Checks {
			detail := c.Query
			if detail == "" {
				detail = c.Message
			}
			w("| %s | %s | %s | %s | %s | %s |\n", cell(c.Name), c.Kind, c.Outcome, cell(c.Value), cell(c.Threshold),
				code(detail))
		}
	}
	if len(r.Triggers) > 0 {
		w("\n## Rollback triggers\n\n| trigger | outcome | value | threshold |\n|---|---|---|---|\n")
		for _, t := range r.Triggers {
			w("| %s | %s | %s | %s |\n", cell(t.Name), t.Outcome, cell(t.Value), cell(t.Threshold))
		}
	}
	if len(r.Baselines) > 0 {
		w("\n## Baselines (T-0, the version before)\n\n| metric | result | value | query |\n|---|---|---|---|\n")
		for _, bl := range r.Baselines {
			w("| %s | %s | %s | %s |\n", cell(bl.Metric), bl.Result, cell(bl.Value), code(bl.Query))
		}
	}
	return b.String()
}

// contacts writes the record's contacts table and runbook links, if any.
func contacts(b *strings.Builder, r Record) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if len(r.Contacts) > 0 {
		w("\n## Contacts\n\n| role | name | reach |\n|---|---|---|\n")
		for _, c := range r.Contacts {
			w("| %s | %s | %s |\n", cell(c.Role), cell(c.Name), cell(c.Reach))
		}
	}
	if len(r.Runbooks) > 0 {
		w("\n## Runbooks\n\n")
		for _, rb := range r.Runbooks {
			w("- [%s](%s)\n", strings.NewReplacer("[", `\[`, "]", `\]`, "\n", " ").Replace(rb.Title),
				strings.NewReplacer("(", "%28", ")", "%29").Replace(rb.URL))
		}
	}
}

func stamp(t *time.Time) string { return t.UTC().Format(time.RFC3339) }

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// cell keeps text inside one table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// code is s as inline code in a cell (empty stays empty).
func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(cell(s), "`", "'") + "`"
}

// targetLines writes what each target ran, was released and restored; a release of
// several lists each target's lines under it.
func targetLines(w func(string, ...any), r Record) {
	targets := r.Targets
	if len(targets) == 0 {
		targets = []Target{r.Target}
	}
	indent := ""
	if len(r.Targets) > 0 {
		indent = "  " // a release of several: each target's lines under it
	}
	for _, t := range targets {
		w("- **Target:** %s %s\n", t.Kind, t.Name)
		if len(t.PreDeployImages) > 0 {
			w("%s- **Before:** %s\n", indent, strings.Join(t.PreDeployImages, ", "))
		}
		if len(t.ReleasedImages) > 0 {
			w("%s- **Released:** %s\n", indent, strings.Join(t.ReleasedImages, ", "))
		} else if len(r.Targets) > 0 {
			w("%s- **Released:** nothing (its template did not change)\n", indent)
		}
		if t.Step > 0 {
			w("%s- **Steps:** reached step %d of %d\n", indent, min(t.Step, t.Steps), t.Steps)
		}
		if t.Restored != nil {
			w("%s- **Restored:** %s\n", indent, stamp(t.Restored))
		}
	}
}
