package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/test/testbed"
)

// The invariants' tolerances, wide for a loaded machine: they bound how late the
// watch may tell of a write, not how fast tminus must be.
const (
	// releaseSlack: a checklist's status may say it released a template this long
	// after the template's ReplicaSet got pods (the release is a Deployment write, the
	// record a status write).
	releaseSlack = 15 * time.Second
	// rolledBackSlack: pods of a rolled-back template may still be made this long after
	// the restore was seen (the Deployment controller acts on what it saw before).
	rolledBackSlack = 3 * time.Second
	// restoreWithin: a RolledBack checklist has its pre-deploy template serving within
	// this (one interval plus the rollout time, and a killed replica's lease).
	restoreWithin = 45 * time.Second
	// quietAfterRestore: tminus writes nothing to the Deployment from this long after
	// it recorded the restore.
	quietAfterRestore = 2 * time.Second
	// pausedGrace: a pause no live checklist and no held change explains may last this
	// long (a killed replica's lease, a reconcile).
	pausedGrace = 30 * time.Second
	// settleMin is the least a run's end waits after its last event and its faults
	// (for tminus to react to them); settleLimit bounds the wait for the obligations
	// still open.
	settleMin   = 10 * time.Second
	settleLimit = 90 * time.Second
	// checksPerRound is the number of invariants each round evaluates.
	checksPerRound = 6
)

// Violation is an invariant broken.
type Violation struct {
	Invariant string
	Message   string
	At        time.Time
}

func (v *Violation) Error() string { return v.Invariant + ": " + v.Message }

// invariantState is what the checks carry from one round to the next.
type invariantState struct {
	initialHash string
	// pausedSince is when the Deployment was first seen paused with nothing to
	// explain it (zero when it is not); unmarkedSince, held in the admission's name
	// without the mark of its template.
	pausedSince, unmarkedSince time.Time
}

// check evaluates every invariant on what the run's namespace saw so far. pending is
// the latest time an obligation still open is due (zero when none is).
func (r *run) check() (v *Violation, pending time.Time) {
	now := time.Now()
	writes, leases, err := r.w.audit.tminusWrites(r.ns)
	if err != nil {
		return &Violation{Invariant: "harness", Message: "reading the audit log: " + err.Error(), At: now}, time.Time{}
	}
	outages := r.w.Outages()
	later := func(t time.Time) {
		if t.After(pending) {
			pending = t
		}
	}
	r.w.rec.view(r.ns, func(h *history) {
		for _, f := range []func() (*Violation, time.Time){
			func() (*Violation, time.Time) { return r.onlyReleasedTemplatesRun(h, now) },
			func() (*Violation, time.Time) { return r.rollbackRestoresAndStaysQuiet(h, writes, now) },
			func() (*Violation, time.Time) { return r.noUnexplainedPause(h, now) },
			func() (*Violation, time.Time) { return r.outageNeitherPassesNorRollsBack(h, outages, now) },
			func() (*Violation, time.Time) { return r.writesWithinLeaseTerms(writes, leases) },
		} {
			viol, due := f()
			later(due)
			if viol != nil && v == nil {
				v = viol
			}
		}
	})
	return v, pending
}

// release is a template a checklist released, and when the recorder first saw it say so.
type release struct {
	checklist string
	at        time.Time
}

// rollback is a template a checklist rolled back.
type rollback struct {
	checklist, hash, pre string
	images               []string
	// seen is when the recorder first saw the checklist RolledBack; restored when it
	// first saw restoredAt; deleted when the checklist was first seen deleted or being
	// deleted (zero while it exists).
	seen, restored, deleted time.Time
}

func releases(h *history) map[string][]release {
	out := map[string][]release{}
	for _, name := range h.order {
		for _, s := range h.checklists[name] {
			t := s.Obj.TargetStatusOf(s.Obj.Spec.ShardTarget())
			if t == nil || t.ReleasedTemplateHash == "" {
				continue
			}
			if !slices.ContainsFunc(out[t.ReleasedTemplateHash], func(r release) bool { return r.checklist == name }) {
				out[t.ReleasedTemplateHash] = append(out[t.ReleasedTemplateHash], release{name, s.At})
			}
		}
	}
	return out
}

func rollbacks(h *history) []rollback {
	var out []rollback
	for _, name := range h.order {
		var rb *rollback
		for _, s := range h.checklists[name] {
			st := s.Obj.Status
			ts := s.Obj.TargetStatusOf(s.Obj.Spec.ShardTarget())
			if rb == nil && st.Phase == deployv1alpha1.PhaseRolledBack && st.Rollback != nil && !st.Rollback.DryRun &&
				!st.Rollback.NothingToRestore && ts != nil {
				rb = &rollback{checklist: name, hash: ts.ReleasedTemplateHash, pre: ts.PreDeployTemplateHash,
					images: ts.CandidateImages, seen: s.At}
			}
			if rb == nil {
				continue
			}
			if rb.restored.IsZero() && ts != nil && ts.RestoredAt != nil {
				rb.restored = s.At
			}
			if rb.deleted.IsZero() && (s.Deleted || s.Obj.DeletionTimestamp != nil) {
				rb.deleted = s.At
			}
		}
		if rb != nil {
			out = append(out, *rb)
		}
	}
	return out
}

func rsReplicas(rs *appsv1.ReplicaSet) int32 {
	n := rs.Status.Replicas
	if rs.Spec.Replicas != nil {
		n = max(n, *rs.Spec.Replicas)
	}
	return n
}

// onlyReleasedTemplatesRun is invariant 1: on the gated Deployment, no ReplicaSet gets
// pods of a template that no checklist released (the first template, which served
// before the Deployment was gated, aside), and none of a template a checklist rolled
// back, while that checklist exists.
func (r *run) onlyReleasedTemplatesRun(h *history, now time.Time) (*Violation, time.Time) {
	rel, rbs := releases(h), rollbacks(h)
	var pending time.Time
	for name, vs := range h.replicaSets {
		var prev int32
		for _, s := range vs {
			n := rsReplicas(s.Obj)
			if s.Deleted {
				n = 0
			}
			up := prev == 0 && n > 0
			prev = n
			if !up {
				continue
			}
			hash := gate.TemplateHash(&s.Obj.Spec.Template)
			if hash == r.inv.initialHash {
				continue
			}
			released := slices.ContainsFunc(rel[hash], func(x release) bool { return !x.at.After(s.At.Add(releaseSlack)) })
			if !released {
				if now.Before(s.At.Add(releaseSlack)) {
					pending = s.At.Add(releaseSlack)
					continue
				}
				return &Violation{Invariant: "1 (only released templates run)", At: s.At, Message: fmt.Sprintf(
					"ReplicaSet %s of template %s (%v) got pods at %s; no checklist released it (released: %v)",
					name, hash, gate.Images(&s.Obj.Spec.Template), r.since(s.At), r.releasedList(rel))}, time.Time{}
			}
			for _, rb := range rbs {
				if rb.hash == hash && !rb.restored.IsZero() && s.At.After(rb.restored.Add(rolledBackSlack)) &&
					(rb.deleted.IsZero() || s.At.Before(rb.deleted)) {
					return &Violation{Invariant: "1 (a rolled-back template stays rolled back)", At: s.At, Message: fmt.Sprintf(
						"ReplicaSet %s of template %s (%v) got pods at %s, after checklist %s rolled it back (restore seen at %s)",
						name, hash, gate.Images(&s.Obj.Spec.Template), r.since(s.At), rb.checklist, r.since(rb.restored))}, time.Time{}
				}
			}
		}
	}
	return nil, pending
}

func (r *run) releasedList(rel map[string][]release) []string {
	var out []string
	for hash, rs := range rel {
		for _, x := range rs {
			out = append(out, fmt.Sprintf("%s by %s at %s", hash, x.checklist, r.since(x.at)))
		}
	}
	slices.Sort(out)
	return out
}

// servingAt is the template hashes of the ReplicaSets with available pods, as the
// recorder knew them at t.
func servingAt(h *history, t time.Time) map[string]int32 {
	out := map[string]int32{}
	for _, vs := range h.replicaSets {
		var cur *appsv1.ReplicaSet
		for _, s := range vs {
			if s.At.After(t) {
				break
			}
			cur = s.Obj
			if s.Deleted {
				cur = nil
			}
		}
		if cur != nil && cur.Status.AvailableReplicas > 0 {
			out[gate.TemplateHash(&cur.Spec.Template)] += cur.Status.AvailableReplicas
		}
	}
	return out
}

// rollbackRestoresAndStaysQuiet is invariant 2: a checklist that reports RolledBack
// has its pre-deploy template serving (alone) within restoreWithin, unless the
// template was legitimately changed meanwhile (another checklist released one, a user
// undid, or the checklist was deleted); and once it recorded the restore, tminus
// writes nothing to the Deployment until the next user action on the namespace.
//
//nolint:gocyclo // one invariant over one history, read top to bottom
func (r *run) rollbackRestoresAndStaysQuiet(h *history, writes []testbed.AuditEvent, now time.Time) (*Violation,
	time.Time) {
	rel := releases(h)
	var pending time.Time
	for _, rb := range rollbacks(h) {
		end := rb.seen.Add(restoreWithin)
		excused := !rb.deleted.IsZero() && rb.deleted.Before(end)
		for hash, rs := range rel {
			for _, x := range rs {
				if hash != rb.hash && x.checklist != rb.checklist && x.at.After(rb.seen) && x.at.Before(end) {
					excused = true
				}
			}
		}
		for _, a := range r.actions {
			if a.Event.Kind == Undo && a.Err == nil && a.At.After(rb.seen) && a.At.Before(end) {
				excused = true
			}
		}
		restored := isOnly(servingAt(h, rb.seen), rb.pre)
		for _, vs := range h.replicaSets {
			for _, s := range vs {
				if !restored && s.At.After(rb.seen) && s.At.Before(end) && isOnly(servingAt(h, s.At), rb.pre) {
					restored = true
				}
			}
		}
		if !restored && !excused {
			if now.Before(end) {
				pending = later(pending, end)
			} else {
				return &Violation{Invariant: "2 (a rollback restores the pre-deploy template)", At: end, Message: fmt.Sprintf(
					"checklist %s reported RolledBack at %s; its pre-deploy template %s was not the only one serving by %s "+
						"(serving then: %v)",
					rb.checklist, r.since(rb.seen), rb.pre, r.since(end), servingAt(h, end))}, time.Time{}
			}
		}
		if rb.restored.IsZero() {
			continue
		}
		quietFrom := rb.restored.Add(quietAfterRestore)
		quietUntil := now
		for _, a := range r.actions {
			if a.At.After(rb.restored) && a.At.Before(quietUntil) && touchesNamespace(a.Event.Kind) {
				quietUntil = a.At
			}
		}
		for _, e := range writes {
			if e.ObjectRef.Resource == "deployments" && e.ObjectRef.Name == deploymentName &&
				e.RequestReceived.After(quietFrom) && e.RequestReceived.Before(quietUntil) {
				return &Violation{Invariant: "2 (nothing written after a rollback)", At: e.RequestReceived, Message: fmt.Sprintf(
						"%s %s the Deployment (%s) at %s, after checklist %s recorded its restore at %s, with no user action since",
						e.UserAgent, e.Verb, e.ObjectRef.Subresource, r.since(e.RequestReceived), rb.checklist, r.since(rb.restored))},
					time.Time{}
			}
		}
	}
	return nil, pending
}

func touchesNamespace(k Kind) bool {
	return k != PrometheusDown && k != KillManager && k != Wait
}

func isOnly(serving map[string]int32, hash string) bool {
	return len(serving) == 1 && serving[hash] > 0
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// noUnexplainedPause is invariant 3: the Deployment does not stay paused (the run
// never pauses it: any pause is tminus's) without a live checklist that holds it or a
// held change it reports: a template that never ran, with a hold-reason. A held change
// held in the admission's name also carries the held-template mark naming it (the gate
// package's contract: "set for changes"): checked apart, as 3b.
func (r *run) noUnexplainedPause(h *history, now time.Time) (*Violation, time.Time) {
	d, ok := latest(h.deployment)
	if !ok || d.Deleted {
		return nil, time.Time{}
	}
	live := ""
	for _, name := range h.order {
		c, _ := latest(h.checklists[name])
		if c.Deleted || c.Obj.DeletionTimestamp != nil || gate.Terminal(c.Obj.Status.Phase) {
			continue
		}
		live = name
	}
	ann := d.Obj.Annotations
	hash := gate.TemplateHash(&d.Obj.Spec.Template)
	ran := false
	for _, vs := range h.replicaSets {
		for _, s := range vs {
			if rsReplicas(s.Obj) > 0 && gate.TemplateHash(&s.Obj.Spec.Template) == hash {
				ran = true
			}
		}
	}
	heldChange := !ran && ann[deployv1alpha1.HoldReasonAnnotation] != ""
	unexplained := d.Obj.Spec.Paused && live == "" && !heldChange
	unmarked := d.Obj.Spec.Paused && live == "" &&
		ann[deployv1alpha1.HeldByAnnotation] == deployv1alpha1.HeldByAdmission &&
		ann[deployv1alpha1.HeldTemplateAnnotation] != hash
	describe := func() string {
		return fmt.Sprintf("held-by %q, held-template %q, template %s %v, hold-reason %q",
			ann[deployv1alpha1.HeldByAnnotation],
			ann[deployv1alpha1.HeldTemplateAnnotation], hash, gate.Images(&d.Obj.Spec.Template),
			oneLine(ann[deployv1alpha1.HoldReasonAnnotation], 160))
	}
	var pending time.Time
	for _, c := range []struct {
		on    bool
		since *time.Time
		name  string
		what  string
	}{
		{unexplained, &r.inv.pausedSince, "3 (no pause without a live checklist or a held change)",
			"paused with no live checklist, on a template that ran or with no hold-reason"},
		{unmarked, &r.inv.unmarkedSince, "3b (a change held in the admission's name is marked with its template)",
			"paused in the admission's name with no live checklist, its held-template mark not naming its template"},
	} {
		if !c.on {
			*c.since = time.Time{}
			continue
		}
		if c.since.IsZero() {
			*c.since = now
		}
		due := c.since.Add(pausedGrace)
		if now.Before(due) {
			pending = later(pending, due)
			continue
		}
		return &Violation{Invariant: c.name, At: now, Message: fmt.Sprintf("the Deployment has been %s since %s (%s)",
			c.what, r.since(*c.since), describe())}, time.Time{}
	}
	return nil, pending
}

// During an outage, a measurement stamped before Prometheus went away may still be
// written, and one stamped just before it came back may have been answered after:
// only stamps well inside the outage count.
const (
	outageStartMargin = time.Second
	outageEndMargin   = 4 * time.Second
)

func inOutage(outages []outage, t time.Time, now time.Time) bool {
	for _, o := range outages {
		ready := o.Ready
		if ready.IsZero() {
			ready = now.Add(time.Hour)
		}
		if !t.Before(o.Stopped.Add(outageStartMargin)) && !t.Add(outageEndMargin+time.Second).After(ready) {
			return true
		}
	}
	return false
}

// outageNeitherPassesNorRollsBack is invariant 6: while Prometheus is down, no metric
// check passes, no phase (each has a metric check) passes, no trigger is breached and
// nothing rolls back. Status times have a second's resolution: a stamp counts when it
// lies well inside the outage.
func (r *run) outageNeitherPassesNorRollsBack(h *history, outages []outage, now time.Time) (*Violation, time.Time) {
	if len(outages) == 0 {
		return nil, time.Time{}
	}
	const name = "6 (a Prometheus outage neither passes a gate nor rolls back)"
	for _, cl := range h.order {
		for _, s := range h.checklists[cl] {
			st := s.Obj.Status
			for _, p := range st.Phases {
				if p.State == deployv1alpha1.PhaseStatePassed && p.CompletedAt != nil && inOutage(outages, p.CompletedAt.Time,
					now) {
					return &Violation{Invariant: name, At: p.CompletedAt.Time, Message: fmt.Sprintf(
						"checklist %s: phase %s passed at %s, inside an outage", cl, p.Name, r.since(p.CompletedAt.Time))}, time.Time{}
				}
				for _, c := range p.Checks {
					if c.Kind != "Metric" {
						continue
					}
					for _, m := range c.History {
						if m.Outcome == deployv1alpha1.OutcomePass && inOutage(outages, m.Time.Time, now) {
							return &Violation{Invariant: name, At: m.Time.Time, Message: fmt.Sprintf(
								"checklist %s: check %s/%s passed (%s) at %s, inside an outage", cl, p.Name, c.Name, m.Value,
								r.since(m.Time.Time))}, time.Time{}
						}
					}
				}
			}
			for _, tr := range st.Triggers {
				if tr.Outcome == deployv1alpha1.OutcomeFail && tr.LastEvaluated != nil && inOutage(outages, tr.LastEvaluated.Time,
					now) {
					return &Violation{Invariant: name, At: tr.LastEvaluated.Time, Message: fmt.Sprintf(
						"checklist %s: trigger %s breached (%s) at %s, inside an outage", cl, tr.Name, tr.Value,
						r.since(tr.LastEvaluated.Time))}, time.Time{}
				}
			}
			if rb := st.Rollback; rb != nil && inOutage(outages, rb.FiredAt.Time, now) {
				return &Violation{Invariant: name, At: rb.FiredAt.Time, Message: fmt.Sprintf(
					"checklist %s: rollback (%s: %s) fired at %s, inside an outage", cl, rb.Reason, rb.Message,
					r.since(rb.FiredAt.Time))}, time.Time{}
			}
		}
	}
	return nil, time.Time{}
}

func (r *run) since(t time.Time) string {
	return fmt.Sprintf("+%s", t.Sub(r.start).Round(100*time.Millisecond))
}

// writesWithinLeaseTerms is invariant 8, from the API server's audit log: every write
// a replica made to the run's Deployment or checklists came while it held the shard
// they fall to: the last successful write to that shard's Lease before it was the
// writer's own, at most a lease duration earlier.
func (r *run) writesWithinLeaseTerms(writes []testbed.AuditEvent, leases map[string][]testbed.AuditEvent) (*Violation,
	time.Time) {
	lease := fmt.Sprintf("tminus-shard-%d", shard.Of(r.ns, deploymentName, shardCount))
	terms := leases[lease]
	for _, w := range writes {
		who := replicaOf(w.UserAgent)
		i, _ := slices.BinarySearchFunc(terms, w.RequestReceived, func(e testbed.AuditEvent, t time.Time) int {
			return e.RequestReceived.Compare(t)
		})
		if i == 0 {
			return &Violation{Invariant: "8 (writes only within the writer's Lease term)", At: w.RequestReceived,
				Message: fmt.Sprintf(
					"%s %s %s/%s at %s before any write to Lease %s", w.UserAgent, w.Verb, w.ObjectRef.Resource,
					w.ObjectRef.Subresource,
					r.since(w.RequestReceived), lease)}, time.Time{}
		}
		last := terms[i-1]
		if holder := replicaOf(last.UserAgent); holder != who || w.RequestReceived.Sub(last.RequestReceived) > leaseDuration {
			return &Violation{Invariant: "8 (writes only within the writer's Lease term)", At: w.RequestReceived,
				Message: fmt.Sprintf(
					"replica %s %s %s %s/%s at %s; the last write to Lease %s before it was by replica %s at %s",
					who, w.Verb, w.ObjectRef.Resource, w.ObjectRef.Name, w.ObjectRef.Subresource, r.since(w.RequestReceived), lease,
					holder, r.since(last.RequestReceived))}, time.Time{}
		}
	}
	return nil, time.Time{}
}

// replicaOf is the replica's name in a user agent: "tminus-chaos-a/v1.2 (...)" is a.
func replicaOf(userAgent string) string {
	name, _, _ := strings.Cut(userAgent, "/")
	return strings.TrimPrefix(name, userAgentPrefix)
}
