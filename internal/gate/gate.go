// Package gate is the rule "while tminus gates a Deployment, no pod template rolls out
// that a checklist did not release", as pure functions over what a Deployment, its
// ReplicaSets and the checklists targeting it say. The admission webhook applies it to
// a write before it is stored (Admit); the controller applies it after the fact and to
// the Deployment's own marks (WantsMark, ShouldResume). Both read the same facts, so
// they never disagree about what is held.
package gate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// RestartedAtAnnotation is what `kubectl rollout restart` changes in a pod template: a
// restart is not a new template.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// TemplateHash identifies a pod template for tminus: the SHA-256 of its JSON, in hex.
// The pod-template-hash label the Deployment controller adds to its ReplicaSets and the
// restart annotation `kubectl rollout restart` sets are left out, so a Deployment's
// template, the ReplicaSet made from it and the same template restarted hash alike.
// The whole digest: a template made to collide with a released one is not a birthday
// search away (earlier versions kept 8 bytes; see SameTemplate).
func TemplateHash(tmpl *corev1.PodTemplateSpec) string {
	t := tmpl.DeepCopy()
	if t.Labels != nil {
		delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		if len(t.Labels) == 0 {
			t.Labels = nil
		}
	}
	if t.Annotations != nil {
		delete(t.Annotations, RestartedAtAnnotation)
		if len(t.Annotations) == 0 {
			t.Annotations = nil
		}
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// legacyHashLen is the length of the template hashes earlier versions stored (the first
// 8 bytes of the same digest, in hex) in checklist status and tminus's annotations.
const legacyHashLen = 16

// SameTemplate says whether a stored template hash names the template whose hash
// (TemplateHash) is hash. A hash an earlier version stored is the first 16 hex digits of
// the same digest, so it names a template whose full hash starts with it: a release in
// flight across an upgrade keeps its identities (with the 64 bits it had), and whatever
// tminus stores from now on is the whole digest. Empty names nothing.
func SameTemplate(stored, hash string) bool {
	if stored == "" || hash == "" {
		return false
	}
	if stored == hash {
		return true
	}
	short, long := stored, hash
	if len(short) > len(long) {
		short, long = long, short
	}
	return len(short) == legacyHashLen && len(long) == 2*sha256.Size && strings.HasPrefix(long, short)
}

// IsLegacyHash says whether a stored template hash is of the length earlier versions
// stored: one SameTemplate may match to a whole digest.
func IsLegacyHash(stored string) bool { return len(stored) == legacyHashLen }

// Images lists a template's container images, in order, at most 16.
func Images(tmpl *corev1.PodTemplateSpec) []string {
	if tmpl == nil {
		return nil
	}
	out := make([]string, 0, len(tmpl.Spec.Containers))
	for _, c := range tmpl.Spec.Containers {
		if len(out) == 16 {
			break
		}
		out = append(out, c.Image)
	}
	return out
}

// ImageList renders images for a message: "checkout:v2, sidecar:1".
func ImageList(images []string) string {
	if len(images) == 0 {
		return "no images"
	}
	return strings.Join(images, ", ")
}

// Checklist is what the gate needs to know of one checklist targeting the Deployment.
type Checklist struct {
	Name    string
	UID     string
	Created time.Time
	// Observe: gate Observe, which never holds anything.
	Observe bool
	Phase   deployv1alpha1.ChecklistPhase
	// Captured: the serving template was recorded, so the checklist holds the target.
	Captured      bool
	PreDeployHash string
	CandidateHash string
	// T0: every T-minus phase passed and deployAt was reached.
	T0           bool
	ReleasedHash string
	// RolledBackHash is the template the checklist rolled back; it stays refused while
	// the checklist exists.
	RolledBackHash string
	// RestoreHash is the pre-deploy template of a checklist that rolled back: its
	// restore puts it back, and is never held (the Deployment served it when the
	// checklist started, even if its ReplicaSet has been cleaned up since).
	RestoreHash       string
	RolledBackAt      time.Time
	RollbackMessage   string
	RolledBackImages  []string
	ReleasedImages    []string
	CandidateImages   []string
	PreDeployImages   []string
	TargetName        string
	TargetNamespace   string
	DeletionRequested bool
	// WaitingTurn: a Sequential release (spec.release.order) is past T-0 and releasing
	// a target before this one, which waits for that rollout, held: a new template
	// written meanwhile, or a resume, is stored paused until its turn.
	WaitingTurn bool
	// RetryOf names the checklist this one retries (kubectl checklist retry): while
	// this one lives, the template that one rolled back may be released again.
	RetryOf string
}

// FromChecklist reads the gate's view of a checklist of one target from its spec and
// status (of a release of several, its first target).
func FromChecklist(dcl *deployv1alpha1.DeploymentChecklist) Checklist {
	return FromChecklistFor(dcl, dcl.Spec.ShardTarget())
}

// FromChecklistFor reads the gate's view of a checklist for one of its targets, named,
// from its spec and that target's status.
func FromChecklistFor(dcl *deployv1alpha1.DeploymentChecklist, targetName string) Checklist {
	c := Checklist{
		Name:              dcl.Name,
		UID:               string(dcl.UID),
		Created:           dcl.CreationTimestamp.Time,
		Observe:           GateOf(dcl) == deployv1alpha1.GateObserve,
		Phase:             dcl.Status.Phase,
		TargetName:        targetName,
		TargetNamespace:   dcl.Namespace,
		DeletionRequested: !dcl.DeletionTimestamp.IsZero(),
		RetryOf:           dcl.Annotations[deployv1alpha1.RetryOfAnnotation],
	}
	if t := dcl.TargetStatusOf(targetName); t != nil {
		c.Captured = t.CapturedAt != nil
		c.PreDeployHash = t.PreDeployTemplateHash
		c.PreDeployImages = t.PreDeployImages
		c.CandidateHash = t.CandidateTemplateHash
		c.CandidateImages = t.CandidateImages
		c.T0 = t.T0At != nil
		c.ReleasedHash = t.ReleasedTemplateHash
		if t.ReleasedTemplateHash != "" {
			c.ReleasedImages = t.CandidateImages
		}
	}
	c.WaitingTurn = waitingTurn(dcl, targetName, c)
	if rb := dcl.Status.Rollback; rb != nil && dcl.Status.Phase == deployv1alpha1.PhaseRolledBack &&
		!rb.DryRun && !rb.NothingToRestore && !c.Observe && c.ReleasedHash != "" {
		c.RolledBackHash = c.ReleasedHash
		c.RestoreHash = c.PreDeployHash
		c.RolledBackImages = c.ReleasedImages
		c.RolledBackAt = rb.FiredAt.Time
		c.RollbackMessage = rb.Message
	}
	return c
}

// waitingTurn says whether the named target waits its turn in a Sequential release: T-0
// passed, it is not released, and the target released now (status.releasing) comes
// before it in spec.targets.
//
// Past T-0 with nothing released yet (the release waits for its templates), only the
// first target may take a template as it arrives: the others wait their turn, held, and
// the engine releases them in order. Otherwise two images arriving in one sync would
// both roll at once, and a breach of the first would leave the second running, never
// released and never restored.
func waitingTurn(dcl *deployv1alpha1.DeploymentChecklist, targetName string, c Checklist) bool {
	releasing := dcl.Status.Releasing
	if !dcl.Spec.Sequential() || !c.T0 || c.ReleasedHash != "" || Terminal(c.Phase) {
		return false
	}
	names := dcl.Spec.TargetNames()
	if releasing == "" {
		return !Releasing(c.Phase) && slices.Index(names, targetName) > 0
	}
	return slices.Index(names, releasing) < slices.Index(names, targetName)
}

// GateOf is the gate tminus applies for the checklist: spec.gate, fixed at creation
// (for a checklist made from a template, the checklist webhook writes the template's
// gate there, and a resolution that disagrees stalls), or what a checklist resolved by
// an earlier version kept in status.resolved. Anything but Observe is Pause: the safe
// reading.
func GateOf(dcl *deployv1alpha1.DeploymentChecklist) deployv1alpha1.GateMode {
	if dcl.Spec.TemplateRef != nil {
		if g := resolvedGateOf(dcl); g != "" {
			return g
		}
	}
	if dcl.Spec.Gate == deployv1alpha1.GateObserve {
		return deployv1alpha1.GateObserve
	}
	return deployv1alpha1.GatePause
}

// resolvedGateOf is the gate kept in the checklist's status.resolved ("" without one),
// decoded once per checklist version.
func resolvedGateOf(dcl *deployv1alpha1.DeploymentChecklist) deployv1alpha1.GateMode {
	r := dcl.Status.Resolved
	if r == nil {
		return ""
	}
	if dcl.UID == "" || dcl.ResourceVersion == "" {
		return resolvedGate(r.Raw)
	}
	key := string(dcl.UID) + "/" + dcl.ResourceVersion
	if g, ok := resolvedGates.Load(key); ok {
		return g.(deployv1alpha1.GateMode)
	}
	g := resolvedGate(r.Raw)
	if resolvedGateCount.Add(1) > maxResolvedGates {
		resolvedGates.Clear()
		resolvedGateCount.Store(0)
	}
	resolvedGates.Store(key, g)
	return g
}

// resolvedGates remembers the gate read from a checklist's status.resolved by UID and
// resourceVersion: the resolved body is a whole checklist, and every admission of a
// Deployment write reads every checklist of the Deployment, its history included. It is
// emptied when it grows past maxResolvedGates entries.
var (
	resolvedGates     sync.Map
	resolvedGateCount atomic.Int64
)

const maxResolvedGates = 50000

// resolvedGate reads the gate of a resolved checklist body ("" when it names none).
func resolvedGate(raw []byte) deployv1alpha1.GateMode {
	var body struct {
		Gate deployv1alpha1.GateMode `json:"gate"`
	}
	if json.Unmarshal(raw, &body) == nil {
		return body.Gate
	}
	return ""
}

// Terminal says whether a checklist in phase has ended.
func Terminal(phase deployv1alpha1.ChecklistPhase) bool {
	switch phase {
	case deployv1alpha1.PhaseSucceeded, deployv1alpha1.PhaseFailed, deployv1alpha1.PhaseRolledBack:
		return true
	}
	return false
}

// Releasing says whether a checklist in phase has released its candidate and is rolling it out or verifying it.
func Releasing(phase deployv1alpha1.ChecklistPhase) bool {
	return phase == deployv1alpha1.PhaseDeploying || phase == deployv1alpha1.PhaseVerifying
}

// Live says whether the checklist has not ended (and is not being deleted).
func (c *Checklist) Live() bool { return !Terminal(c.Phase) && !c.DeletionRequested }

// before orders live checklists: the one past T-0 first (it is releasing), then the
// oldest, then by name. The first is the active one; the others are blocked by it.
func before(a, b *Checklist) int {
	if pa, pb := Releasing(a.Phase), Releasing(b.Phase); pa != pb {
		if pa {
			return -1
		}
		return 1
	}
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// Active is the live checklist that may act on the Deployment: the first of the live
// ones in order. Nil when none is live.
func Active(cls []Checklist) *Checklist {
	var first *Checklist
	for i := range cls {
		c := &cls[i]
		if c.Live() && (first == nil || before(c, first) < 0) {
			first = c
		}
	}
	return first
}

// Blocker names the live checklist that comes before the named one: while it lives,
// the named one waits and touches nothing. Empty when the named one is the active one.
func Blocker(cls []Checklist, name string) string {
	a := Active(cls)
	if a == nil || a.Name == name {
		return ""
	}
	return a.Name
}

// AwaitsTemplate says whether the active checklist is past T-0 with nothing released,
// so a new template is admitted unpaused as its release: a decision the webhooks take
// again on the API server's view, since a cache a moment behind may still show a
// release that has moved on.
func AwaitsTemplate(cls []Checklist) bool {
	a := Active(cls)
	return a != nil && !a.Observe && a.awaitsTemplate()
}

// awaitsTemplate says whether the checklist is past T-0 with nothing released yet,
// waiting for a new template, which it releases as soon as it arrives.
func (c *Checklist) awaitsTemplate() bool {
	return c.T0 && c.ReleasedHash == "" && !c.WaitingTurn && !Releasing(c.Phase)
}

// holdsBeforeT0 says whether the checklist keeps the Deployment paused until T-0.
func (c *Checklist) holdsBeforeT0() bool {
	return !c.Observe && c.Captured && !c.T0 && !Releasing(c.Phase) && c.Phase != deployv1alpha1.PhaseBlocked
}

// RolledBackBy is the checklist that rolled the template back, if any, unless a live
// checklist retries it: a person asked for the release again, and it is held for that
// retry's sign-offs like any candidate.
func RolledBackBy(cls []Checklist, hash string) *Checklist {
	for i := range cls {
		if SameTemplate(cls[i].RolledBackHash, hash) && !retried(cls, cls[i].Name) {
			return &cls[i]
		}
	}
	return nil
}

// retried says whether a live checklist of cls retries the checklist name.
func retried(cls []Checklist, name string) bool {
	for i := range cls {
		if cls[i].RetryOf == name && cls[i].Live() {
			return true
		}
	}
	return false
}

// listedRefused is the entry of the stored (old) or written (cur) Deployment's
// RefusedTemplatesAnnotation that refuses cur's template, if any, unless a live
// checklist retries the checklist that rolled it back: a person asked for it again, and
// it is held for the retry's sign-offs, as RolledBackBy lets it through.
func listedRefused(old, cur *Deployment, cls []Checklist) *Refusal {
	refused := RefusedIn(cur.Refused, cur.TemplateHash)
	if refused == nil && old != nil {
		refused = RefusedIn(old.Refused, cur.TemplateHash)
	}
	if refused == nil || retried(cls, refused.Checklist) {
		return nil
	}
	return refused
}

// RestoreOf is the checklist that rolled back to the template, if any: the template is
// the one it restores.
func RestoreOf(cls []Checklist, hash string) *Checklist {
	for i := range cls {
		if SameTemplate(cls[i].RestoreHash, hash) {
			return &cls[i]
		}
	}
	return nil
}

// RolledBackMark is the value of RolledBackAnnotation for a rollback of the template
// hash by the checklist: what the restore writes with the template it restores.
func RolledBackMark(checklist, uid, hash string) string {
	return checklist + "/" + uid + "/" + hash
}

// RolledBack is a Deployment's RolledBackAnnotation, read: which checklist rolled which
// template back.
type RolledBack struct {
	Checklist, UID, Hash string
}

// ParseRolledBack reads RolledBackAnnotation; the zero value when it is absent or not
// tminus's.
func ParseRolledBack(v string) RolledBack {
	name, rest, ok := strings.Cut(v, "/")
	uid, hash, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || name == "" || uid == "" || hash == "" {
		return RolledBack{}
	}
	return RolledBack{Checklist: name, UID: uid, Hash: hash}
}

// Refusal is one entry of a Deployment's RefusedTemplatesAnnotation: a template a
// checklist rolled back, refused whether or not that checklist still exists.
type Refusal struct {
	Hash      string    `json:"hash"`
	Checklist string    `json:"checklist"`
	UID       string    `json:"uid,omitempty"`
	At        time.Time `json:"at"`
}

// ParseRefusals reads RefusedTemplatesAnnotation; entries without a hash are dropped,
// and a value that does not parse reads as none (the admission webhook puts back what
// the stored Deployment listed).
func ParseRefusals(v string) []Refusal {
	if v == "" {
		return nil
	}
	var out []Refusal
	if json.Unmarshal([]byte(v), &out) != nil {
		return nil
	}
	return slices.DeleteFunc(out, func(r Refusal) bool { return r.Hash == "" })
}

// FormatRefusals is RefusedTemplatesAnnotation's value for rs ("" for none).
func FormatRefusals(rs []Refusal) string {
	if len(rs) == 0 {
		return ""
	}
	raw, err := json.Marshal(rs)
	if err != nil {
		return ""
	}
	return string(raw)
}

// AddRefusal puts r first in rs, once: a template already listed keeps its entry (a
// rollback written again, after a conflict or a restart, changes nothing). Past
// MaxRefusedTemplates the oldest entries are dropped.
func AddRefusal(rs []Refusal, r Refusal) []Refusal {
	if RefusedIn(rs, r.Hash) != nil {
		return rs
	}
	out := append([]Refusal{r}, rs...)
	if len(out) > deployv1alpha1.MaxRefusedTemplates {
		out = out[:deployv1alpha1.MaxRefusedTemplates]
	}
	return out
}

// RefusedIn is the entry of rs refusing hash, if any.
func RefusedIn(rs []Refusal, hash string) *Refusal {
	for i := range rs {
		if SameTemplate(rs[i].Hash, hash) {
			return &rs[i]
		}
	}
	return nil
}

// Dropped lists the entries of before that after no longer lists: the templates a
// write of RefusedTemplatesAnnotation would allow again.
func Dropped(before, after []Refusal) []Refusal {
	var out []Refusal
	for _, r := range before {
		if RefusedIn(after, r.Hash) == nil {
			out = append(out, r)
		}
	}
	return out
}

// markedRolledBack is the checklist the Deployment's own mark says rolled back hash,
// while that checklist exists (a cache a moment behind may show it still verifying).
func markedRolledBack(d *Deployment, cls []Checklist, hash string) *Checklist {
	m := d.RolledBack
	if !SameTemplate(m.Hash, hash) || retried(cls, m.Checklist) {
		return nil
	}
	for i := range cls {
		if cls[i].Name == m.Checklist && cls[i].UID == m.UID {
			return &cls[i]
		}
	}
	return nil
}

// WantsMark says whether tminus wants its label on the Deployment: while a checklist
// that gates it (gate Pause) is live, or guards a template it rolled back. A Deployment
// that lists refused templates (RefusedTemplatesAnnotation) wants it too: the gate
// controller asks both.
func WantsMark(cls []Checklist) bool {
	for i := range cls {
		c := &cls[i]
		if !c.Observe && (c.Live() || c.RolledBackHash != "") {
			return true
		}
	}
	return false
}

// ReplicaSet is what the gate needs of one ReplicaSet of the Deployment.
type ReplicaSet struct {
	Hash    string
	Created time.Time
	// Replicas is the larger of the ReplicaSet's desired and current pod counts.
	Replicas int32
}

// Deployment is what the gate needs of a Deployment, or of another kind of workload
// (Kind) held by its own update strategy: Paused then says it is held.
type Deployment struct {
	// Kind is the workload's kind; "" is a Deployment.
	Kind            string
	Namespace, Name string
	TemplateHash    string
	Images          []string
	Paused          bool
	// HeldBy is tminus's HeldByAnnotation, empty when tminus did not pause it, and
	// HeldTemplate its HeldTemplateAnnotation.
	HeldBy       string
	HeldTemplate string
	// RolledBack is tminus's RolledBackAnnotation: the last template a checklist rolled
	// back on it.
	RolledBack RolledBack
	// Refused is its RefusedTemplatesAnnotation: the templates checklists rolled back on
	// it, refused whether or not those checklists still exist.
	Refused []Refusal
	// GateLabel is its GatedLabel: GatedByUser when its owner gates it.
	GateLabel   string
	ReplicaSets []ReplicaSet
}

// KindName is the workload's kind, for messages.
func (d *Deployment) KindName() string {
	if d.Kind == "" {
		return "Deployment"
	}
	return d.Kind
}

// rollingOut says what "between two versions" means for the workload's kind.
func (d *Deployment) rollingOut() string {
	if d.Kind == "" || d.Kind == "Deployment" {
		return "more than one ReplicaSet has pods"
	}
	return "its pods run more than one revision"
}

// Ran says whether a ReplicaSet of the template exists: the Deployment ran it (or
// started to).
func (d *Deployment) Ran(hash string) bool {
	return slices.ContainsFunc(d.ReplicaSets, func(rs ReplicaSet) bool { return rs.Hash == hash })
}

// Settled says whether at most one ReplicaSet has pods: the Deployment is not between
// two versions. A paused Deployment holding a template it has not rolled is settled.
func (d *Deployment) Settled() bool {
	n := 0
	for _, rs := range d.ReplicaSets {
		if rs.Replicas > 0 {
			n++
		}
	}
	return n <= 1
}

// UnreleasedChange says whether the Deployment's template is one nothing released: no
// ReplicaSet of it exists, and it is not a live checklist's released or (after T-0)
// arriving candidate.
func UnreleasedChange(d *Deployment, cls []Checklist) bool {
	return !releasable(d, d.TemplateHash, cls, Active(cls))
}

// releasable says whether hash may roll out on the Deployment: the active checklist
// released it, or is past T-0 waiting for a new template (this one becomes its
// candidate and is released at once), or the Deployment ran it before (`kubectl
// rollout undo`), or it is the pre-deploy template a checklist rolled back to (its
// restore, whose ReplicaSet may be gone: revisionHistoryLimit). An Observe checklist
// releases nothing: it never holds, so it has nothing to let go.
//
// Waiting for a template means the release as a whole released nothing yet (phase
// Holding past T-0). Once it released another target (Deploying, Verifying), a target
// of it that did not change at T-0, or was passed over in a Sequential release, is not
// part of it: a template arriving there later is released by no checklist.
func releasable(d *Deployment, hash string, cls []Checklist, active *Checklist) bool {
	if active != nil && !active.Observe {
		if SameTemplate(active.ReleasedHash, hash) {
			return true
		}
		if active.awaitsTemplate() && !SameTemplate(active.PreDeployHash, hash) {
			return true
		}
	}
	return d.Ran(hash) || RestoreOf(cls, hash) != nil
}

// Verdict is the admission decision for a write of a gated Deployment.
type Verdict struct {
	// Deny refuses the write with this message.
	Deny string
	// Hold admits it paused, with tminus's hold annotations set to HeldBy, Hold and
	// (a held change) HeldTemplate.
	Hold         string
	HeldBy       string
	HeldTemplate string
}

// Admit decides a write (old is nil on create) of a gated Deployment, given its
// ReplicaSets (in cur) and the checklists targeting it:
//   - a template a checklist rolled back is refused, naming the checklist; so is the
//     one the stored Deployment (old) is marked as rolled back by a checklist that
//     exists, whatever phase the checklists as read still show, and every template
//     the stored or written Deployment lists as refused (RefusedTemplatesAnnotation),
//     whether or not the checklist that rolled it back still exists;
//   - while the active checklist holds the Deployment before T-0, it stays paused (a
//     new template under the admission's hold is marked as the change it holds);
//   - a new template nothing released is held (paused in the same write), or refused
//     while the Deployment is between two versions, where a pause would freeze both;
//   - a resume of a held template is turned back into a pause;
//   - everything else passes untouched: scaling, labels, `kubectl rollout restart`,
//     going back to a template the Deployment ran, the release of a checklist.
func Admit(old *Deployment, cur *Deployment, cls []Checklist) Verdict { //nolint:gocyclo // the rules above, in their order: one place to read them
	changed := old == nil || old.TemplateHash != cur.TemplateHash
	if changed {
		if c := RolledBackBy(cls, cur.TemplateHash); c != nil {
			return Verdict{Deny: fmt.Sprintf("%s %s/%s: this pod template (%s) was rolled back by checklist %s at %s (%s). "+
				"It stays refused: %s", cur.KindName(), cur.Namespace, cur.Name, ImageList(cur.Images), c.Name, c.RolledBackAt.UTC().Format(time.RFC3339),
				c.RollbackMessage, howToAllow)}
		}
		if old != nil {
			if c := markedRolledBack(old, cls, cur.TemplateHash); c != nil {
				return Verdict{Deny: fmt.Sprintf("%s %s/%s: this pod template (%s) was rolled back by checklist %s "+
					"(tminus restored the template that served before it). It stays refused: %s",
					cur.KindName(), cur.Namespace, cur.Name, ImageList(cur.Images), c.Name, howToAllow)}
			}
		}
		if refused := listedRefused(old, cur, cls); refused != nil {
			return Verdict{Deny: fmt.Sprintf("%s %s/%s: this pod template (%s) was rolled back by checklist %s at %s. "+
				"It stays refused (annotation %s), whether or not that checklist still exists: %s",
				cur.KindName(), cur.Namespace, cur.Name, ImageList(cur.Images), refused.Checklist, refused.At.UTC().Format(time.RFC3339),
				deployv1alpha1.RefusedTemplatesAnnotation, howToAllow)}
		}
	}
	active := Active(cls)
	if active != nil && active.Observe {
		// An Observe checklist holds nothing, so it lets new templates through; but it
		// never switches off the gate the Deployment's owner put on (labelled
		// gated=true: only the label's break-glass does that), and never takes a pause
		// off a template the Deployment did not run (a held change stays held).
		resumes := old != nil && old.Paused && !cur.Paused && !releasable(cur, cur.TemplateHash, cls, nil)
		if cur.GateLabel != deployv1alpha1.GatedByUser && !resumes {
			return Verdict{}
		}
		active = nil
	}
	if active != nil && (active.holdsBeforeT0() || (active.WaitingTurn && !active.Observe)) {
		if !cur.Paused {
			why := fmt.Sprintf("held by checklist %s until T-0", active.Name)
			if active.WaitingTurn {
				why = fmt.Sprintf("held by checklist %s until its turn: the release order is Sequential", active.Name)
			}
			return Verdict{HeldBy: deployv1alpha1.HeldByChecklist(active.Name), Hold: why}
		}
		if changed && cur.HeldBy == deployv1alpha1.HeldByAdmission && !SameTemplate(cur.HeldTemplate, cur.TemplateHash) &&
			!releasable(cur, cur.TemplateHash, cls, active) {
			// The checklist kept the admission's hold as it found it: that hold now holds
			// this change, and its marks name it (they outlive the checklist).
			return Verdict{HeldBy: deployv1alpha1.HeldByAdmission, Hold: heldReason(cur, active), HeldTemplate: cur.TemplateHash}
		}
		return Verdict{}
	}
	if releasable(cur, cur.TemplateHash, cls, active) {
		return Verdict{}
	}
	if !changed {
		// The template stays; only a resume of a held one is undone.
		if old.Paused && !cur.Paused {
			return Verdict{HeldBy: deployv1alpha1.HeldByAdmission, Hold: heldReason(cur, active), HeldTemplate: cur.TemplateHash}
		}
		return Verdict{}
	}
	if !cur.Settled() {
		msg := fmt.Sprintf("%s %s/%s is rolling out (%s): its new pod template (%s) "+
			"is released by no checklist, and pausing now would freeze both versions serving side by side. "+
			"Apply it again once the rollout settles (a GitOps sync retries by itself)", cur.KindName(), cur.Namespace, cur.Name,
			cur.rollingOut(), ImageList(cur.Images))
		if active != nil && active.ReleasedHash != "" {
			msg += fmt.Sprintf("; checklist %s is releasing %s", active.Name, ImageList(active.ReleasedImages))
		}
		return Verdict{Deny: msg}
	}
	return Verdict{HeldBy: deployv1alpha1.HeldByAdmission, Hold: heldReason(cur, active), HeldTemplate: cur.TemplateHash}
}

// howToAllow ends a refusal of a rolled-back template.
var howToAllow = fmt.Sprintf("commit a new revision with a checklist of its own; to allow this template again, someone with "+
	"the verb %s on deploymentchecklists in the namespace takes it out of the workload's annotation %s, "+
	"and deletes the checklist that rolled it back if it still exists (docs/gitops.md)",
	deployv1alpha1.UnrefuseVerb, deployv1alpha1.RefusedTemplatesAnnotation)

func heldReason(d *Deployment, active *Checklist) string {
	if active != nil && active.ReleasedHash != "" {
		return fmt.Sprintf("pod template (%s) changed while checklist %s verifies its release (%s); it waits for a checklist of its own",
			ImageList(d.Images), active.Name, ImageList(active.ReleasedImages))
	}
	return fmt.Sprintf("pod template (%s) is released by no checklist; create a DeploymentChecklist targeting %s to release it",
		ImageList(d.Images), d.Name)
}

// ShouldResume says whether tminus should take its pause off the Deployment now: it
// paused it, no live checklist holds it, and its template is not a change nothing
// released (that one stays held until a checklist of its own releases it): neither the
// change it held nor a template that never ran.
func ShouldResume(d *Deployment, cls []Checklist) bool {
	if !d.Paused || d.HeldBy == "" || SameTemplate(d.HeldTemplate, d.TemplateHash) {
		return false
	}
	active := Active(cls)
	if active != nil && !active.Observe {
		// The live checklist decides: it holds before T-0, releases at T-0 and holds a
		// change during its verification.
		return false
	}
	return !UnreleasedChange(d, cls)
}
