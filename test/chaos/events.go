package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is what an event does.
type Kind int

const (
	// Push sets the Deployment's image to a new tag, good or bad, as a pipeline's
	// commit does (server-side apply by the GitOps field manager); with Checklist, the
	// same apply also creates a checklist for it, before or after the Deployment.
	Push Kind = iota
	// CreateChecklist creates a checklist for the Deployment.
	CreateChecklist
	// SignOff annotates the newest checklist with a sign-off, as a user who holds the
	// approve right (alice) or one who does not (mallory), impersonated.
	SignOff
	// Revoke removes the newest checklist's sign-off.
	Revoke
	// DeleteChecklist deletes the newest checklist.
	DeleteChecklist
	// SelfHeal re-applies an earlier template (one of the images pushed so far, or the
	// first), as a self-healing GitOps tool does.
	SelfHeal
	// Undo is `kubectl rollout undo`.
	Undo
	// Restart is `kubectl rollout restart`.
	Restart
	// Resume is `kubectl rollout resume`: someone takes a pause off by hand.
	Resume
	// Scale sets the scale subresource to 1..3 replicas.
	Scale
	// PrometheusDown stops the shared Prometheus for a while (the run goes on; it is
	// started again on the same port and data afterwards).
	PrometheusDown
	// KillManager SIGKILLs (or SIGTERMs) one of the two manager replicas and starts it
	// again after a while.
	KillManager
	// Wait lets time pass.
	Wait
	// Freeze creates a ChangeFreeze of the run's namespace whose one window opens a
	// moment later and ends by itself after a while (its exception: one sign-off of
	// the release-manager role).
	Freeze
	// Unfreeze deletes the newest freeze.
	Unfreeze
	// BreakGlass gives the newest checklist the freeze's exception: a reason and
	// alice's release-manager sign-off.
	BreakGlass
	// ReceiverDown makes the run's notification receiver answer 503 for a while.
	ReceiverDown
	// PrometheusFault makes the Prometheus the managers ask (through a proxy; the
	// real one runs on) answer 503, slowly, NaN or with two series, for a while.
	PrometheusFault
	// WebhookDown makes the webhook front refuse every connection for a while: the
	// API server cannot reach either replica's webhooks.
	WebhookDown
	// EditChecklist edits the newest checklist as its GitOps tool would: a new
	// revision (the sign-offs given name the old one), or the T-plus threshold moved.
	EditChecklist
	// Template edits the namespace's ChecklistTemplate (the T-plus threshold moved),
	// deletes it, or creates it again: from generation 2, every other checklist is made
	// from it.
	Template
	// StealLease takes a shard's Lease from its holder as another process would: its
	// holder identity rewritten to a thief that never renews it, or the Lease deleted.
	// The replica that held it must stop acting at once (it exits and is started again);
	// the shard is taken over once the thief's Lease expires.
	StealLease
	kinds
)

var kindNames = [kinds]string{"push", "create-checklist", "sign-off", "revoke", "delete-checklist", "self-heal",
	"undo", "restart", "resume", "scale", "prometheus-down", "kill-manager", "wait", "freeze", "unfreeze", "break-glass",
	"receiver-down", "prometheus-fault", "webhook-down", "edit-checklist", "template", "steal-lease"}

func (k Kind) String() string { return kindNames[k] }

// Weights are how often each kind is drawn (out of their sum).
type Weights [kinds]int

// Generations of the generator: a seed gives the same list for ever within one. A new
// kind of event gets a new generation, and the seeds kept under an earlier one replay
// the lists they were found with (the kinds are drawn by their weights in order, so a
// kind of weight 0 after the others leaves the draws of the others as they were).
var generations = []Weights{
	1: {Push: 14, CreateChecklist: 8, SignOff: 13, Revoke: 3, DeleteChecklist: 4, SelfHeal: 4,
		Undo: 3, Restart: 2, Resume: 2, Scale: 3, PrometheusDown: 3, KillManager: 3, Wait: 6},
	2: {Push: 14, CreateChecklist: 8, SignOff: 13, Revoke: 3, DeleteChecklist: 4, SelfHeal: 4,
		Undo: 3, Restart: 2, Resume: 2, Scale: 3, PrometheusDown: 2, KillManager: 3, Wait: 6,
		Freeze: 3, Unfreeze: 1, BreakGlass: 2, ReceiverDown: 2, PrometheusFault: 2, WebhookDown: 2,
		EditChecklist: 2, Template: 2},
	3: {Push: 14, CreateChecklist: 8, SignOff: 13, Revoke: 3, DeleteChecklist: 4, SelfHeal: 4,
		Undo: 3, Restart: 2, Resume: 2, Scale: 3, PrometheusDown: 2, KillManager: 3, Wait: 6,
		Freeze: 3, Unfreeze: 1, BreakGlass: 2, ReceiverDown: 2, PrometheusFault: 2, WebhookDown: 2,
		EditChecklist: 2, Template: 2, StealLease: 2},
}

// currentGeneration is the generator random seeds are drawn with.
const currentGeneration = 3

// Event is one step of a run. Which fields mean something depends on Kind.
type Event struct {
	Kind Kind
	// Bad: a pushed image that fails half its requests once it serves.
	Bad bool
	// Checklist: a push applied together with a checklist of its own; ChecklistFirst
	// puts the checklist before the Deployment in the apply.
	Checklist, ChecklistFirst bool
	// Right: a sign-off by a user who holds the approve right.
	Right bool
	// Pick chooses among what exists at run time (the template a self-heal re-applies).
	Pick int
	// Replicas of a scale.
	Replicas int32
	// Replica of the manager killed (0 or 1); Term sends SIGTERM instead of SIGKILL.
	// Shard whose Lease is stolen.
	Replica, Shard int
	Term           bool
	// Fault is what Prometheus answers (PrometheusFault).
	Fault PromFault
	// For is how long a fault or a wait lasts.
	For time.Duration
	// Pause is the time after the event before the next one (invariants are checked
	// in between).
	Pause time.Duration
}

func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	switch e.Kind {
	case Push:
		b.WriteString(map[bool]string{true: " bad", false: " good"}[e.Bad])
		if e.Checklist {
			b.WriteString(map[bool]string{true: " +checklist(first)", false: " +checklist(after)"}[e.ChecklistFirst])
		}
	case SignOff:
		b.WriteString(map[bool]string{true: " alice(approver)", false: " mallory(no right)"}[e.Right])
	case SelfHeal:
		fmt.Fprintf(&b, " pick=%d", e.Pick)
	case EditChecklist:
		b.WriteString(map[bool]string{true: " revision", false: " threshold"}[e.Pick == 0])
	case Template:
		b.WriteString([]string{" edit", " delete", " create"}[e.Pick])
	case StealLease:
		fmt.Fprintf(&b, " shard %d%s", e.Shard, []string{" to a thief", " deleted"}[e.Pick])
	case Scale:
		fmt.Fprintf(&b, " %d", e.Replicas)
	case PrometheusDown, Wait, Freeze, ReceiverDown, WebhookDown:
		fmt.Fprintf(&b, " %s", e.For)
	case PrometheusFault:
		fmt.Fprintf(&b, " %s %s", e.Fault, e.For)
	case KillManager:
		fmt.Fprintf(&b, " %c %s, back after %s", 'a'+rune(e.Replica), map[bool]string{true: "SIGTERM",
			false: "SIGKILL"}[e.Term], e.For)
	}
	fmt.Fprintf(&b, " (then %s)", e.Pause)
	return b.String()
}

// Generate is the seed's event list: n events drawn with the kinds' weights of the
// generation gen. The same seed and generation always give the same list.
func Generate(gen int, seed uint64, n int) []Event {
	weights := generations[gen]
	r := rand.New(rand.NewPCG(seed, seed^0x7a11c0de))
	total := 0
	for _, w := range weights {
		total += w
	}
	out := make([]Event, 0, n)
	for range n {
		pick, k := r.IntN(total), Kind(0)
		for ; pick >= weights[k]; k++ {
			pick -= weights[k]
		}
		e := Event{Kind: k, Pause: time.Duration(100+r.IntN(1400)) * time.Millisecond}
		switch k {
		case Push:
			e.Bad = r.IntN(3) == 0
			e.Checklist = r.IntN(5) < 2
			e.ChecklistFirst = r.IntN(2) == 0
		case SignOff:
			e.Right = r.IntN(5) > 0
		case SelfHeal:
			e.Pick = r.IntN(1 << 16)
		case Scale:
			e.Replicas = 1 + r.Int32N(3)
		case PrometheusDown:
			e.For = time.Duration(3+r.IntN(8)) * time.Second
		case KillManager:
			e.Replica = r.IntN(2)
			e.Term = r.IntN(4) == 0
			e.For = time.Duration(r.IntN(4000)) * time.Millisecond
		case Wait:
			e.For = time.Duration(1+r.IntN(4)) * time.Second
		case Freeze:
			e.For = time.Duration(5+r.IntN(16)) * time.Second
		case ReceiverDown:
			e.For = time.Duration(3+r.IntN(8)) * time.Second
		case PrometheusFault:
			e.For = time.Duration(2+r.IntN(5)) * time.Second
			e.Fault = PromFault(r.IntN(int(promFaults)))
		case WebhookDown:
			e.For = time.Duration(2+r.IntN(7)) * time.Second
		case EditChecklist:
			e.Pick = r.IntN(2)
		case Template:
			e.Pick = r.IntN(3)
		case StealLease:
			e.Shard, e.Pick = r.IntN(shardCount), r.IntN(2)
		}
		out = append(out, e)
	}
	return out
}
