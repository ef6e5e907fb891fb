package target

import (
	"context"
	"encoding/json"
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

// A DaemonSet is held by switching its update strategy to OnDelete: the DaemonSet
// controller then replaces no pod on its own. The owner's strategy (RollingUpdate with
// its maxUnavailable and maxSurge) is kept in OwnerStrategyAnnotation and put back by
// the release, which rolls the pods. A DaemonSet whose owner chose OnDelete cannot be
// held that way, nor one that runs on no node: both are reported and never touched.

// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get;list;watch;update;patch

func (daemonSets) Kind() string { return deployv1alpha1.KindDaemonSet }

// daemonSetHeld says whether tminus holds the DaemonSet: OnDelete with the owner's
// strategy kept aside.
func daemonSetHeld(ds *appsv1.DaemonSet) bool {
	_, kept := ds.Annotations[deployv1alpha1.OwnerStrategyAnnotation]
	return ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType && kept
}

// NotGateableDaemonSet says why tminus cannot hold the DaemonSet, "" when it can.
func NotGateableDaemonSet(ds *appsv1.DaemonSet) string {
	switch {
	case ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType && !daemonSetHeld(ds):
		return fmt.Sprintf("DaemonSet %s uses the update strategy OnDelete: its pods take a new template whenever they are "+
			"deleted, so tminus can neither hold a release nor roll it back without deleting pods; it is left untouched. "+
			"Use the RollingUpdate strategy to gate it", ds.Name)
	case ds.Status.ObservedGeneration >= ds.Generation && ds.Status.DesiredNumberScheduled == 0:
		return fmt.Sprintf("DaemonSet %s runs on no node (its node selector, affinity or tolerations match none): "+
			"there is nothing to release or verify; it is left untouched", ds.Name)
	}
	return ""
}

// Observe reads the DaemonSet and its ControllerRevisions.
func (daemonSets) Observe(ctx context.Context, c client.Reader, key types.NamespacedName) (checklist.TargetState, error) {
	var ds appsv1.DaemonSet
	if err := c.Get(ctx, key, &ds); err != nil {
		if apierrors.IsNotFound(err) {
			return checklist.TargetState{}, nil
		}
		return checklist.TargetState{}, fmt.Errorf("reading DaemonSet %s: %w", key, err)
	}
	revs, err := DaemonSetControllerRevisions(ctx, c, &ds)
	if err != nil {
		return checklist.TargetState{}, err
	}
	return DaemonSetState(&ds, revs), nil
}

// DaemonSetControllerRevisions lists the ControllerRevisions the DaemonSet owns.
func DaemonSetControllerRevisions(ctx context.Context, c client.Reader, ds *appsv1.DaemonSet) ([]appsv1.ControllerRevision, error) {
	return ownedRevisions(ctx, c, deployv1alpha1.KindDaemonSet, ds, ds.Spec.Selector)
}

// DaemonSetState is what the engine needs of a DaemonSet and its ControllerRevisions.
// Every scheduled pod runs the template (updatedNumberScheduled) or none does: either
// way it is settled, and so it is when the pods that run it were recreated under
// tminus's hold (OnDelete keeps the others where they are). What serves is the template once every pod runs it; while tminus holds the
// DaemonSet it is the template recorded when the hold began (ServingTemplateAnnotation:
// a DaemonSet has no currentRevision), whatever templates were held since. Nothing
// serves when neither says: it is never guessed from revision numbers. A pod recreated
// under the hold runs the held template, which does not make it one the DaemonSet ran
// (TemplateFirstRan stays zero). As for a Deployment, whether the pods are available
// does not change what they run.
func DaemonSetState(ds *appsv1.DaemonSet, revs []appsv1.ControllerRevision) checklist.TargetState {
	st := ds.Status
	t := checklist.TargetState{
		Found:              true,
		Paused:             daemonSetHeld(ds),
		Generation:         ds.Generation,
		ObservedGeneration: st.ObservedGeneration,
		Replicas:           st.DesiredNumberScheduled,
		UpdatedReplicas:    st.UpdatedNumberScheduled,
		AvailableReplicas:  st.NumberAvailable,
		TotalReplicas:      st.CurrentNumberScheduled,
		Available:          st.NumberAvailable >= st.DesiredNumberScheduled,
		Template:           ds.Spec.Template.DeepCopy(),
		TemplateHash:       gate.TemplateHash(&ds.Spec.Template),
		TemplateImages:     gate.Images(&ds.Spec.Template),
		HeldBy:             ds.Annotations[deployv1alpha1.HeldByAnnotation],
		HeldTemplate:       ds.Annotations[deployv1alpha1.HeldTemplateAnnotation],
		ReleasedRevisions:  releasedRevisionsOf(ds),
		GateLabel:          ds.Labels[deployv1alpha1.GatedLabel],
		Labels:             ds.Labels,
		NotGateable:        NotGateableDaemonSet(ds),
		PodTemplateHashes:  map[string]string{},
	}
	underHold := startedUnderHold(ds, t.TemplateHash)
	kept := keptServing(ds)
	allUpdated := st.UpdatedNumberScheduled >= st.DesiredNumberScheduled && st.DesiredNumberScheduled > 0
	t.Settled = st.ObservedGeneration >= ds.Generation && (allUpdated || st.UpdatedNumberScheduled == 0 || underHold)
	for i := range revs {
		rev := &revs[i]
		tmpl := revisionTemplate(rev)
		if tmpl == nil {
			continue
		}
		h := gate.TemplateHash(tmpl)
		t.PodTemplateHashes[h] = rev.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		if t.Settled && (gate.SameTemplate(kept, h) || (kept == "" && h == t.TemplateHash && allUpdated && !underHold)) {
			t.Serving, t.ServingHash = tmpl, h
			t.ServingRevision = strconv.FormatInt(rev.Revision, 10)
			t.ServingPodTemplateHash = rev.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		}
		if h != t.TemplateHash {
			continue
		}
		t.Revision = strconv.FormatInt(rev.Revision, 10)
		if st.UpdatedNumberScheduled > 0 && !underHold {
			t.TemplateFirstRan = rev.CreationTimestamp.Time
		}
	}
	return t
}

// keptServing is the template hash ServingTemplateAnnotation records while tminus holds
// the DaemonSet, "" when it does not hold it or recorded none.
func keptServing(ds *appsv1.DaemonSet) string {
	if !daemonSetHeld(ds) {
		return ""
	}
	return ds.Annotations[deployv1alpha1.ServingTemplateAnnotation]
}

// startedUnderHold says whether the pods of the template (hash) that stored's status
// counts as updated started under tminus's OnDelete hold: stored is held, and the
// template is not the one recorded as serving when the hold began (or, on a hold
// recorded without it, is the held change). Such pods were recreated (a new node, an
// eviction, a deleted pod) on a template no checklist released.
func startedUnderHold(stored *appsv1.DaemonSet, hash string) bool {
	if !daemonSetHeld(stored) {
		return false
	}
	if kept := stored.Annotations[deployv1alpha1.ServingTemplateAnnotation]; kept != "" {
		return !gate.SameTemplate(kept, hash)
	}
	return gate.SameTemplate(stored.Annotations[deployv1alpha1.HeldTemplateAnnotation], hash)
}

// runsTemplate says whether every pod the DaemonSet schedules runs its template, as its
// controller last saw it.
func runsTemplate(ds *appsv1.DaemonSet) bool {
	st := ds.Status
	return st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled > 0 &&
		st.UpdatedNumberScheduled >= st.DesiredNumberScheduled
}

// DaemonSetServingTemplate is the template hash a hold of the DaemonSet as stored keeps
// as serving (ServingTemplateAnnotation): the one kept when it is held already, else its
// template once every pod runs it; "" when neither (nothing is guessed).
func DaemonSetServingTemplate(stored *appsv1.DaemonSet) string {
	if daemonSetHeld(stored) {
		return stored.Annotations[deployv1alpha1.ServingTemplateAnnotation]
	}
	if runsTemplate(stored) {
		return gate.TemplateHash(&stored.Spec.Template)
	}
	return ""
}

// HeldTemplateRunning is how many of the held DaemonSet's pods run its template though
// they started under tminus's hold, and the ControllerRevision hash that labels them
// (controller-revision-hash); 0 when none.
func HeldTemplateRunning(ds *appsv1.DaemonSet, revs []appsv1.ControllerRevision) (pods int32, revisionHash string) {
	h := gate.TemplateHash(&ds.Spec.Template)
	if ds.Status.UpdatedNumberScheduled == 0 || ds.Status.ObservedGeneration < ds.Generation || !startedUnderHold(ds, h) {
		return 0, ""
	}
	for i := range revs {
		if tmpl := revisionTemplate(&revs[i]); tmpl != nil && gate.TemplateHash(tmpl) == h {
			revisionHash = revs[i].Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		}
	}
	return ds.Status.UpdatedNumberScheduled, revisionHash
}

// holdDaemonSet switches the DaemonSet to OnDelete, keeping the owner's strategy.
func holdDaemonSet(ds *appsv1.DaemonSet) error {
	if why := NotGateableDaemonSet(ds); why != "" {
		return fmt.Errorf("%w: %s", ErrNotGateable, why)
	}
	if daemonSetHeld(ds) {
		return nil
	}
	raw, err := json.Marshal(ds.Spec.UpdateStrategy)
	if err != nil {
		return err
	}
	annotate(ds, deployv1alpha1.OwnerStrategyAnnotation, string(raw))
	if serving := DaemonSetServingTemplate(ds); serving != "" {
		annotate(ds, deployv1alpha1.ServingTemplateAnnotation, serving)
	} else {
		delete(ds.Annotations, deployv1alpha1.ServingTemplateAnnotation)
	}
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	return nil
}

// unholdDaemonSet puts the owner's strategy back and takes tminus's hold marks off.
func unholdDaemonSet(ds *appsv1.DaemonSet) {
	if daemonSetHeld(ds) {
		var owner appsv1.DaemonSetUpdateStrategy
		if err := json.Unmarshal([]byte(ds.Annotations[deployv1alpha1.OwnerStrategyAnnotation]), &owner); err != nil || owner.Type == "" {
			// Unreadable: the API's default.
			owner = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}
		}
		ds.Spec.UpdateStrategy = owner
	}
	delete(ds.Annotations, deployv1alpha1.OwnerStrategyAnnotation)
	delete(ds.Annotations, deployv1alpha1.ServingTemplateAnnotation)
	delete(ds.Annotations, deployv1alpha1.HeldByAnnotation)
	delete(ds.Annotations, deployv1alpha1.HoldReasonAnnotation)
	delete(ds.Annotations, deployv1alpha1.HeldTemplateAnnotation)
}

// daemonSets holds, releases and restores a DaemonSet through strategyHeld, with the
// OnDelete hold.
type daemonSets struct {
	strategyHeld[*appsv1.DaemonSet]
}

var daemonSetWrites = strategyHeld[*appsv1.DaemonSet]{
	kind:     deployv1alpha1.KindDaemonSet,
	newObj:   func() *appsv1.DaemonSet { return &appsv1.DaemonSet{} },
	template: func(ds *appsv1.DaemonSet) *corev1.PodTemplateSpec { return &ds.Spec.Template },
	hold:     holdDaemonSet,
	unhold:   unholdDaemonSet,
}

// DaemonSetGateView is what the gate rule needs of a DaemonSet (ds, as written) whose
// stored state is stored (ds itself outside admission): stored's status counts the pods
// of stored's template, and its hold marks say which of them started under tminus's
// hold. The revisions that ran pods stand for a Deployment's ReplicaSets: the one of
// the template the status counts pods of, once a pod took it, the one recorded as
// serving when the hold began, and every older one. A template whose pods started
// under the hold (recreated on the held template) is not one the DaemonSet ran.
func DaemonSetGateView(ds, stored *appsv1.DaemonSet, revs []appsv1.ControllerRevision) gate.Deployment {
	g := gate.Deployment{
		Kind:         deployv1alpha1.KindDaemonSet,
		Namespace:    ds.Namespace,
		Name:         ds.Name,
		TemplateHash: gate.TemplateHash(&ds.Spec.Template),
		Images:       gate.Images(&ds.Spec.Template),
		Paused:       daemonSetHeld(ds),
		HeldBy:       ds.Annotations[deployv1alpha1.HeldByAnnotation],
		HeldTemplate: ds.Annotations[deployv1alpha1.HeldTemplateAnnotation],
		RolledBack:   gate.ParseRolledBack(ds.Annotations[deployv1alpha1.RolledBackAnnotation]),
		Refused:      gate.ParseRefusals(ds.Annotations[deployv1alpha1.RefusedTemplatesAnnotation]),
		GateLabel:    ds.Labels[deployv1alpha1.GatedLabel],
	}
	st := stored.Status
	counted := gate.TemplateHash(&stored.Spec.Template)
	ranCounted := st.UpdatedNumberScheduled > 0 && !startedUnderHold(stored, counted)
	kept := keptServing(stored)
	hashes := make(map[string]string, len(revs))
	var newestRan int64 = -1
	for i := range revs {
		tmpl := revisionTemplate(&revs[i])
		if tmpl == nil {
			continue
		}
		h := gate.TemplateHash(tmpl)
		hashes[revs[i].Name] = h
		if (h == counted && ranCounted) || gate.SameTemplate(kept, h) {
			newestRan = max(newestRan, revs[i].Revision)
		}
	}
	for i := range revs {
		rev := &revs[i]
		h := hashes[rev.Name]
		switch {
		case h == "":
		case h == counted && ranCounted:
			g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{Hash: h, Created: rev.CreationTimestamp.Time, Replicas: st.UpdatedNumberScheduled})
		case rev.Revision <= newestRan:
			g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{Hash: h, Created: rev.CreationTimestamp.Time})
		}
	}
	if ranCounted && st.UpdatedNumberScheduled < st.DesiredNumberScheduled {
		// Mid-rollout: the pods not updated run an older revision, whichever it is. Under
		// tminus's hold, pods recreated on the held template are no rollout: OnDelete
		// keeps every pod where it is.
		g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{Replicas: st.DesiredNumberScheduled - st.UpdatedNumberScheduled})
	}
	return g
}

// HeldPods are the pods of a DaemonSet tminus holds that run its held template: they
// were created under the hold (a new node, an eviction, a deleted pod), which OnDelete
// cannot prevent.
type HeldPods struct {
	// Pods is how many run the held template; 0 when none.
	Pods int32
	// RevisionHash labels them (controller-revision-hash).
	RevisionHash string
	// Images are the held template's, ServingImages those of the template that serves
	// (none when unknown).
	Images, ServingImages []string
}

// DaemonSetHeldPods tells how many of the DaemonSet's pods run the template tminus
// holds, reading its ControllerRevisions only when some may.
func DaemonSetHeldPods(ctx context.Context, c client.Reader, ds *appsv1.DaemonSet) (HeldPods, error) {
	if !daemonSetHeld(ds) || ds.Status.UpdatedNumberScheduled == 0 {
		return HeldPods{}, nil
	}
	revs, err := DaemonSetControllerRevisions(ctx, c, ds)
	if err != nil {
		return HeldPods{}, err
	}
	pods, hash := HeldTemplateRunning(ds, revs)
	if pods == 0 {
		return HeldPods{}, nil
	}
	held := HeldPods{Pods: pods, RevisionHash: hash, Images: gate.Images(&ds.Spec.Template)}
	if st := DaemonSetState(ds, revs); st.Serving != nil {
		held.ServingImages = gate.Images(st.Serving)
	}
	return held, nil
}
