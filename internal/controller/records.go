package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/record"
)

// ReasonRecorded is the event of a release record written.
const ReasonRecorded = "Recorded"

// keepRecord writes the release's record once it has ended (status as decided; dcl as
// stored), and notes its name in status. The engine owes a record (Recorded=False)
// when a checklist ends, so one that ended before records existed costs no write when
// the manager starts. The ConfigMap's name is fixed by the checklist, so a retry, a
// restarted manager or a second replica finds it written and only notes it.
func (r *DeploymentChecklistReconciler) keepRecord(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	decided *deployv1alpha1.DeploymentChecklistStatus) error {
	owed := meta.FindStatusCondition(dcl.Status.Conditions, checklist.CondRecorded)
	if owed == nil || owed.Status != metav1.ConditionFalse || decided.Phase != dcl.Status.Phase || !record.Due(dcl) {
		// Nothing owed, or the ending is not stored yet (it will be by the next
		// reconcile): a record says what the stored status says.
		return nil
	}
	cm, err := record.ConfigMap(dcl)
	if err != nil {
		return err
	}
	switch err := r.Create(ctx, cm); {
	case err == nil:
		r.Recorder.Eventf(dcl, nil, corev1.EventTypeNormal, ReasonRecorded, "Reconcile",
			"release record kept in ConfigMap %s (kubectl checklist record %s)", cm.Name, dcl.Name)
	case apierrors.IsAlreadyExists(err):
	default:
		return fmt.Errorf("writing the release record %s: %w", cm.Name, err)
	}
	before := dcl.DeepCopy()
	dcl.Status.Record = cm.Name
	meta.SetStatusCondition(&dcl.Status.Conditions, metav1.Condition{Type: checklist.CondRecorded,
		Status: metav1.ConditionTrue, Reason: checklist.ReasonRecordKept, ObservedGeneration: dcl.Generation,
		Message: fmt.Sprintf("release record kept in ConfigMap %s (kubectl checklist record %s)", cm.Name, dcl.Name)})
	return r.Status().Patch(ctx, dcl, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}
