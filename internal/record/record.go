// Package record makes a release's record: when a checklist ends, what it gated, who
// signed off and what every gate measured, in an immutable ConfigMap that outlives the
// checklist (docs/records.md). Change management asks for this; Kubernetes events are
// gone after an hour. The record is built from the checklist's status alone, so it says
// exactly what the status said when the release ended.
package record

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/templates"
)

// Schema names the record's JSON shape; a change that is not an addition gets a new
// version.
const Schema = "deploy.tminus.dev/release-record/v1"

// Labels and keys of the record's ConfigMap.
const (
	// DataKey holds the record's JSON.
	DataKey = "record.json"
	// KindLabel marks record ConfigMaps ("release-record").
	KindLabel = "deploy.tminus.dev/kind"
	// KindValue is KindLabel's value.
	KindValue = "release-record"
	// ChecklistLabel is the checklist's name, TargetLabel the Deployment's and
	// ResultLabel the checklist's final phase: `kubectl get cm -l` lists by them.
	ChecklistLabel = "deploy.tminus.dev/checklist"
	TargetLabel    = "deploy.tminus.dev/target"
	ResultLabel    = "deploy.tminus.dev/result"
)

// Record is one release's record.
type Record struct {
	Schema    string    `json:"schema"`
	Checklist Checklist `json:"checklist"`
	Target    Target    `json:"target"`
	// Targets lists every target of a release of several (Target is the first).
	Targets []Target `json:"targets,omitempty"`
	// Result is the checklist's final phase: Succeeded, Failed or RolledBack.
	Result string `json:"result"`
	// Reason and Message are the Ready condition's when it ended.
	Reason  string  `json:"reason,omitempty"`
	Message string  `json:"message,omitempty"`
	Timings Timings `json:"timings"`
	Phases  []Phase `json:"phases,omitempty"`
	// Triggers as they stood when the release ended.
	Triggers []Trigger `json:"triggers,omitempty"`
	SignOffs []SignOff `json:"signOffs,omitempty"`
	// Baselines the relative checks were judged against.
	Baselines []Baseline `json:"baselines,omitempty"`
	Rollback  *Rollback  `json:"rollback,omitempty"`
	// Request is the person's request (rollback, abort) the checklist read: who, why,
	// and what was made of it.
	Request *Request `json:"request,omitempty"`
	// BreakGlass says the release started during a change freeze, by whose sign-offs
	// and why.
	BreakGlass *BreakGlass `json:"breakGlass,omitempty"`
	// Contacts and Runbooks are the checklist's (its template's merged in) when the
	// release ended: whom to call and what to read, for the review afterwards.
	Contacts []Contact `json:"contacts,omitempty"`
	Runbooks []Runbook `json:"runbooks,omitempty"`
}

// Contact is someone to call during the release (spec.contacts).
type Contact struct {
	Role  string `json:"role"`
	Name  string `json:"name"`
	Reach string `json:"reach"`
}

// Runbook is a link a responder reads (spec.runbooks).
type Runbook struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

// BreakGlass is a release started during a change freeze.
type BreakGlass struct {
	Freezes   []string  `json:"freezes"`
	Reason    string    `json:"reason"`
	Approvers []string  `json:"approvers"`
	At        time.Time `json:"at"`
}

// Checklist identifies the checklist the record is of.
type Checklist struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Revision  string `json:"revision"`
	// Template the checklist was made from, with its parameters, when it had one.
	Template *Template `json:"template,omitempty"`
}

// Template is the template a checklist was made from.
type Template struct {
	Kind       string            `json:"kind"`
	Name       string            `json:"name"`
	Generation int64             `json:"generation"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

// Target is what was released, and what served before.
type Target struct {
	Kind                  string   `json:"kind"`
	Name                  string   `json:"name"`
	PreDeployImages       []string `json:"preDeployImages,omitempty"`
	PreDeployTemplateHash string   `json:"preDeployTemplateHash,omitempty"`
	ReleasedImages        []string `json:"releasedImages,omitempty"`
	ReleasedTemplateHash  string   `json:"releasedTemplateHash,omitempty"`
	// Released and Restored are when this target was released and seen restored
	// (records of a release of several targets).
	Released *time.Time `json:"released,omitempty"`
	Restored *time.Time `json:"restored,omitempty"`
	// Step is, in a release in steps (spec.release.steps), the step it reached, of
	// Steps in all (the last one releases every pod).
	Step  int32 `json:"step,omitempty"`
	Steps int32 `json:"steps,omitempty"`
}

// Timings of the release; absent ones did not happen.
type Timings struct {
	Created   time.Time  `json:"created"`
	T0        *time.Time `json:"t0,omitempty"`
	Released  *time.Time `json:"released,omitempty"`
	Available *time.Time `json:"available,omitempty"`
	Restored  *time.Time `json:"restored,omitempty"`
	Ended     *time.Time `json:"ended,omitempty"`
}

// Phase is one phase of the checklist and its checks.
type Phase struct {
	Name        string     `json:"name"`
	State       string     `json:"state"`
	OpenedAt    *time.Time `json:"openedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	Checks      []Check    `json:"checks,omitempty"`
}

// Check is one check's last evaluation: its value, its threshold, the query as sent
// (metric checks), the Job and its result (Job checks: in message).
type Check struct {
	Name          string     `json:"name"`
	Kind          string     `json:"kind"`
	Outcome       string     `json:"outcome"`
	Value         string     `json:"value,omitempty"`
	Threshold     string     `json:"threshold,omitempty"`
	Query         string     `json:"query,omitempty"`
	Message       string     `json:"message,omitempty"`
	LastEvaluated *time.Time `json:"lastEvaluated,omitempty"`
}

// Trigger is one rollback trigger's last evaluation.
type Trigger struct {
	Name           string     `json:"name"`
	Outcome        string     `json:"outcome"`
	Value          string     `json:"value,omitempty"`
	Threshold      string     `json:"threshold,omitempty"`
	BreachingSince *time.Time `json:"breachingSince,omitempty"`
	Message        string     `json:"message,omitempty"`
}

// SignOff is one sign-off: who, for which role and template, when, whether the
// admission webhook verified its author, and whether it counted.
type SignOff struct {
	Role       string    `json:"role"`
	Approver   string    `json:"approver"`
	Revision   string    `json:"revision"`
	At         time.Time `json:"at"`
	Verified   bool      `json:"verified"`
	Counted    bool      `json:"counted"`
	NotCounted string    `json:"notCounted,omitempty"`
	Images     []string  `json:"images,omitempty"`
}

// Baseline is a metric's value at T-0 as the version that served before.
type Baseline struct {
	Metric string    `json:"metric"`
	Result string    `json:"result"`
	Value  string    `json:"value,omitempty"`
	At     time.Time `json:"at"`
	Query  string    `json:"query,omitempty"`
}

// Request is a person's request on the release (kubectl checklist rollback, abort).
type Request struct {
	Kind      string    `json:"kind"`
	By        string    `json:"by"`
	Reason    string    `json:"reason"`
	WrittenBy string    `json:"writtenBy,omitempty"`
	State     string    `json:"state"`
	Message   string    `json:"message,omitempty"`
	At        time.Time `json:"at"`
	// After is the phase the checklist was in when the request was acted on.
	After string `json:"after,omitempty"`
}

// Rollback is what caused the rollback and when the target was restored.
type Rollback struct {
	Reason           string     `json:"reason"`
	Message          string     `json:"message,omitempty"`
	Value            string     `json:"value,omitempty"`
	FiredAt          time.Time  `json:"firedAt"`
	CompletedAt      *time.Time `json:"completedAt,omitempty"`
	DryRun           bool       `json:"dryRun,omitempty"`
	NothingToRestore bool       `json:"nothingToRestore,omitempty"`
}

// Due says whether dcl's release has ended and its record can be written: it is in a
// final phase and, rolled back, the target was seen restored (or there was nothing to
// touch).
func Due(dcl *deployv1alpha1.DeploymentChecklist) bool {
	st := &dcl.Status
	switch st.Phase {
	case deployv1alpha1.PhaseSucceeded, deployv1alpha1.PhaseFailed:
		return true
	case deployv1alpha1.PhaseRolledBack:
		return st.Rollback == nil || st.Rollback.DryRun || st.Rollback.CompletedAt != nil
	}
	return false
}

// Name is the record ConfigMap's name for dcl: the checklist's name and a hash of its
// UID, so a checklist deleted and made again under the same name gets a record of its
// own.
func Name(dcl *deployv1alpha1.DeploymentChecklist) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(dcl.UID))
	if RolledBackAfterSuccess(dcl) {
		// Its second record: the first said Succeeded, and stays.
		_, _ = h.Write([]byte("/rolled-back"))
	}
	suffix := "-" + strconv.FormatUint(uint64(h.Sum32()), 36)
	name := "tminus-record-" + dcl.Name
	if max := 253 - len(suffix); len(name) > max {
		name = name[:max]
	}
	return name + suffix
}

// RolledBackAfterSuccess says whether dcl ended Succeeded and was then rolled back at a
// person's request: it has two records, the Succeeded one and the RolledBack one.
func RolledBackAfterSuccess(dcl *deployv1alpha1.DeploymentChecklist) bool {
	rq := dcl.Status.Request
	return dcl.Status.Phase == deployv1alpha1.PhaseRolledBack && rq != nil && rq.Kind == deployv1alpha1.RequestRollback &&
		rq.State == deployv1alpha1.RequestActed && rq.After == deployv1alpha1.PhaseSucceeded
}

func ptime(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Build makes dcl's record from its status.
func Build(dcl *deployv1alpha1.DeploymentChecklist) Record {
	st := &dcl.Status
	r := Record{
		Schema: Schema,
		Checklist: Checklist{Namespace: dcl.Namespace, Name: dcl.Name, UID: string(dcl.UID),
			Revision: dcl.Spec.Revision},
		Result: string(st.Phase),
	}
	refs := dcl.Spec.TargetRefs()
	if len(refs) > 0 {
		r.Target = Target{Kind: refs[0].Kind, Name: refs[0].Name}
	}
	if t := st.Template; t != nil {
		r.Checklist.Template = &Template{Kind: t.Kind, Name: t.Name, Generation: t.Generation, Parameters: t.Parameters}
	}
	r.Timings.Created = dcl.CreationTimestamp.UTC()
	if ready := meta.FindStatusCondition(st.Conditions, "Ready"); ready != nil {
		r.Reason, r.Message = ready.Reason, ready.Message
		r.Timings.Ended = ptime(&ready.LastTransitionTime)
	}
	recorded := st.TargetsOf(&dcl.Spec)
	for i, ref := range refs {
		t := Target{Kind: ref.Kind, Name: ref.Name}
		if j := slices.IndexFunc(recorded, func(x deployv1alpha1.ReleaseTargetStatus) bool { return x.Name == ref.Name }); j >= 0 {
			ts := &recorded[j]
			t.PreDeployImages, t.PreDeployTemplateHash = ts.PreDeployImages, ts.PreDeployTemplateHash
			t.ReleasedTemplateHash = ts.ReleasedTemplateHash
			if ts.ReleasedTemplateHash != "" && ts.ReleasedTemplateHash == ts.CandidateTemplateHash {
				t.ReleasedImages = ts.CandidateImages
			}
			t.Released, t.Restored = ptime(ts.ReleasedAt), ptime(ts.RestoredAt)
			if ts.Step > 0 {
				t.Step, t.Steps = ts.Step, int32(dcl.Spec.StepCount())
			}
			// The release's timings: T-0 and the first release, the last to be available
			// and to be restored.
			r.Timings.T0 = earliest(r.Timings.T0, ptime(ts.T0At))
			r.Timings.Released = earliest(r.Timings.Released, ptime(ts.ReleasedAt))
			r.Timings.Available = latestOf(r.Timings.Available, ptime(ts.AvailableAt))
			r.Timings.Restored = latestOf(r.Timings.Restored, ptime(ts.RestoredAt))
		}
		if i == 0 {
			r.Target = t
			r.Target.Released, r.Target.Restored = nil, nil
		}
		if len(refs) > 1 {
			r.Targets = append(r.Targets, t)
		}
	}
	for _, p := range st.Phases {
		ph := Phase{Name: p.Name, State: string(p.State), OpenedAt: ptime(p.OpenedAt), CompletedAt: ptime(p.CompletedAt)}
		for _, c := range p.Checks {
			ph.Checks = append(ph.Checks, Check{Name: c.Name, Kind: c.Kind, Outcome: string(c.Outcome), Value: c.Value,
				Threshold: c.Threshold, Query: c.Query, Message: c.Message, LastEvaluated: ptime(c.LastEvaluated)})
		}
		r.Phases = append(r.Phases, ph)
	}
	for _, t := range st.Triggers {
		r.Triggers = append(r.Triggers, Trigger{Name: t.Name, Outcome: string(t.Outcome), Value: t.Value,
			Threshold: t.Threshold, BreachingSince: ptime(t.BreachingSince), Message: t.Message})
	}
	for _, a := range st.Approvals {
		r.SignOffs = append(r.SignOffs, SignOff{Role: a.Role, Approver: a.Approver, Revision: a.Revision,
			At: a.FirstSeen.UTC(), Verified: a.Verified, Counted: a.NotCounted == "", NotCounted: a.NotCounted,
			Images: a.CandidateImages})
	}
	for _, b := range st.Baselines {
		r.Baselines = append(r.Baselines, Baseline{Metric: b.Metric, Result: b.Result, Value: b.Value, At: b.At.UTC(),
			Query: b.Query})
	}
	if rb := st.Rollback; rb != nil {
		r.Rollback = &Rollback{Reason: rb.Reason, Message: rb.Message, Value: rb.Value, FiredAt: rb.FiredAt.UTC(),
			CompletedAt: ptime(rb.CompletedAt), DryRun: rb.DryRun, NothingToRestore: rb.NothingToRestore}
	}
	if rq := st.Request; rq != nil {
		r.Request = &Request{Kind: string(rq.Kind), By: rq.By, Reason: rq.Reason, WrittenBy: rq.WrittenBy,
			State: string(rq.State), Message: rq.Message, At: rq.At.UTC(), After: string(rq.After)}
	}
	if bg := st.BreakGlass; bg != nil {
		r.BreakGlass = &BreakGlass{Freezes: bg.Freezes, Reason: bg.Reason, Approvers: bg.Approvers, At: bg.At.UTC()}
	}
	// The checklist as walked: made from a template, the resolved body with the
	// checklist's own entries merged in; unresolved, its own entries alone.
	eff, err := templates.Effective(dcl)
	if err != nil {
		eff = dcl
	}
	for _, c := range eff.Spec.Contacts {
		r.Contacts = append(r.Contacts, Contact{Role: c.Role, Name: c.Name, Reach: c.Reach})
	}
	for _, rb := range eff.Spec.Runbooks {
		r.Runbooks = append(r.Runbooks, Runbook{Title: rb.Title, URL: rb.URL})
	}
	return r
}

// ConfigMap is dcl's record as the immutable ConfigMap it is kept in. It has no owner:
// deleting the checklist must not take its record with it.
func ConfigMap(dcl *deployv1alpha1.DeploymentChecklist) (*corev1.ConfigMap, error) {
	raw, err := json.MarshalIndent(Build(dcl), "", "  ")
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: Name(dcl), Namespace: dcl.Namespace,
			Labels: map[string]string{
				KindLabel: KindValue, ChecklistLabel: labelValue(dcl.Name), TargetLabel: labelValue(dcl.Spec.ShardTarget()),
				ResultLabel: string(dcl.Status.Phase),
			},
		},
		Immutable: new(true),
		Data:      map[string]string{DataKey: string(raw)},
	}, nil
}

// labelValue fits a name into a label value (63 characters).
func labelValue(s string) string {
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-._")
	}
	return s
}

// Parse reads a record from its ConfigMap.
func Parse(cm *corev1.ConfigMap) (Record, error) {
	var r Record
	raw, ok := cm.Data[DataKey]
	if !ok {
		return r, fmt.Errorf("ConfigMap %s/%s holds no %s", cm.Namespace, cm.Name, DataKey)
	}
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return r, fmt.Errorf("ConfigMap %s/%s: reading the record: %w", cm.Namespace, cm.Name, err)
	}
	return r, nil
}

func earliest(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.Before(*a)) {
		return b
	}
	return a
}

func latestOf(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}
