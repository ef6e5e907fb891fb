package chaos

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	// servedSlack: the released template's serving is judged from this long after a
	// T-plus phase opened to this long before it passed (status times have a second's
	// resolution; the watch tells of a ReplicaSet a moment late).
	servedSlack = 2 * time.Second
	// freezeSlack: a T-0 or release stamped this long after a window opened counts as
	// inside it (stamps have a second's resolution).
	freezeSlack = time.Second
	// notifyWithin: a checklist's end reaches its receiver within this after it ended
	// or the receiver came back (a retry's backoff, a killed replica's lease);
	// recordWithin: its record is written within this.
	notifyWithin = time.Minute
	recordWithin = 30 * time.Second
	// sentSlack: a message status says was sent this long ago was accepted by the
	// receiver (sentAt has a second's resolution).
	sentSlack = 3 * time.Second
	// checksPerRound is the number of invariants each round evaluates.
	checksPerRound = 10
)

// rightful are the users who hold the approve right (World.addUsers): a sign-off that
// counts is theirs.
var rightful = map[string]bool{approver: true}

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
			func() (*Violation, time.Time) { return r.successOnlyForAVerifiedRelease(h), time.Time{} },
			func() (*Violation, time.Time) { return resolvedOnce(h), time.Time{} },
			func() (*Violation, time.Time) { return r.noReleaseInsideAFreeze(h), time.Time{} },
			func() (*Violation, time.Time) { return r.notifiedOnceAndRecordedOnce(h, now) },
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

// successOnlyForAVerifiedRelease is invariant 4: a checklist reports Succeeded only
// when it released a template, the sign-off its gate requires was counted when it
// released (verified by the webhook, given by a user with the right, bound to the
// released template: a sign-off revoked after T-0 takes nothing back), and that
// template served (had available pods) through every T-plus phase. No sign-off that
// counts, in any version, is anyone else's.
//
//nolint:gocyclo // one invariant over one history, read top to bottom
func (r *run) successOnlyForAVerifiedRelease(h *history) *Violation {
	const name = "4 (Succeeded only for a verified release)"
	for _, cl := range h.order {
		// signedAtRelease: the first version that records the release counted a
		// sign-off bound to it.
		releasedSeen, signedAtRelease := false, false
		for _, s := range h.checklists[cl] {
			st := s.Obj.Status
			fail := func(format string, args ...any) *Violation {
				return &Violation{Invariant: name, At: s.At, Message: fmt.Sprintf("checklist %s, %s at %s: ", cl, st.Phase,
					r.since(s.At)) + fmt.Sprintf(format, args...)}
			}
			for _, a := range st.Approvals {
				if a.NotCounted == "" && (!rightful[a.Approver] || !a.Verified) {
					return fail("the sign-off of %s by %s (verified=%v) counts", a.Role, a.Approver, a.Verified)
				}
			}
			target := s.Obj.TargetStatusOf(s.Obj.Spec.ShardTarget())
			if !releasedSeen && target != nil && target.ReleasedTemplateHash != "" {
				releasedSeen = true
				for _, a := range st.Approvals {
					if a.NotCounted == "" && a.Role == role &&
						gate.SameTemplate(a.CandidateTemplateHash, target.ReleasedTemplateHash) {
						signedAtRelease = true
					}
				}
			}
			if st.Phase != deployv1alpha1.PhaseSucceeded {
				continue
			}
			if target == nil || target.ReleasedTemplateHash == "" {
				return fail("it released no template")
			}
			released := target.ReleasedTemplateHash
			if !signedAtRelease {
				return fail("when it released %s, no counted %s sign-off was bound to it (approvals now: %+v)", released, role,
					st.Approvals)
			}
			for _, p := range st.Phases {
				if !strings.HasPrefix(p.Name, "T+") {
					continue
				}
				if p.State != deployv1alpha1.PhaseStatePassed || p.OpenedAt == nil || p.CompletedAt == nil {
					return fail("T-plus phase %s is %s", p.Name, p.State)
				}
				from, to := p.OpenedAt.Add(servedSlack), p.CompletedAt.Add(-servedSlack)
				for _, t := range servingChanges(h, from, to) {
					if serving := servingAt(h, t); serving[released] == 0 {
						return fail("its released template %s had no available pod at %s, inside phase %s [%s, %s] "+
							"(serving: %v)", released, r.since(t), p.Name, r.since(p.OpenedAt.Time), r.since(p.CompletedAt.Time),
							serving)
					}
				}
			}
			break
		}
	}
	return nil
}

// servingChanges are the moments in [from, to] at which what serves may have changed
// (from itself, and every ReplicaSet version seen in between).
func servingChanges(h *history, from, to time.Time) []time.Time {
	if to.Before(from) {
		return nil
	}
	out := []time.Time{from}
	for _, vs := range h.replicaSets {
		for _, s := range vs {
			if s.At.After(from) && !s.At.After(to) {
				out = append(out, s.At)
			}
		}
	}
	return out
}

// noReleaseInsideAFreeze is invariant 5: no checklist reaches T-0 or releases while a
// freeze the run created holds (from its window's start until its end or its
// deletion) without a recorded break-glass, whose approvers all hold the right.
func (r *run) noReleaseInsideAFreeze(h *history) *Violation {
	const name = "5 (no T-0 inside a freeze without a break-glass)"
	frozen := func(t time.Time) string {
		for _, f := range r.freezes {
			until := f.end
			if !f.deleted.IsZero() && f.deleted.Before(until) {
				until = f.deleted
			}
			if !t.Before(f.start.Add(freezeSlack)) && !t.Add(time.Second).After(until) {
				return f.name
			}
		}
		return ""
	}
	for _, cl := range h.order {
		broke := false
		for _, s := range h.checklists[cl] {
			if bg := s.Obj.Status.BreakGlass; bg != nil {
				broke = true
				for _, a := range bg.Approvers {
					if !rightful[a] {
						return &Violation{Invariant: name, At: s.At, Message: fmt.Sprintf(
							"checklist %s recorded a break-glass approved by %s, who holds no right", cl, a)}
					}
				}
			}
		}
		if broke {
			continue
		}
		for _, s := range h.checklists[cl] {
			t := s.Obj.TargetStatusOf(s.Obj.Spec.ShardTarget())
			if t == nil {
				continue
			}
			for what, at := range map[string]*metav1.Time{"reached T-0": t.T0At, "released": t.ReleasedAt} {
				if at == nil {
					continue
				}
				if f := frozen(at.Time); f != "" {
					return &Violation{Invariant: name, At: at.Time, Message: fmt.Sprintf(
						"checklist %s %s at %s, inside freeze %s, with no break-glass recorded", cl, what, r.since(at.Time), f)}
				}
			}
		}
	}
	return nil
}

// notification is what invariant 7 reads of a message the receiver took.
type notification struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	Checklist struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"checklist"`
}

// notifiedOnceAndRecordedOnce is invariant 7: every message the receiver took for one
// transition of one checklist carries one delivery id (a resend after a manager died
// mid-send repeats it); a message status reports sent was accepted; a checklist that
// ended (and was not deleted soon after) has its end accepted by the receiver within
// notifyWithin of the end or of the receiver's return, and its record within
// recordWithin; no checklist has two records, and every record was written by a
// manager replica.
//
//nolint:gocyclo // one invariant over one history, read top to bottom
func (r *run) notifiedOnceAndRecordedOnce(h *history, now time.Time) (*Violation, time.Time) {
	const name = "7 (each notification reaches its receiver once; each ended release has one record, by tminus)"
	fail := func(at time.Time, format string, args ...any) (*Violation, time.Time) {
		return &Violation{Invariant: name, At: at, Message: fmt.Sprintf(format, args...)}, time.Time{}
	}
	ids := map[string]string{}
	accepted := map[string]bool{}
	for _, rec := range r.w.Receiver.Received(r.receiverPath()) {
		var m notification
		if err := rec.Decode(&m); err != nil {
			return fail(now, "the receiver took a message it cannot read: %v", err)
		}
		k := m.Checklist.UID + "/" + m.Key
		if id, ok := ids[k]; ok && id != m.ID {
			return fail(now, "checklist %s's transition %s reached the receiver under two delivery ids, %s and %s",
				m.Checklist.Name, m.Key, id, m.ID)
		}
		ids[k] = m.ID
		if rec.Answered/100 == 2 {
			accepted[k] = true
		}
	}
	back := time.Time{}
	for _, o := range r.receiverDown {
		back = later(back, o.Ready)
	}
	var pending time.Time
	byChecklist := map[string][]string{}
	for cmName, vs := range h.records {
		s, _ := latest(vs)
		if s.Deleted {
			continue
		}
		cl := s.Obj.Labels[recordChecklistLabel]
		byChecklist[cl] = append(byChecklist[cl], cmName)
		if len(byChecklist[cl]) > 1 {
			return fail(s.At, "checklist %s has two records: %v", cl, byChecklist[cl])
		}
		if mf := s.Obj.ManagedFields; len(mf) == 0 || !strings.HasPrefix(mf[0].Manager, userAgentPrefix) {
			return fail(s.At, "record %s of checklist %s was not written by a manager replica (managed fields: %+v)", cmName,
				cl, mf)
		}
	}
	for _, cl := range h.order {
		var ended, gone time.Time
		var obj *deployv1alpha1.DeploymentChecklist
		for _, s := range h.checklists[cl] {
			st, target := s.Obj.Status, s.Obj.TargetStatusOf(s.Obj.Spec.ShardTarget())
			if ended.IsZero() && gate.Terminal(st.Phase) &&
				(st.Phase != deployv1alpha1.PhaseRolledBack || target == nil || target.RestoredAt != nil ||
					st.Rollback == nil || st.Rollback.DryRun) {
				ended = s.At
			}
			if gone.IsZero() && (s.Deleted || s.Obj.DeletionTimestamp != nil) {
				gone = s.At
			}
			obj = s.Obj
		}
		if obj == nil {
			continue
		}
		uid := string(obj.UID)
		for _, n := range obj.Status.Notifications {
			if n.State == deployv1alpha1.NotificationSent && n.SentAt != nil && n.SentAt.Add(sentSlack).Before(now) &&
				!accepted[uid+"/"+n.Key] {
				return fail(n.SentAt.Time,
					"checklist %s: status says %s was sent to %s at %s; the receiver accepted no such message",
					cl, n.Key, n.Receiver, r.since(n.SentAt.Time))
			}
		}
		if ended.IsZero() {
			continue
		}
		end := string(obj.Status.Phase)
		if due := later(ended, back).Add(notifyWithin); gone.IsZero() || gone.After(due) {
			if !accepted[uid+"/"+end] {
				if now.Before(due) {
					pending = later(pending, due)
				} else {
					return fail(due, "checklist %s ended %s at %s; the receiver accepted no %s message by %s", cl, end,
						r.since(ended), end, r.since(due))
				}
			}
		}
		if due := ended.Add(recordWithin); (gone.IsZero() || gone.After(due)) && len(byChecklist[cl]) == 0 {
			if now.Before(due) {
				pending = later(pending, due)
			} else {
				return fail(due, "checklist %s ended %s at %s; no record of it by %s", cl, end, r.since(ended), r.since(due))
			}
		}
	}
	return nil, pending
}

// resolvedOnce is invariant 4b: a checklist made from a template walks what the
// template said when it was resolved: status.resolved, once written, never changes
// (editing or deleting the template never changes a release in flight).
func resolvedOnce(h *history) *Violation {
	for _, cl := range h.order {
		var first []byte
		for _, s := range h.checklists[cl] {
			res := s.Obj.Status.Resolved
			if res == nil || len(res.Raw) == 0 {
				continue
			}
			if first == nil {
				first = res.Raw
				continue
			}
			if !bytes.Equal(first, res.Raw) {
				return &Violation{Invariant: "4b (a checklist made from a template walks what it was resolved to)", At: s.At,
					Message: fmt.Sprintf("checklist %s's status.resolved changed:\n  was %s\n  now %s", cl, first, res.Raw)}
			}
		}
	}
	return nil
}
