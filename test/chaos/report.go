package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tminus-dev/tminus/internal/gate"
)

// report is what a run prints when it failed (or with -chaos.verbose): the seed, its events as run (with what the API
// server answered), the invariant broken and the history of the namespace's objects.
//
//nolint:gocyclo // one report, section after section
func (r *run) report(v *Violation) string {
	var b strings.Builder
	if v != nil {
		fmt.Fprintf(&b, "seed %d (namespace %s): invariant %s broken at %s:\n  %s\n", r.seed, r.ns, v.Invariant,
			r.since(v.At), v.Message)
	} else {
		fmt.Fprintf(&b, "seed %d (namespace %s): every invariant held\n", r.seed, r.ns)
	}
	fmt.Fprintf(&b, "replay: go test ./test/chaos -run TestSeeds -chaos.gen=%d -chaos.seed=%d -chaos.events=%s\n", r.gen,
		r.seed, joinInts(r.kept))
	b.WriteString("events:\n")
	for _, a := range r.actions {
		fmt.Fprintf(&b, "  %s #%d %s", r.since(a.At), a.Index, a.Event)
		if a.Note != "" {
			fmt.Fprintf(&b, " [%s]", a.Note)
		}
		if a.Err != nil {
			fmt.Fprintf(&b, " -> %s", oneLine(a.Err.Error(), 200))
		}
		b.WriteByte('\n')
	}
	if o := r.w.Outages(); len(o) > 0 {
		b.WriteString("prometheus outages (stopped or answering with a fault):")
		for _, x := range o {
			fmt.Fprintf(&b, " [%s, %s]", r.since(x.Stopped), map[bool]string{true: "-",
				false: r.since(x.Ready)}[x.Ready.IsZero()])
		}
		b.WriteByte('\n')
	}
	r.w.promMu.Lock()
	if o := r.w.webhookOutages; len(o) > 0 {
		b.WriteString("webhook refused:")
		for _, x := range o {
			fmt.Fprintf(&b, " [%s, %s]", r.since(x.Stopped), map[bool]string{true: "-",
				false: r.since(x.Ready)}[x.Ready.IsZero()])
		}
		b.WriteByte('\n')
	}
	r.w.promMu.Unlock()
	if len(r.freezes) > 0 {
		b.WriteString("freezes:")
		for _, f := range r.freezes {
			fmt.Fprintf(&b, " %s [%s, %s]", f.name, r.since(f.start), r.since(f.end))
			if !f.deleted.IsZero() {
				fmt.Fprintf(&b, " deleted %s", r.since(f.deleted))
			}
		}
		b.WriteByte('\n')
	}
	r.w.rec.view(r.ns, func(h *history) {
		b.WriteString("deployment:\n")
		last := ""
		for _, s := range h.deployment {
			d := s.Obj
			line := fmt.Sprintf("gen %d paused=%v template %s %v held-by=%q held-template=%q gated=%q replicas %d/%d/%d",
				d.Generation, d.Spec.Paused, gate.TemplateHash(&d.Spec.Template), gate.Images(&d.Spec.Template),
				d.Annotations["deploy.tminus.dev/held-by"], d.Annotations["deploy.tminus.dev/held-template"],
				d.Labels["deploy.tminus.dev/gated"], d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas)
			if line != last {
				fmt.Fprintf(&b, "  %s %s\n", r.since(s.At), line)
				last = line
			}
		}
		b.WriteString("replicasets:\n")
		type rsLine struct {
			at   time.Time
			text string
		}
		var lines []rsLine
		for name, vs := range h.replicaSets {
			last := ""
			for _, s := range vs {
				line := fmt.Sprintf("%s template %s %v replicas %d/%d available %d deleted=%v", name,
					gate.TemplateHash(&s.Obj.Spec.Template), gate.Images(&s.Obj.Spec.Template), rsReplicas(s.Obj),
					s.Obj.Status.Replicas, s.Obj.Status.AvailableReplicas, s.Deleted)
				if line != last {
					lines = append(lines, rsLine{s.At, line})
					last = line
				}
			}
		}
		slices.SortFunc(lines, func(a, b rsLine) int { return a.at.Compare(b.at) })
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s %s\n", r.since(l.at), l.text)
		}
		for _, name := range h.order {
			fmt.Fprintf(&b, "checklist %s:\n", name)
			last := ""
			for _, s := range h.checklists[name] {
				st := s.Obj.Status
				line := fmt.Sprintf("phase %s/%s next %q", st.Phase, st.CurrentPhase, oneLine(st.NextAction, 120))
				if t := s.Obj.TargetStatusOf(s.Obj.Spec.ShardTarget()); t != nil {
					line += fmt.Sprintf(" pre %s candidate %s %v released %s", t.PreDeployTemplateHash, t.CandidateTemplateHash,
						t.CandidateImages, t.ReleasedTemplateHash)
					if t.HeldTemplateHash != "" {
						line += " held " + t.HeldTemplateHash
					}
					if t.RestoredAt != nil {
						line += " restored"
					}
					if t.T0At != nil {
						line += " t0 " + r.since(t.T0At.Time)
					}
				}
				if st.BreakGlass != nil {
					line += fmt.Sprintf(" break-glass %v by %v", st.BreakGlass.Freezes, st.BreakGlass.Approvers)
				}
				var signed strings.Builder
				for _, a := range st.Approvals {
					fmt.Fprintf(&signed, " signed %s by %s verified=%v for %s", a.Role, a.Approver, a.Verified, a.CandidateImages)
					if a.NotCounted != "" {
						signed.WriteString(" (not counted)")
					}
				}
				line += signed.String()
				if rb := st.Rollback; rb != nil {
					line += fmt.Sprintf(" rollback %s (%s) fired %s", rb.Reason, oneLine(rb.Message, 100),
						rb.FiredAt.UTC().Format(time.TimeOnly))
				}
				if s.Obj.DeletionTimestamp != nil {
					line += " deleting"
				}
				if s.Deleted {
					line += " DELETED"
				}
				if line != last {
					fmt.Fprintf(&b, "  %s %s\n", r.since(s.At), line)
					last = line
				}
			}
		}
	})
	b.WriteString("notifications taken:")
	for _, rec := range r.w.Receiver.Received(r.receiverPath()) {
		var m notification
		_ = rec.Decode(&m)
		fmt.Fprintf(&b, " %s/%s=%d", m.Checklist.Name, m.Key, rec.Answered)
	}
	b.WriteString("\nrecords:")
	r.w.rec.view(r.ns, func(h *history) {
		for name, vs := range h.records {
			if s, ok := latest(vs); ok {
				fmt.Fprintf(&b, " %s (checklist %s, deleted=%v)", name, s.Obj.Labels[recordChecklistLabel], s.Deleted)
			}
		}
	})
	b.WriteByte('\n')
	if writes, _, err := r.w.audit.tminusWrites(r.ns); err == nil {
		b.WriteString("tminus's writes (audit log):\n")
		for _, e := range writes {
			fmt.Fprintf(&b, "  %s replica %s %s %s/%s %s\n", r.since(e.RequestReceived), replicaOf(e.UserAgent), e.Verb,
				e.ObjectRef.Resource, e.ObjectRef.Name, e.ObjectRef.Subresource)
		}
	}
	return b.String()
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func oneLine(s string, max int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// Minimize drops the events of a failed run one at a time, keeping each drop after
// which a run of the rest still breaks the same invariant, and returns the shortest
// failing run found. Each trial is a full run: this takes a while.
func (w *World) Minimize(ctx context.Context, failed Result, logf func(string, ...any)) Result {
	best := failed
	for i := 0; i < len(best.Kept); {
		trial := slices.Delete(slices.Clone(best.Kept), i, i+1)
		res := w.Run(ctx, best.Gen, best.Seed, best.Events, trial)
		if res.Violation != nil && res.Violation.Invariant == failed.Violation.Invariant {
			logf("minimizing seed %d: still fails without event #%d (%d events left)", best.Seed, best.Kept[i], len(trial))
			best = res
			continue
		}
		logf("minimizing seed %d: event #%d is needed", best.Seed, best.Kept[i])
		i++
	}
	return best
}
