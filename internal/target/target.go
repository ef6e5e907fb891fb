// Package target observes, holds, releases and restores the Deployment a checklist
// gates. Every write is idempotent and guarded by the object's resourceVersion, so a
// write racing another controller never overwrites it: it is applied again to the
// Deployment read afresh.
package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
)

// RevisionAnnotation is the Deployment controller's revision counter, on Deployments
// and their ReplicaSets.
const RevisionAnnotation = "deployment.kubernetes.io/revision"

// Observe reads the Deployment and its ReplicaSets: what serves, whether it settled,
// and tminus's own marks on it.
func Observe(ctx context.Context, c client.Reader, key types.NamespacedName) (checklist.TargetState, error) {
	var d appsv1.Deployment
	if err := c.Get(ctx, key, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return checklist.TargetState{}, nil
		}
		return checklist.TargetState{}, fmt.Errorf("reading Deployment %s: %w", key, err)
	}
	rss, err := ReplicaSets(ctx, c, &d)
	if err != nil {
		return checklist.TargetState{}, err
	}
	return State(&d, rss), nil
}

// State is what the engine needs of a Deployment and its ReplicaSets.
func State(d *appsv1.Deployment, rss []appsv1.ReplicaSet) checklist.TargetState {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	t := checklist.TargetState{
		Found:              true,
		Paused:             d.Spec.Paused,
		Generation:         d.Generation,
		ObservedGeneration: d.Status.ObservedGeneration,
		Replicas:           replicas,
		UpdatedReplicas:    d.Status.UpdatedReplicas,
		AvailableReplicas:  d.Status.AvailableReplicas,
		TotalReplicas:      d.Status.Replicas,
		Template:           d.Spec.Template.DeepCopy(),
		TemplateHash:       gate.TemplateHash(&d.Spec.Template),
		TemplateImages:     gate.Images(&d.Spec.Template),
		Revision:           d.Annotations[RevisionAnnotation],
		HeldBy:             d.Annotations[deployv1alpha1.HeldByAnnotation],
		HeldTemplate:       d.Annotations[deployv1alpha1.HeldTemplateAnnotation],
		ReleasedRevisions:  ReleasedRevisions(d),
		GateLabel:          d.Labels[deployv1alpha1.GatedLabel],
		Labels:             d.Labels,
	}
	for _, cond := range d.Status.Conditions {
		switch cond.Type {
		case appsv1.DeploymentAvailable:
			t.Available = cond.Status == corev1.ConditionTrue
		case appsv1.DeploymentProgressing:
			t.ProgressingSince = cond.LastTransitionTime.Time
			t.ProgressDeadlineExceeded = cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded"
		}
	}
	var withPods []*appsv1.ReplicaSet
	var current *appsv1.ReplicaSet
	newest := map[string]*appsv1.ReplicaSet{}
	for i := range rss {
		rs := &rss[i]
		h := replicaSetHash(rs)
		if h == t.TemplateHash {
			if t.TemplateFirstRan.IsZero() || rs.CreationTimestamp.Time.Before(t.TemplateFirstRan) {
				t.TemplateFirstRan = rs.CreationTimestamp.Time
			}
		}
		if n := newest[h]; n == nil || n.CreationTimestamp.Before(&rs.CreationTimestamp) {
			newest[h] = rs
		}
		if podCount(rs) > 0 {
			withPods = append(withPods, rs)
		}
		if rs.Annotations[RevisionAnnotation] == t.Revision && t.Revision != "" {
			current = rs
		}
	}
	t.Settled = t.ObservedGeneration >= t.Generation && len(withPods) <= 1
	serving := current
	if len(withPods) == 1 {
		serving = withPods[0]
	}
	if t.Settled && serving != nil {
		t.Serving = templateOf(serving)
		t.ServingHash = gate.TemplateHash(t.Serving)
		t.ServingRevision = serving.Annotations[RevisionAnnotation]
		t.ServingPodTemplateHash = serving.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	}
	t.PodTemplateHashes = make(map[string]string, len(newest))
	for h, rs := range newest {
		if l := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; l != "" {
			t.PodTemplateHashes[h] = l
		}
	}
	return t
}

// GateView is what the admission rule needs of a Deployment and its ReplicaSets.
func GateView(d *appsv1.Deployment, rss []appsv1.ReplicaSet) gate.Deployment {
	g := gate.Deployment{
		Namespace:    d.Namespace,
		Name:         d.Name,
		TemplateHash: gate.TemplateHash(&d.Spec.Template),
		Images:       gate.Images(&d.Spec.Template),
		Paused:       d.Spec.Paused,
		HeldBy:       d.Annotations[deployv1alpha1.HeldByAnnotation],
		HeldTemplate: d.Annotations[deployv1alpha1.HeldTemplateAnnotation],
		RolledBack:   gate.ParseRolledBack(d.Annotations[deployv1alpha1.RolledBackAnnotation]),
		Refused:      gate.ParseRefusals(d.Annotations[deployv1alpha1.RefusedTemplatesAnnotation]),
		GateLabel:    d.Labels[deployv1alpha1.GatedLabel],
	}
	for i := range rss {
		g.ReplicaSets = append(g.ReplicaSets, gate.ReplicaSet{
			Hash: replicaSetHash(&rss[i]), Created: rss[i].CreationTimestamp.Time, Replicas: podCount(&rss[i]),
		})
	}
	return g
}

// rsHashes remembers each ReplicaSet's template hash by UID and resourceVersion: a
// ReplicaSet's template does not change once made, and hashing a Deployment's history
// on every admission would be most of its cost. It is emptied when it grows past
// maxRSHashes entries (ReplicaSets come and go; a few thousand live at once).
var (
	rsHashes    sync.Map
	rsHashCount atomic.Int64
)

const maxRSHashes = 50000

func replicaSetHash(rs *appsv1.ReplicaSet) string {
	key := string(rs.UID) + "/" + rs.ResourceVersion
	if rs.UID == "" {
		return gate.TemplateHash(&rs.Spec.Template)
	}
	if h, ok := rsHashes.Load(key); ok {
		return h.(string)
	}
	h := gate.TemplateHash(&rs.Spec.Template)
	if rsHashCount.Add(1) > maxRSHashes {
		rsHashes.Clear()
		rsHashCount.Store(0)
	}
	rsHashes.Store(key, h)
	return h
}

func podCount(rs *appsv1.ReplicaSet) int32 {
	n := rs.Status.Replicas
	if rs.Spec.Replicas != nil && *rs.Spec.Replicas > n {
		n = *rs.Spec.Replicas
	}
	return n
}

// templateOf is a ReplicaSet's pod template without the pod-template-hash label the
// Deployment controller adds: what `kubectl rollout undo` would put back.
func templateOf(rs *appsv1.ReplicaSet) *corev1.PodTemplateSpec {
	tmpl := rs.Spec.Template.DeepCopy()
	if tmpl.Labels != nil {
		tmpl.Labels = maps.Clone(tmpl.Labels)
		delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	}
	return tmpl
}

// ReplicaSetOwnerIndex indexes ReplicaSets by the name of the Deployment controlling
// them, so observing a target reads its own ReplicaSets, not every one of its namespace.
const ReplicaSetOwnerIndex = ".metadata.controller.deployment"

// ChecklistIndex indexes checklists by the name of their target Deployment.
const ChecklistIndex = ".spec.targets.name"

// Index registers ReplicaSetOwnerIndex, ChecklistIndex and DecisionIndex with the
// manager's cache; Observe, ReplicaSets, Checklists and Deciding need them.
func Index(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &appsv1.ReplicaSet{}, ReplicaSetOwnerIndex, func(o client.Object) []string {
		if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "Deployment" {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &deployv1alpha1.DeploymentChecklist{}, ChecklistIndex, ChecklistIndexFunc); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &deployv1alpha1.DeploymentChecklist{}, DecisionIndex, DecisionIndexFunc)
}

// Checklists reads the gate's view of every checklist targeting the Deployment, from
// the manager's cache (through ChecklistIndex).
func Checklists(ctx context.Context, c client.Reader, namespace, deployment string) ([]gate.Checklist, error) {
	return checklists(ctx, c, namespace, deployment, client.MatchingFields{ChecklistIndex: deployment}, client.UnsafeDisableDeepCopy)
}

func checklists(ctx context.Context, c client.Reader, namespace, deployment string, opts ...client.ListOption) ([]gate.Checklist, error) {
	return checklistsOfKind(ctx, c, deployv1alpha1.KindDeployment, namespace, deployment, opts...)
}

func checklistsOfKind(ctx context.Context, c client.Reader, kind, namespace, deployment string,
	opts ...client.ListOption) ([]gate.Checklist, error) {
	var list deployv1alpha1.DeploymentChecklistList
	if err := c.List(ctx, &list, append(opts, client.InNamespace(namespace))...); err != nil {
		return nil, fmt.Errorf("listing checklists of %s %s/%s: %w", kind, namespace, deployment, err)
	}
	out := make([]gate.Checklist, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].Spec.HasTarget(kind, deployment) {
			out = append(out, gate.FromChecklistFor(&list.Items[i], deployment))
		}
	}
	return out, nil
}

// ReplicaSets lists the ReplicaSets the Deployment owns, from the manager's cache
// (through ReplicaSetOwnerIndex).
// The objects are the cache's own (not copied): read them, never change them.
func ReplicaSets(ctx context.Context, c client.Reader, d *appsv1.Deployment) ([]appsv1.ReplicaSet, error) {
	return replicaSets(ctx, c, d, client.MatchingFields{ReplicaSetOwnerIndex: d.Name}, client.UnsafeDisableDeepCopy)
}

// ReplicaSetsMatchStatus says whether rss, the Deployment's ReplicaSets as the
// manager's cache holds them, are at least as fresh as the Deployment's own status in
// stored, the object as etcd holds it (the admission request's old object): the
// Deployment controller finished its sync of the stored generation (it makes a
// ReplicaSet and records its revision within that sync), the cache holds the
// ReplicaSet of the revision it recorded (an informer's cache holds every event before
// one it holds, so every ReplicaSet made before it), and the pods the cache counts
// are the pods the controller counted, in all and for the stored template. A cache
// that matches decides as a LIST from the API server would have, short of what the
// controller did and has not written down yet, which that LIST (a few milliseconds
// before the write is stored) could miss as well; one that does not match is read
// again. The LIST costs more than its round trip: the API server serves it from its
// watch cache once that cache has caught up with etcd, which on a cluster whose
// ReplicaSets are quiet waits for etcd's next progress notification (tens of
// milliseconds).
func ReplicaSetsMatchStatus(stored *appsv1.Deployment, rss []appsv1.ReplicaSet) bool {
	if stored == nil || stored.Generation == 0 || stored.Status.ObservedGeneration != stored.Generation {
		return false
	}
	if !stored.Spec.Paused && stored.Status.Replicas != stored.Status.UpdatedReplicas {
		// Rolling out: the Deployment controller scales ReplicaSets up (an undo's old
		// ReplicaSet, a maxSurge 0 rollout's new one) in writes its status does not
		// count (it counts pods, not the ReplicaSets' desired counts), so a cache
		// matching the counts may still miss a second ReplicaSet wanting pods.
		return false
	}
	revision := stored.Annotations[RevisionAnnotation]
	hash := gate.TemplateHash(&stored.Spec.Template)
	seen := revision == ""
	var pods, updated int32
	for i := range rss {
		if revision != "" && rss[i].Annotations[RevisionAnnotation] == revision {
			seen = true
		}
		pods += rss[i].Status.Replicas
		if replicaSetHash(&rss[i]) == hash {
			updated += rss[i].Status.Replicas
		}
	}
	return seen && pods == stored.Status.Replicas && updated == stored.Status.UpdatedReplicas
}

// ReplicaSetsFromAPI lists the ReplicaSets the Deployment owns from the API server,
// which knows no cache index: those its selector matches (the namespace when it has
// none that parses), of which those it owns.
func ReplicaSetsFromAPI(ctx context.Context, c client.Reader, d *appsv1.Deployment) ([]appsv1.ReplicaSet, error) {
	if d.Spec.Selector != nil {
		if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() {
			return replicaSets(ctx, c, d, client.MatchingLabelsSelector{Selector: sel})
		}
	}
	return replicaSets(ctx, c, d)
}

// RefreshChecklists reads again from the API server (c), one by one, the checklists of
// cls that stale says may be stale for the decision at hand; a checklist gone (or
// made again for another Deployment) is dropped. The others are returned as they are.
func RefreshChecklists(ctx context.Context, c client.Reader, namespace string, cls []gate.Checklist,
	stale func(*gate.Checklist) bool) ([]gate.Checklist, error) {
	out := make([]gate.Checklist, 0, len(cls))
	for i := range cls {
		if !stale(&cls[i]) {
			out = append(out, cls[i])
			continue
		}
		var dcl deployv1alpha1.DeploymentChecklist
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: cls[i].Name}, &dcl); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("reading checklist %s/%s: %w", namespace, cls[i].Name, err)
		}
		if !dcl.Spec.Names(cls[i].TargetName) {
			continue // made again under the same name for other Deployments
		}
		out = append(out, gate.FromChecklistFor(&dcl, cls[i].TargetName))
	}
	return out, nil
}

func replicaSets(ctx context.Context, c client.Reader, d *appsv1.Deployment, opts ...client.ListOption) ([]appsv1.ReplicaSet, error) {
	var list appsv1.ReplicaSetList
	if err := c.List(ctx, &list, append(opts, client.InNamespace(d.Namespace))...); err != nil {
		return nil, fmt.Errorf("listing ReplicaSets of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	out := list.Items[:0]
	for _, rs := range list.Items {
		if slices.ContainsFunc(rs.OwnerReferences, func(ref metav1.OwnerReference) bool { return ref.UID == d.UID }) {
			out = append(out, rs)
		}
	}
	return out, nil
}

// ReleasedRevisions reads ReleasedRevisionsAnnotation, newest first.
func ReleasedRevisions(d *appsv1.Deployment) []string {
	v := d.Annotations[deployv1alpha1.ReleasedRevisionsAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Hold pauses the Deployment for heldBy, recording why in tminus's annotations, and for
// a held change the template it holds.
func Hold(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, heldBy, reason, heldTemplate string) error {
	return update(ctx, c, fresh, key, func(d *appsv1.Deployment) error {
		d.Spec.Paused = true
		setAnnotation(d, deployv1alpha1.HeldByAnnotation, heldBy)
		setAnnotation(d, deployv1alpha1.HoldReasonAnnotation, reason)
		if heldTemplate != "" {
			setAnnotation(d, deployv1alpha1.HeldTemplateAnnotation, heldTemplate)
		} else {
			delete(d.Annotations, deployv1alpha1.HeldTemplateAnnotation)
		}
		return nil
	})
}

// ErrTemplateChanged is returned by Release, Resume and Restore when the Deployment no longer
// holds the pod template the write was decided on: a push landed between the decision
// and the write (or its retry after a conflict). Nothing was written; the next
// reconcile decides again on what the Deployment holds now.
var ErrTemplateChanged = errors.New("the pod template changed since the decision")

// holds says whether d still holds the template decided on (gate.TemplateHash), and
// otherwise why not, wrapping ErrTemplateChanged.
func holds(d *appsv1.Deployment, templateHash, what string) error {
	if h := gate.TemplateHash(&d.Spec.Template); h != templateHash {
		return fmt.Errorf("%w: Deployment %s/%s now holds %s (template %s), not the template %s was decided on (%s); not written",
			ErrTemplateChanged, d.Namespace, d.Name, gate.ImageList(gate.Images(&d.Spec.Template)), h, what, templateHash)
	}
	return nil
}

// Resume takes tminus's pause off the Deployment, with its annotations, if it still
// holds templateHash: the template the resume was decided on (ErrTemplateChanged
// otherwise). A Deployment someone else paused (no held-by annotation) is left as it is.
func Resume(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, templateHash string) error {
	return update(ctx, c, fresh, key, func(d *appsv1.Deployment) error {
		if err := holds(d, templateHash, "the resume"); err != nil {
			return err
		}
		if d.Annotations[deployv1alpha1.HeldByAnnotation] != "" {
			unhold(d)
		}
		return nil
	})
}

// Release resumes the Deployment at T-0, whoever paused it, and records the revision
// among those released on it, if it still holds templateHash: the candidate the
// release was decided on, signed off and checked for. A push that landed since (even
// between a conflict and its retry) is not released under another template's
// sign-offs: ErrTemplateChanged, and nothing is written.
func Release(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, revision, templateHash string) error {
	return update(ctx, c, fresh, key, func(d *appsv1.Deployment) error {
		if err := holds(d, templateHash, "the release of "+revision); err != nil {
			return err
		}
		unhold(d)
		revs := ReleasedRevisions(d)
		if len(revs) == 0 || revs[0] != revision {
			revs = slices.DeleteFunc(revs, func(r string) bool { return r == revision })
			revs = append([]string{revision}, revs...)
			if len(revs) > deployv1alpha1.MaxReleasedRevisions {
				revs = revs[:deployv1alpha1.MaxReleasedRevisions]
			}
			setAnnotation(d, deployv1alpha1.ReleasedRevisionsAnnotation, strings.Join(revs, ","))
		}
		return nil
	})
}

// Restore puts tmpl back as the Deployment's template and resumes it, as `kubectl
// rollout undo` does, and marks (RolledBackAnnotation, unless mark is empty) which
// template was rolled back in the same write: the admission webhook refuses it again
// from the Deployment itself, before its cache shows the rollback. The same write lists
// it among the Deployment's refused templates (RefusedTemplatesAnnotation), where it
// stays refused after its checklist is gone; a template listed already keeps its
// entry, so a restore written again changes nothing. It writes only over
// templateHash, the template the restore was decided on, or over tmpl itself (a
// restore written before, still paused): a push that landed since is not overwritten
// (ErrTemplateChanged, nothing written).
func Restore(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, tmpl *corev1.PodTemplateSpec,
	templateHash, mark string) error {
	return update(ctx, c, fresh, key, func(d *appsv1.Deployment) error {
		if gate.TemplateHash(&d.Spec.Template) != gate.TemplateHash(tmpl) {
			if err := holds(d, templateHash, "the restore"); err != nil {
				return err
			}
		}
		d.Spec.Template = *tmpl.DeepCopy()
		unhold(d)
		if mark != "" {
			setAnnotation(d, deployv1alpha1.RolledBackAnnotation, mark)
			if m := gate.ParseRolledBack(mark); m.Hash != "" {
				refused := gate.ParseRefusals(d.Annotations[deployv1alpha1.RefusedTemplatesAnnotation])
				if gate.RefusedIn(refused, m.Hash) == nil {
					refused = gate.AddRefusal(refused, gate.Refusal{Hash: m.Hash, Checklist: m.Checklist, UID: m.UID, At: time.Now().UTC().Truncate(time.Second)})
					setAnnotation(d, deployv1alpha1.RefusedTemplatesAnnotation, gate.FormatRefusals(refused))
				}
			}
		}
		return nil
	})
}

// Mark sets or removes tminus's gated label. A label the user set (any other value) is
// never touched.
func Mark(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName, want bool) error {
	return update(ctx, c, fresh, key, func(d *appsv1.Deployment) error {
		cur, ok := d.Labels[deployv1alpha1.GatedLabel]
		switch {
		case want && !ok:
			if d.Labels == nil {
				d.Labels = map[string]string{}
			}
			d.Labels[deployv1alpha1.GatedLabel] = deployv1alpha1.GatedByChecklist
		case !want && cur == deployv1alpha1.GatedByChecklist:
			delete(d.Labels, deployv1alpha1.GatedLabel)
		}
		return nil
	})
}

func unhold(d *appsv1.Deployment) {
	d.Spec.Paused = false
	delete(d.Annotations, deployv1alpha1.HeldByAnnotation)
	delete(d.Annotations, deployv1alpha1.HoldReasonAnnotation)
	delete(d.Annotations, deployv1alpha1.HeldTemplateAnnotation)
}

func setAnnotation(d *appsv1.Deployment, k, v string) {
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[k] = v
}

// update patches the Deployment with mutate's change, with an optimistic lock; no
// change, no request. When another writer (a GitOps sync, kubectl) changed the
// Deployment since it was read, it reads it again from the API server (fresh: the cache
// may still hold the old one) and applies the change to that, a few times. mutate runs
// on every attempt and may refuse the object it is given (its error is returned and
// nothing is written): a decision is applied only to the object it was decided on.
func update(ctx context.Context, c client.Client, fresh client.Reader, key types.NamespacedName,
	mutate func(*appsv1.Deployment) error) error {
	reader := client.Reader(c)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		if err := reader.Get(ctx, key, &d); err != nil {
			return fmt.Errorf("reading Deployment %s: %w", key, err)
		}
		reader = fresh
		before := d.DeepCopy()
		if err := mutate(&d); err != nil {
			return err
		}
		patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		raw, err := patch.Data(&d)
		if err != nil {
			return err
		}
		if isEmptyPatch(raw) {
			return nil
		}
		if err := c.Patch(ctx, &d, patch); err != nil {
			return fmt.Errorf("patching Deployment %s: %w", key, err)
		}
		return nil
	})
}

// isEmptyPatch says whether a merge patch with an optimistic lock changes nothing but
// carries the resourceVersion.
func isEmptyPatch(raw []byte) bool {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	meta, _ := m["metadata"].(map[string]any)
	return len(m) == 1 && len(meta) == 1 && meta["resourceVersion"] != nil
}
