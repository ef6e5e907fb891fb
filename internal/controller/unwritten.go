package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// DefaultStatusRefresh is how often at most a checklist's status is rewritten when only
// its values moved.
const DefaultStatusRefresh = 5 * time.Minute

// writeNeeded says whether a decision's status must be written now. A change of an
// outcome, the phase, a condition or anything an action depends on is written at once
// (before acting, so a crash leaves the intent recorded). Measurement times moving
// alone are never written, and values or messages that moved without changing an
// outcome are written at most once per refresh period: a checklist that measures every
// interval and finds the same answer costs no writes.
func (r *DeploymentChecklistReconciler) writeNeeded(stored *deployv1alpha1.DeploymentChecklistStatus,
	d *checklist.Decision, now time.Time) (bool, checklist.Change) {
	change := checklist.Compare(stored, &d.Status)
	switch {
	case change == checklist.Unchanged:
		return false, change
	case change == checklist.Material || len(d.Actions) > 0:
		return true, change
	case change == checklist.Detail:
		refresh := r.StatusRefresh
		if refresh <= 0 {
			refresh = DefaultStatusRefresh
		}
		return !now.Before(checklist.LastRecorded(stored).Add(refresh)), change
	}
	return false, change
}

// unwrittenStatuses holds, per checklist, the latest status decided and not written,
// with the stored status it was decided from. It is used only while the stored status
// is still that one: a write by anyone else (another replica, a person) discards it.
// Losing it (a restart) costs one measurement taken early, nothing else: every
// outcome, transition and action is in the stored status.
type unwrittenStatuses struct {
	mu sync.Mutex
	m  map[types.NamespacedName]unwritten
}

type unwritten struct {
	uid    types.UID
	stored *deployv1alpha1.DeploymentChecklistStatus
	latest *deployv1alpha1.DeploymentChecklistStatus
}

// take returns the latest unwritten status of dcl if it was decided from the status
// dcl holds now.
func (u *unwrittenStatuses) take(dcl *deployv1alpha1.DeploymentChecklist) (*deployv1alpha1.DeploymentChecklistStatus, bool) {
	key := types.NamespacedName{Namespace: dcl.Namespace, Name: dcl.Name}
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.m[key]
	if !ok {
		return nil, false
	}
	if e.uid != dcl.UID || !equality.Semantic.DeepEqual(e.stored, &dcl.Status) {
		delete(u.m, key)
		return nil, false
	}
	return e.latest.DeepCopy(), true
}

// keep records latest as decided from stored's status, not written.
func (u *unwrittenStatuses) keep(stored *deployv1alpha1.DeploymentChecklist, latest *deployv1alpha1.DeploymentChecklistStatus) {
	key := types.NamespacedName{Namespace: stored.Namespace, Name: stored.Name}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[types.NamespacedName]unwritten{}
	}
	u.m[key] = unwritten{uid: stored.UID, stored: stored.Status.DeepCopy(), latest: latest.DeepCopy()}
}

func (u *unwrittenStatuses) forget(key types.NamespacedName) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, key)
}
