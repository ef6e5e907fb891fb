package target

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

type daemonSets struct{}

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
	opts := []client.ListOption{client.InNamespace(ds.Namespace)}
	if ds.Spec.Selector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector); err == nil && !sel.Empty() {
			opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
		}
	}
	var list appsv1.ControllerRevisionList
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing ControllerRevisions of DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	out := list.Items[:0]
	for _, r := range list.Items {
		if ref := metav1.GetControllerOf(&r); ref != nil && ref.UID == ds.UID {
			out = append(out, r)
		}
	}
	return out, nil
}

// DaemonSetState is what the engine needs of a DaemonSet and its ControllerRevisions.
// Every scheduled pod runs the template (updatedNumberScheduled) or none does: either
// way it is settled. What serves is the template in the first case; in the second (a
// new template held, at admission or by a checklist) it is the revision before the
// template's, as kubectl rollout undo takes it (a DaemonSet has no currentRevision, and
// tminus does not read pods), once a pod runs: as for a Deployment, whether the pods are
// available does not change what they run.
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
	allUpdated := st.UpdatedNumberScheduled >= st.DesiredNumberScheduled && st.DesiredNumberScheduled > 0
	t.Settled = st.ObservedGeneration >= ds.Generation && (allUpdated || st.UpdatedNumberScheduled == 0)
	for i := range revs {
		rev := &revs[i]
		tmpl := revisionTemplate(rev)
		if tmpl == nil {
			continue
		}
		h := gate.TemplateHash(tmpl)
		t.PodTemplateHashes[h] = rev.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		if h != t.TemplateHash {
			continue
		}
		t.Revision = strconv.FormatInt(rev.Revision, 10)
		if st.UpdatedNumberScheduled > 0 {
			t.TemplateFirstRan = rev.CreationTimestamp.Time
		}
		if t.Settled && allUpdated {
			t.Serving, t.ServingHash = tmpl, h
			t.ServingRevision = t.Revision
			t.ServingPodTemplateHash = rev.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		}
	}
	if t.Settled && st.UpdatedNumberScheduled == 0 && st.CurrentNumberScheduled > 0 {
		if prev := previousRevision(revs, t.TemplateHash); prev != nil {
			tmpl := revisionTemplate(prev)
			t.Serving, t.ServingHash = tmpl, gate.TemplateHash(tmpl)
			t.ServingRevision = strconv.FormatInt(prev.Revision, 10)
			t.ServingPodTemplateHash = prev.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
		}
	}
	return t
}

// previousRevision is the newest revision of another template than templateHash's,
// older than its revision (any, when no revision holds templateHash yet: the DaemonSet
// controller writes it after the write that changed the template); nil when there is
// none, as for a DaemonSet created held.
func previousRevision(revs []appsv1.ControllerRevision, templateHash string) *appsv1.ControllerRevision {
	newest := int64(-1)
	for i := range revs {
		if tmpl := revisionTemplate(&revs[i]); tmpl != nil && gate.TemplateHash(tmpl) == templateHash {
			newest = revs[i].Revision
		}
	}
	var prev *appsv1.ControllerRevision
	for i := range revs {
		rev := &revs[i]
		tmpl := revisionTemplate(rev)
		if tmpl == nil || gate.TemplateHash(tmpl) == templateHash || (newest >= 0 && rev.Revision > newest) {
			continue
		}
		if prev == nil || rev.Revision > prev.Revision {
			prev = rev
		}
	}
	return prev
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
	delete(ds.Annotations, deployv1alpha1.HeldByAnnotation)
	delete(ds.Annotations, deployv1alpha1.HoldReasonAnnotation)
	delete(ds.Annotations, deployv1alpha1.HeldTemplateAnnotation)
}

func newDaemonSet() *appsv1.DaemonSet { return &appsv1.DaemonSet{} }

func (daemonSets) update(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	mutate func(*appsv1.DaemonSet) error) error {
	return updateObject(ctx, c, fresh, key, deployv1alpha1.KindDaemonSet, newDaemonSet, mutate)
}

// Hold switches the DaemonSet to OnDelete for heldBy, with the reason and, for a held
// change, the template it holds.
func (w daemonSets) Hold(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	heldBy, reason, heldTemplate string) error {
	return w.update(ctx, c, fresh, key, func(ds *appsv1.DaemonSet) error {
		if err := holdDaemonSet(ds); err != nil {
			return err
		}
		annotate(ds, deployv1alpha1.HeldByAnnotation, heldBy)
		annotate(ds, deployv1alpha1.HoldReasonAnnotation, reason)
		if heldTemplate != "" {
			annotate(ds, deployv1alpha1.HeldTemplateAnnotation, heldTemplate)
		} else {
			delete(ds.Annotations, deployv1alpha1.HeldTemplateAnnotation)
		}
		return nil
	})
}

// Resume puts the owner's strategy back if tminus holds the DaemonSet and it still
// holds templateHash.
func (w daemonSets) Resume(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, templateHash string) error {
	return w.update(ctx, c, fresh, key, func(ds *appsv1.DaemonSet) error {
		if err := holdsTemplate(deployv1alpha1.KindDaemonSet, ds, &ds.Spec.Template, templateHash, "the resume"); err != nil {
			return err
		}
		if ds.Annotations[deployv1alpha1.HeldByAnnotation] != "" {
			unholdDaemonSet(ds)
		}
		return nil
	})
}

// Release puts the owner's strategy back, which rolls the pods, and records the
// revision released, if the DaemonSet still holds templateHash.
func (w daemonSets) Release(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	revision, templateHash string) error {
	return w.update(ctx, c, fresh, key, func(ds *appsv1.DaemonSet) error {
		if err := holdsTemplate(deployv1alpha1.KindDaemonSet, ds, &ds.Spec.Template, templateHash, "the release of "+revision); err != nil {
			return err
		}
		unholdDaemonSet(ds)
		recordRelease(ds, revision)
		return nil
	})
}

// Restore puts tmpl back as the DaemonSet's template with the owner's strategy, so the
// pods roll back, and marks the rolled-back template in the same write.
func (w daemonSets) Restore(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	tmpl *corev1.PodTemplateSpec, templateHash, mark string) error {
	return w.update(ctx, c, fresh, key, func(ds *appsv1.DaemonSet) error {
		if gate.TemplateHash(&ds.Spec.Template) != gate.TemplateHash(tmpl) {
			if err := holdsTemplate(deployv1alpha1.KindDaemonSet, ds, &ds.Spec.Template, templateHash, "the restore"); err != nil {
				return err
			}
		}
		ds.Spec.Template = *tmpl.DeepCopy()
		unholdDaemonSet(ds)
		markRolledBack(ds, mark)
		return nil
	})
}

// Mark sets or removes tminus's gated label.
func (w daemonSets) Mark(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, want bool) error {
	return w.update(ctx, c, fresh, key, func(ds *appsv1.DaemonSet) error {
		markGated(ds, want)
		return nil
	})
}

// DaemonSetGateView is what the gate rule needs of a DaemonSet: its revisions that ran
// pods (the one of its template once a pod took it, and every older one) stand for a
// Deployment's ReplicaSets.
func DaemonSetGateView(ds *appsv1.DaemonSet, revs []appsv1.ControllerRevision) gate.Deployment {
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
	hashes := make(map[string]string, len(revs))
	var newestRan int64 = -1
	for i := range revs {
		tmpl := revisionTemplate(&revs[i])
		if tmpl == nil {
			continue
		}
		hashes[revs[i].Name] = gate.TemplateHash(tmpl)
		if hashes[revs[i].Name] == g.TemplateHash && ds.Status.UpdatedNumberScheduled > 0 {
			newestRan = revs[i].Revision
		}
	}
	for i := range revs {
		rev := &revs[i]
		h := hashes[rev.Name]
		if h == "" {
			continue
		}
		if h == g.TemplateHash && ds.Status.UpdatedNumberScheduled > 0 {
			g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{Hash: h, Created: rev.CreationTimestamp.Time, Replicas: ds.Status.UpdatedNumberScheduled})
		} else if rev.Revision < newestRan {
			g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{Hash: h, Created: rev.CreationTimestamp.Time})
		}
	}
	if st := ds.Status; st.UpdatedNumberScheduled > 0 && st.UpdatedNumberScheduled < st.DesiredNumberScheduled {
		// Mid-rollout: the pods not updated run an older revision, whichever it is.
		g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{Replicas: st.DesiredNumberScheduled - st.UpdatedNumberScheduled})
	}
	return g
}
