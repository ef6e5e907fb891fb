package checklist

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// A release in steps (spec.release.steps) exposes each StatefulSet's new template a
// few pods at a time, by its rolling update's partition. At T-0 the partition goes to
// replicas - pods of the first step; once those pods (the highest ordinals) run the
// release and every pod is ready, the step's T-plus phase opens, its `at` counted from
// then, and judges the updated pods ({{podTemplateHash}} is the update revision's).
// When it passes, the next step lowers the partition; after the last one every pod
// takes the release (the owner's partition) and the T-plus phases no step names run as
// without steps. Rollback triggers watch every step; a failure at any step restores
// the pre-deploy template, and only the pods updated so far, those above the
// partition, roll back: the others already run the restored revision.

// stepPlan is one step of spec.release.steps.
type stepPlan struct {
	pods  intstr.IntOrString
	phase phasePlan
}

// parseSteps reads spec.release.steps against the T-plus phases (the CRD refuses most
// mistakes; a checklist made from a template is checked here, once resolved), and
// splits the T-plus phases into the steps' and the rest (after).
func (p *plan) parseSteps(spec *deployv1alpha1.DeploymentChecklistSpec) error {
	var steps []deployv1alpha1.ReleaseStep
	if spec.Release != nil {
		steps = spec.Release.Steps
	}
	used := map[string]bool{}
	last := map[bool]int32{} // the last step's pods, by percent or count
	for i, s := range steps {
		field := fmt.Sprintf("spec.release.steps[%d]", i)
		pods, err := parseStepPods(s.Pods)
		if err != nil {
			return fmt.Errorf("%s.pods: %w", field, err)
		}
		if pods.n <= last[pods.percent] {
			return fmt.Errorf("%s.pods: %s does not increase on an earlier step's; pods increase from one step to the next "+
				"(pod counts among counts, percentages among percentages)", field, s.Pods.String())
		}
		last[pods.percent] = pods.n
		j := slices.IndexFunc(p.tplus, func(ph phasePlan) bool { return ph.spec.Name == s.Phase })
		if j < 0 {
			return fmt.Errorf("%s.phase: %q is not a T-plus phase (at > 0) of spec.phases", field, s.Phase)
		}
		if used[s.Phase] {
			return fmt.Errorf("%s.phase: %q already follows another step; each phase may follow one step only", field, s.Phase)
		}
		used[s.Phase] = true
		p.steps = append(p.steps, stepPlan{pods: s.Pods, phase: p.tplus[j]})
	}
	for _, ph := range p.tplus {
		if !used[ph.spec.Name] {
			p.after = append(p.after, ph)
		}
	}
	return nil
}

// stepPods is a step's pods as a count or a percentage (percent true).
type stepPods struct {
	n       int32
	percent bool
}

func parseStepPods(v intstr.IntOrString) (stepPods, error) {
	if v.Type == intstr.Int {
		if v.IntVal < 1 {
			return stepPods{}, fmt.Errorf("%d: a step exposes at least one pod", v.IntVal)
		}
		return stepPods{n: v.IntVal}, nil
	}
	num, ok := strings.CutSuffix(v.StrVal, "%")
	n, err := strconv.ParseInt(num, 10, 32)
	if !ok || err != nil || n < 1 || n > 100 {
		return stepPods{}, fmt.Errorf("%q is neither a pod count nor a percentage from 1%% to 100%%", v.StrVal)
	}
	return stepPods{n: int32(n), percent: true}, nil
}

// StepPods is how many of replicas pods a step exposes: a count (at most replicas) or a
// percentage of replicas rounded up, at least one pod (none of none).
func StepPods(v intstr.IntOrString, replicas int32) int32 {
	p, err := parseStepPods(v)
	if err != nil || replicas <= 0 {
		return 0
	}
	n := p.n
	if p.percent {
		n = int32(math.Ceil(float64(p.n) * float64(replicas) / 100))
	}
	return max(1, min(n, replicas))
}

// StepPartition is the partition of a StatefulSet of replicas pods at a step exposing
// pods of them, its owner's partition being owner: the pods at and above it run the
// new template. Never below the owner's.
func StepPartition(replicas, pods, owner int32) int32 {
	return max(owner, replicas-pods, 0)
}

// stepped says whether the target at hand is released in steps: the release has them,
// the target is a StatefulSet and the gate writes to it.
func (e *engine) stepped() bool {
	return len(e.p.steps) > 0 && e.pauses() && kindOf(e.ref()) == deployv1alpha1.KindStatefulSet
}

// step is the step of the release now (status.targets[].step of the released
// targets, which move together): 0 without steps.
func (e *engine) step() int {
	defer func(cur int) { e.cur = cur }(e.cur)
	for _, i := range e.releasedTargets() {
		if e.cur = i; e.ts().Step > 0 {
			return int(e.ts().Step)
		}
	}
	return 0
}

// releaseAction is the release of the target at hand: in a release in steps, of its
// step's pods, while a step with a phase is on.
func (e *engine) releaseAction() Action {
	a := Action{Kind: ActionRelease, Revision: e.revision(), TemplateHash: e.ts().ReleasedTemplateHash}
	if k := int(e.ts().Step); k >= 1 && k <= len(e.p.steps) {
		a.Pods = max(1, StepPods(e.p.steps[k-1].pods, e.tobs().Replicas))
		a.Step = fmt.Sprintf("%d of %d", k, e.spec.StepCount())
	}
	return a
}

// stepWant is how many pods of the target at hand step k exposes: its pods, never
// those below the owner's partition.
func (e *engine) stepWant(k int) int32 {
	t := e.tobs()
	want := t.Replicas - t.OwnerPartition
	if k >= 1 && k <= len(e.p.steps) {
		want = min(want, StepPods(e.p.steps[k-1].pods, t.Replicas))
	}
	return max(want, 0)
}

// stepReady says whether the target at hand exposes want pods: the partition of the
// step is written, the StatefulSet controller saw it, want pods run the released
// template (its update revision) and every pod is ready.
func (e *engine) stepReady(want int32) bool {
	t := e.tobs()
	return t.ObservedGeneration >= t.Generation && t.UpdateHash == e.ts().ReleasedTemplateHash &&
		t.Partition <= t.Replicas-want && t.UpdatedReplicas >= want &&
		t.AvailableReplicas >= t.Replicas && t.TotalReplicas == t.Replicas
}

// stepBaseAt is when the pods of the step now were all ready (status.targets[].stepReadyAt).
func (e *engine) stepBaseAt() *metav1.Time {
	for _, i := range e.releasedTargets() {
		if at := e.tsAt(i).StepReadyAt; at != nil {
			return at
		}
	}
	return nil
}

// onStep is "step 1 of 2", for messages.
func (e *engine) onStep(k int) string { return fmt.Sprintf("step %d of %d", k, e.spec.StepCount()) }

// exposure says, for the released targets, how many pods run the release: "1 of 3
// pods of StatefulSet db on the new revision".
func (e *engine) exposure() string {
	defer func(cur int) { e.cur = cur }(e.cur)
	released := e.releasedTargets()
	parts := make([]string, 0, len(released))
	for _, i := range released {
		e.cur = i
		t := e.tobs()
		on := t.UpdatedReplicas
		if t.UpdateHash != e.ts().ReleasedTemplateHash {
			on = 0
		}
		s := fmt.Sprintf("%d of %d pods on the new revision", on, t.Replicas)
		if len(e.refs) > 1 {
			s = fmt.Sprintf("%d of %d pods of %s on the new revision", on, t.Replicas, e.tdesc())
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// steps walks a release in steps while a step with a phase is on, and reports whether
// the steps are done (or there are none): the rollout of every pod is then waited for
// as without steps.
func (e *engine) steps() bool {
	k := e.step()
	if k == 0 {
		return true
	}
	released := e.releasedTargets()
	e.stepWritten(k)
	if k > len(e.p.steps) {
		return true
	}
	ready := true
	for _, i := range released {
		e.cur = i
		ready = ready && e.stepReady(e.stepWant(k))
	}
	if !ready {
		e.st.CurrentPhase = ""
		e.next = fmt.Sprintf("%s: %s; waiting for the step's pods to be updated and ready", e.onStep(k), e.exposure())
		e.pollIn(e.p.interval)
		return false
	}
	ph := e.p.steps[k-1].phase
	if e.stepBaseAt() == nil {
		now := e.stamp()
		for _, i := range released {
			e.tsAt(i).StepReadyAt = &now
		}
		e.event(corev1.EventTypeNormal, ReasonStepReady, fmt.Sprintf("%s: %s, every pod ready; %s judges the updated pods",
			e.onStep(k), e.exposure(), ph.spec.Name))
	}
	e.stepBase = e.stepBaseAt()
	passed := e.walk([]phasePlan{ph}, true)
	e.stepBase = nil
	if !passed {
		if !terminal(e.st.Phase) {
			e.next = fmt.Sprintf("%s (%s): %s", e.onStep(k), e.exposure(), e.next)
		}
		return false
	}
	k++
	for _, i := range released {
		e.cur = i
		ts := e.ts()
		ts.Step, ts.StepReadyAt = int32(k), nil
		e.action(e.releaseAction())
	}
	what := "every pod"
	if k <= len(e.p.steps) {
		what = podsText(e.p.steps[k-1].pods)
	}
	e.event(corev1.EventTypeNormal, ReasonStepReleased, fmt.Sprintf("%s passed (%s); %s: releasing %s",
		e.onStep(k-1), ph.spec.Name, e.onStep(k), what))
	e.next = fmt.Sprintf("%s: releasing %s", e.onStep(k), what)
	e.pollIn(e.p.interval)
	return false
}

// stepNote is, during a step with a phase, what a rollback message starts with: "step
// 1 of 2 (1 of 3 pods on the new revision): ". "" otherwise.
func (e *engine) stepNote() string {
	if e.p == nil || e.st.Phase != deployv1alpha1.PhaseDeploying {
		return ""
	}
	if k := e.step(); k >= 1 && k <= len(e.p.steps) {
		return fmt.Sprintf("%s (%s): ", e.onStep(k), e.exposure())
	}
	return ""
}

// stepWritten releases step k again on a released target whose partition is still
// above the step's (the write was lost, or failed and is retried): it is idempotent
// and conditional on the released template like every release.
func (e *engine) stepWritten(k int) {
	if e.released {
		return
	}
	for _, i := range e.releasedTargets() {
		e.cur = i
		t := e.tobs()
		if !e.stepped() || !t.Found || t.Paused || t.TemplateHash != e.ts().ReleasedTemplateHash {
			continue
		}
		if t.Partition > max(t.OwnerPartition, t.Replicas-e.stepWant(k)) {
			e.action(e.releaseAction())
		}
	}
}

// podsText says a step's pods as messages do: "1 pod", "2 pods", "50% of the pods".
func podsText(v intstr.IntOrString) string {
	switch {
	case v.Type == intstr.String:
		return v.StrVal + " of the pods"
	case v.IntVal == 1:
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", v.IntVal)
}
