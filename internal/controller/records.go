package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/record"
)

// Events of the release record.
const (
	// ReasonRecorded: the record was written.
	ReasonRecorded = "Recorded"
	// ReasonRecordNameTaken: a ConfigMap of the record's name was there, not written
	// by tminus; the record went under another name.
	ReasonRecordNameTaken = "RecordNameTaken"
)

// keepRecord writes the release's record once it has ended (status as decided; dcl as
// stored), and notes its name and uid in status. The engine owes a record
// (Recorded=False) when a checklist ends, so one that ended before records existed
// costs no write when the manager starts.
//
// The record's name is known to anyone who can read the checklist, so a ConfigMap of
// that name may be there before tminus writes it: only a ConfigMap this manager
// created (its uid, remembered until status notes it) is taken as the record. Any
// other is named in the condition and an event, and the record is written under a
// name the API server chooses, unless the checklist as stored (the cache may lag)
// already notes its record. A manager restarted between writing the record and noting
// it writes it again that way (the first copy says the same).
func (r *DeploymentChecklistReconciler) keepRecord(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	decided *deployv1alpha1.DeploymentChecklistStatus) error {
	owed := meta.FindStatusCondition(dcl.Status.Conditions, checklist.CondRecorded)
	if owed == nil || owed.Status != metav1.ConditionFalse || decided.Phase != dcl.Status.Phase || !record.Due(dcl) {
		// Nothing owed, or the ending is not stored yet (it will be by the next
		// reconcile): a record says what the stored status says.
		return nil
	}
	kept, ok := r.records.get(dcl)
	if !ok {
		cm, err := record.ConfigMap(dcl)
		if err != nil {
			return err
		}
		switch err := r.Create(ctx, cm); {
		case err == nil:
		case apierrors.IsAlreadyExists(err):
			// The cache may lag behind the note of a record this manager (or the shard's
			// holder before it) wrote and noted: the checklist as stored says.
			if recorded, err := r.recordedAsStored(ctx, dcl); err != nil || recorded {
				return err
			}
			kept.taken = cm.Name
			cm.GenerateName, cm.Name, cm.ResourceVersion = cm.Name+"-", "", ""
			if err := r.Create(ctx, cm); err != nil {
				return fmt.Errorf("writing the release record beside ConfigMap %s, which tminus did not write: %w",
					kept.taken, err)
			}
		default:
			return fmt.Errorf("writing the release record %s: %w", cm.Name, err)
		}
		kept.name, kept.uid, kept.created = cm.Name, cm.UID, cm.CreationTimestamp.Time
		r.records.set(dcl, kept)
		r.Recorder.Eventf(dcl, nil, corev1.EventTypeNormal, ReasonRecorded, "Reconcile",
			"release record kept in ConfigMap %s (kubectl checklist record %s)", kept.name, dcl.Name)
		if kept.taken != "" {
			r.Recorder.Eventf(dcl, nil, corev1.EventTypeWarning, ReasonRecordNameTaken, "Reconcile", "%s", kept.takenNote())
		}
	}
	if r.Ledger != nil && !kept.ledgered {
		// Kept before status notes the record: a failed write is tried again by the
		// next reconcile, which finds the record in r.records.
		if err := r.Ledger.Keep(ctx, dcl.Namespace, kept.name, kept.uid, kept.created); err != nil {
			return err
		}
		kept.ledgered = true
		r.records.set(dcl, kept)
	}
	before := dcl.DeepCopy()
	dcl.Status.Record, dcl.Status.RecordUID = kept.name, kept.uid
	msg := fmt.Sprintf("release record kept in ConfigMap %s (kubectl checklist record %s)", kept.name, dcl.Name)
	if kept.taken != "" {
		msg += "; " + kept.takenNote()
	}
	meta.SetStatusCondition(&dcl.Status.Conditions, metav1.Condition{Type: checklist.CondRecorded,
		Status: metav1.ConditionTrue, Reason: checklist.ReasonRecordKept, ObservedGeneration: dcl.Generation,
		Message: msg})
	if err := r.Status().Patch(ctx, dcl, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	r.records.forget(dcl)
	return nil
}

// recordedAsStored says whether the checklist, read from the API server, has its record
// noted.
func (r *DeploymentChecklistReconciler) recordedAsStored(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist) (bool, error) {
	var stored deployv1alpha1.DeploymentChecklist
	if err := r.fresh().Get(ctx, client.ObjectKeyFromObject(dcl), &stored); err != nil {
		return false, fmt.Errorf("reading checklist %s to see whether its record is noted: %w", dcl.Name, err)
	}
	return stored.UID == dcl.UID && stored.Status.RecordUID != "" &&
		meta.IsStatusConditionTrue(stored.Status.Conditions, checklist.CondRecorded), nil
}

// keptRecord is a record this manager wrote: its ConfigMap's name and uid, and the
// name it could not take.
type keptRecord struct {
	name, taken string
	uid         types.UID
	created     time.Time
	// ledgered: its uid is in the retention ledger.
	ledgered bool
}

func (k keptRecord) takenNote() string {
	return fmt.Sprintf("ConfigMap %s, of the record's usual name, was not written by tminus for this release "+
		"(made by someone else, or written just before a manager restart) and is not its record", k.taken)
}

// createdRecords remembers, per checklist, the record this manager wrote until status
// notes it: a write of status that conflicts is decided again, and must find the
// record it wrote, not take the name's holder for it.
type createdRecords struct{ m sync.Map }

func (c *createdRecords) set(dcl *deployv1alpha1.DeploymentChecklist, k keptRecord) {
	c.m.Store(dcl.UID, k)
}

func (c *createdRecords) get(dcl *deployv1alpha1.DeploymentChecklist) (keptRecord, bool) {
	v, ok := c.m.Load(dcl.UID)
	if !ok {
		return keptRecord{}, false
	}
	return v.(keptRecord), true
}

func (c *createdRecords) forget(dcl *deployv1alpha1.DeploymentChecklist) { c.m.Delete(dcl.UID) }
