package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
)

// A StatefulSet is held by its rolling update's partition: at
// deployv1alpha1.HoldPartition no pod is updated to a new template, while scaling and
// restarts of the pods go on. The partition its owner set is kept in
// OwnerPartitionAnnotation and put back by the release, which rolls the pods. What
// serves is the StatefulSet's current ControllerRevision: the template a rollback
// restores. A StatefulSet with the OnDelete strategy cannot be held (its pods take a
// new template whenever they are deleted) and is never touched.

// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch

// ErrNotGateable is returned by a write to a workload tminus cannot hold.
var ErrNotGateable = errors.New("the workload cannot be gated")

// statefulSets holds, releases and restores a StatefulSet through strategyHeld, with
// the partition hold, and releases it in steps. A restore in a release in steps puts
// the owner's partition back in the same write: only the pods above the step's
// partition ran the release, those below it run the restored revision already, so
// none of them restarts.
type statefulSets struct {
	strategyHeld[*appsv1.StatefulSet]
}

var statefulSetWrites = strategyHeld[*appsv1.StatefulSet]{
	kind:     deployv1alpha1.KindStatefulSet,
	newObj:   func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} },
	template: func(s *appsv1.StatefulSet) *corev1.PodTemplateSpec { return &s.Spec.Template },
	hold:     holdStatefulSet,
	unhold:   unholdStatefulSet,
}

func (statefulSets) Kind() string { return deployv1alpha1.KindStatefulSet }

// Observe reads the StatefulSet and its ControllerRevisions.
func (statefulSets) Observe(ctx context.Context, c client.Reader, key types.NamespacedName) (checklist.TargetState, error) {
	var s appsv1.StatefulSet
	if err := c.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return checklist.TargetState{}, nil
		}
		return checklist.TargetState{}, fmt.Errorf("reading StatefulSet %s: %w", key, err)
	}
	revs, err := ControllerRevisions(ctx, c, &s)
	if err != nil {
		return checklist.TargetState{}, err
	}
	return StatefulSetState(&s, revs), nil
}

// ControllerRevisions lists the ControllerRevisions the StatefulSet owns (those its
// selector matches, of which those it controls).
func ControllerRevisions(ctx context.Context, c client.Reader, s *appsv1.StatefulSet) ([]appsv1.ControllerRevision, error) {
	return ownedRevisions(ctx, c, deployv1alpha1.KindStatefulSet, s, s.Spec.Selector)
}

// statefulSetHeld says whether the StatefulSet stands at tminus's hold partition.
func statefulSetHeld(s *appsv1.StatefulSet) bool {
	ru := s.Spec.UpdateStrategy.RollingUpdate
	return rollingUpdate(s) && ru != nil && ru.Partition != nil && *ru.Partition >= deployv1alpha1.HoldPartition
}

func rollingUpdate(s *appsv1.StatefulSet) bool {
	return s.Spec.UpdateStrategy.Type == "" || s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType
}

// NotGateableStatefulSet says why tminus cannot hold the StatefulSet, "" when it can.
func NotGateableStatefulSet(s *appsv1.StatefulSet) string {
	if rollingUpdate(s) {
		return ""
	}
	return fmt.Sprintf("StatefulSet %s uses the update strategy %s: its pods take a new template whenever they are deleted, "+
		"so tminus can neither hold a release nor roll it back without deleting pods; it is left untouched. "+
		"Use the RollingUpdate strategy to gate it", s.Name, s.Spec.UpdateStrategy.Type)
}

// revisionTemplate decodes the pod template a StatefulSet's ControllerRevision keeps
// (the StatefulSet controller stores {"spec":{"template":{...}}}).
func revisionTemplate(r *appsv1.ControllerRevision) *corev1.PodTemplateSpec {
	var data struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	raw := r.Data.Raw
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil
	}
	return data.Spec.Template
}

// statefulSetRevisions is what the StatefulSet's ControllerRevisions say: each one's
// template hash, and which of them ran pods.
type statefulSetRevisions struct {
	current, update *appsv1.ControllerRevision
	hashes          map[string]string // ControllerRevision name -> template hash
	templates       map[string]*corev1.PodTemplateSpec
}

func readRevisions(s *appsv1.StatefulSet, revs []appsv1.ControllerRevision) statefulSetRevisions {
	r := statefulSetRevisions{hashes: map[string]string{}, templates: map[string]*corev1.PodTemplateSpec{}}
	for i := range revs {
		rev := &revs[i]
		if tmpl := revisionTemplate(rev); tmpl != nil {
			r.templates[rev.Name] = tmpl
			r.hashes[rev.Name] = gate.TemplateHash(tmpl)
		}
		if rev.Name == s.Status.CurrentRevision {
			r.current = rev
		}
		if rev.Name == s.Status.UpdateRevision {
			r.update = rev
		}
	}
	return r
}

// ran says whether pods ran the revision: the current one, the update one once a pod
// took it, and those older than the current one (a revision made for a template held
// before it rolled is newer than the current one and never ran).
func (r *statefulSetRevisions) ran(s *appsv1.StatefulSet, rev *appsv1.ControllerRevision) bool {
	switch {
	case rev.Name == s.Status.CurrentRevision:
		return true
	case rev.Name == s.Status.UpdateRevision && s.Status.UpdatedReplicas > 0:
		return true
	}
	return r.current != nil && rev.Revision < r.current.Revision
}

// statefulSetSettled says whether the StatefulSet controller saw the current
// generation and every pod runs one revision (a held StatefulSet, whose update
// revision no pod took, is settled on its current one).
func statefulSetSettled(s *appsv1.StatefulSet) bool {
	return s.Status.ObservedGeneration >= s.Generation &&
		(s.Status.CurrentRevision == s.Status.UpdateRevision || s.Status.UpdatedReplicas == 0)
}

// StatefulSetState is what the engine needs of a StatefulSet and its ControllerRevisions.
func StatefulSetState(s *appsv1.StatefulSet, revs []appsv1.ControllerRevision) checklist.TargetState {
	replicas := int32(1)
	if s.Spec.Replicas != nil {
		replicas = *s.Spec.Replicas
	}
	r := readRevisions(s, revs)
	t := checklist.TargetState{
		Found:              true,
		Paused:             statefulSetHeld(s),
		Generation:         s.Generation,
		ObservedGeneration: s.Status.ObservedGeneration,
		Replicas:           replicas,
		UpdatedReplicas:    s.Status.UpdatedReplicas,
		AvailableReplicas:  s.Status.AvailableReplicas,
		TotalReplicas:      s.Status.Replicas,
		Available:          s.Status.AvailableReplicas >= replicas,
		Template:           s.Spec.Template.DeepCopy(),
		TemplateHash:       gate.TemplateHash(&s.Spec.Template),
		TemplateImages:     gate.Images(&s.Spec.Template),
		HeldBy:             s.Annotations[deployv1alpha1.HeldByAnnotation],
		HeldTemplate:       s.Annotations[deployv1alpha1.HeldTemplateAnnotation],
		ReleasedRevisions:  releasedRevisionsOf(s),
		GateLabel:          s.Labels[deployv1alpha1.GatedLabel],
		Labels:             s.Labels,
		NotGateable:        NotGateableStatefulSet(s),
		Settled:            statefulSetSettled(s),
		PodTemplateHashes:  map[string]string{},
	}
	if r.update != nil {
		t.Revision = strconv.FormatInt(r.update.Revision, 10)
		t.UpdateHash = r.hashes[r.update.Name]
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		t.Partition = *ru.Partition
	}
	t.OwnerPartition = ownerPartitionOf(s)
	for i := range revs {
		rev := &revs[i]
		h := r.hashes[rev.Name]
		if h == "" {
			continue
		}
		// Pods carry their revision's name in the controller-revision-hash label.
		t.PodTemplateHashes[h] = rev.Name
		if h == t.TemplateHash && r.ran(s, rev) &&
			(t.TemplateFirstRan.IsZero() || rev.CreationTimestamp.Time.Before(t.TemplateFirstRan)) {
			t.TemplateFirstRan = rev.CreationTimestamp.Time
		}
	}
	if t.Settled && r.current != nil && r.templates[r.current.Name] != nil {
		t.Serving = r.templates[r.current.Name].DeepCopy()
		t.ServingHash = r.hashes[r.current.Name]
		t.ServingRevision = strconv.FormatInt(r.current.Revision, 10)
		t.ServingPodTemplateHash = r.current.Name
	}
	return t
}

// StatefulSetGateView is what the admission rule needs of a StatefulSet: its revisions
// that ran pods stand for a Deployment's ReplicaSets.
func StatefulSetGateView(s *appsv1.StatefulSet, revs []appsv1.ControllerRevision) gate.Deployment {
	g := gate.Deployment{
		Kind:         deployv1alpha1.KindStatefulSet,
		Namespace:    s.Namespace,
		Name:         s.Name,
		TemplateHash: gate.TemplateHash(&s.Spec.Template),
		Images:       gate.Images(&s.Spec.Template),
		Paused:       statefulSetHeld(s),
		HeldBy:       s.Annotations[deployv1alpha1.HeldByAnnotation],
		HeldTemplate: s.Annotations[deployv1alpha1.HeldTemplateAnnotation],
		RolledBack:   gate.ParseRolledBack(s.Annotations[deployv1alpha1.RolledBackAnnotation]),
		Refused:      gate.ParseRefusals(s.Annotations[deployv1alpha1.RefusedTemplatesAnnotation]),
		GateLabel:    s.Labels[deployv1alpha1.GatedLabel],
	}
	r := readRevisions(s, revs)
	for i := range revs {
		rev := &revs[i]
		if r.hashes[rev.Name] == "" || !r.ran(s, rev) {
			continue
		}
		var pods int32
		switch rev.Name {
		case s.Status.UpdateRevision:
			pods = s.Status.UpdatedReplicas
		case s.Status.CurrentRevision:
			pods = s.Status.CurrentReplicas
		}
		g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{Hash: r.hashes[rev.Name], Created: rev.CreationTimestamp.Time, Replicas: pods})
	}
	return g
}

// statefulSetStepped says whether tminus releases the StatefulSet in steps: its
// partition is a step's, the owner's is kept in OwnerPartitionAnnotation.
func statefulSetStepped(s *appsv1.StatefulSet) bool {
	return s.Annotations[deployv1alpha1.StepAnnotation] != ""
}

// ownerPartitionOf is the partition the StatefulSet's owner set: the one kept while
// tminus holds or steps it, or the one it has.
func ownerPartitionOf(s *appsv1.StatefulSet) int32 {
	if statefulSetHeld(s) || statefulSetStepped(s) {
		if p := keptPartition(s); p != nil {
			return *p
		}
		return 0
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return *ru.Partition
	}
	return 0
}

// keptPartition is the owner's partition OwnerPartitionAnnotation keeps, nil when none.
func keptPartition(s *appsv1.StatefulSet) *int32 {
	v, err := strconv.ParseInt(s.Annotations[deployv1alpha1.OwnerPartitionAnnotation], 10, 32)
	if err != nil || v < 0 || int32(v) >= deployv1alpha1.HoldPartition {
		return nil
	}
	return new(int32(v))
}

// holdStatefulSet sets the hold partition, keeping the owner's.
func holdStatefulSet(s *appsv1.StatefulSet) error {
	if why := NotGateableStatefulSet(s); why != "" {
		return fmt.Errorf("%w: %s", ErrNotGateable, why)
	}
	if !statefulSetHeld(s) && !statefulSetStepped(s) {
		annotate(s, deployv1alpha1.OwnerPartitionAnnotation, OwnerPartition(s.Spec.UpdateStrategy.RollingUpdate))
	}
	if s.Spec.UpdateStrategy.RollingUpdate == nil {
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
	}
	s.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	s.Spec.UpdateStrategy.RollingUpdate.Partition = new(deployv1alpha1.HoldPartition)
	return nil
}

// OwnerPartition is the partition a rolling update sets, as OwnerPartitionAnnotation
// keeps it: "" when none is set.
func OwnerPartition(ru *appsv1.RollingUpdateStatefulSetStrategy) string {
	if ru == nil || ru.Partition == nil {
		return ""
	}
	return strconv.Itoa(int(*ru.Partition))
}

// unholdStatefulSet puts the owner's partition back and takes tminus's hold marks off.
func unholdStatefulSet(s *appsv1.StatefulSet) {
	if (statefulSetHeld(s) || statefulSetStepped(s)) && s.Spec.UpdateStrategy.RollingUpdate != nil {
		s.Spec.UpdateStrategy.RollingUpdate.Partition = keptPartition(s)
	}
	delete(s.Annotations, deployv1alpha1.OwnerPartitionAnnotation)
	delete(s.Annotations, deployv1alpha1.StepAnnotation)
	delete(s.Annotations, deployv1alpha1.HeldByAnnotation)
	delete(s.Annotations, deployv1alpha1.HoldReasonAnnotation)
	delete(s.Annotations, deployv1alpha1.HeldTemplateAnnotation)
}

// ReleaseStep releases a step of a release in steps if the StatefulSet still holds
// templateHash: the partition goes to replicas - pods (never below the owner's, kept
// in OwnerPartitionAnnotation until the last step puts it back), so the pods at and
// above it take the template; step ("1 of 2") goes in StepAnnotation and the revision
// is recorded as released. Lowering the partition never restarts a pod below it.
func (w statefulSets) ReleaseStep(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	revision, templateHash string, pods int32, step string) error {
	return w.update(ctx, c, fresh, key, func(s *appsv1.StatefulSet) error {
		if err := holdsTemplate(deployv1alpha1.KindStatefulSet, s, &s.Spec.Template, templateHash, "the release of "+revision); err != nil {
			return err
		}
		if !rollingUpdate(s) {
			return fmt.Errorf("%w: %s", ErrNotGateable, NotGateableStatefulSet(s))
		}
		if !statefulSetHeld(s) && !statefulSetStepped(s) {
			annotate(s, deployv1alpha1.OwnerPartitionAnnotation, OwnerPartition(s.Spec.UpdateStrategy.RollingUpdate))
		}
		owner := int32(0)
		if p := keptPartition(s); p != nil {
			owner = *p
		}
		replicas := int32(1)
		if s.Spec.Replicas != nil {
			replicas = *s.Spec.Replicas
		}
		if s.Spec.UpdateStrategy.RollingUpdate == nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		s.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		partition := checklist.StepPartition(replicas, pods, owner)
		if cur := s.Spec.UpdateStrategy.RollingUpdate.Partition; statefulSetStepped(s) && cur != nil && *cur < partition {
			// A step never takes the release back from pods a step before exposed.
			partition = *cur
		}
		s.Spec.UpdateStrategy.RollingUpdate.Partition = new(partition)
		annotate(s, deployv1alpha1.StepAnnotation, step)
		delete(s.Annotations, deployv1alpha1.HeldByAnnotation)
		delete(s.Annotations, deployv1alpha1.HoldReasonAnnotation)
		delete(s.Annotations, deployv1alpha1.HeldTemplateAnnotation)
		recordRelease(s, revision)
		return nil
	})
}
