package controller

import (
	"context"
	"fmt"
	"maps"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// Labels on the Jobs tminus creates.
const (
	LabelChecklist = "deploy.tminus.dev/checklist"
	LabelPhase     = "deploy.tminus.dev/phase"
	LabelCheck     = "deploy.tminus.dev/check"
)

// observeJob reads the Job of a job check. Its name is known to anyone who can read the
// checklist, and an owner reference to the checklist is easy to write: only the Job
// tminus created, by its uid (recorded in the check's status, or remembered from the
// create until status records it), is the check's. Any other Job of that name is
// reported as not ours, and never taken for the check's result.
func (r *DeploymentChecklistReconciler) observeJob(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	phase, check string) (checklist.JobState, error) {
	var job batchv1.Job
	key := types.NamespacedName{Namespace: dcl.Namespace, Name: checklist.JobName(dcl.Name, phase, check)}
	if err := r.Get(ctx, key, &job); err != nil {
		if apierrors.IsNotFound(err) {
			return checklist.JobState{}, nil
		}
		return checklist.JobState{}, fmt.Errorf("reading Job %s: %w", key, err)
	}
	ckey := checklist.CheckKey(phase, check)
	recorded := recordedJobUID(dcl, phase, check)
	created := r.jobs.get(dcl, ckey)
	switch {
	case recorded != "" && job.UID == recorded:
		r.jobs.forget(dcl, ckey)
	case created != "" && job.UID == created:
	default:
		why := fmt.Sprintf("its uid %s is not the one tminus recorded creating", job.UID)
		if !metav1.IsControlledBy(&job, dcl) {
			why = "this checklist does not own it"
		}
		return checklist.JobState{Exists: true, NotOurs: why}, nil
	}
	js := checklist.JobState{Exists: true, UID: job.UID}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			js.Succeeded = true
		case batchv1.JobFailed:
			js.Failed = true
			js.Message = c.Reason
			if c.Message != "" {
				js.Message += ": " + c.Message
			}
		}
	}
	return js, nil
}

// createJob creates the Job of a job check from its template, owned by the checklist.
// Its name is deterministic, so creating it twice finds the first one.
func (r *DeploymentChecklistReconciler) createJob(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist, phase, check string) error {
	spec := findJobCheck(dcl, phase, check)
	if spec == nil {
		return fmt.Errorf("no job check %s/%s in the spec", phase, check)
	}
	labels := maps.Clone(spec.Template.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelChecklist] = checklist.LabelValue(dcl.Name)
	labels[LabelPhase] = checklist.PhaseSlug(phase)
	labels[LabelCheck] = check
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        checklist.JobName(dcl.Name, phase, check),
			Namespace:   dcl.Namespace,
			Labels:      labels,
			Annotations: maps.Clone(spec.Template.Metadata.Annotations),
		},
		Spec: *spec.Template.Spec.DeepCopy(),
	}
	if err := controllerutil.SetControllerReference(dcl, job, r.Scheme); err != nil {
		return err
	}
	key := checklist.CheckKey(phase, check)
	err := r.Create(ctx, job)
	switch {
	case err == nil:
		// The check's Job is this one, by its uid: remembered at once, and written to
		// the check's status now rather than with the next decision, so that a restart
		// in between rarely finds a Job it cannot vouch for.
		r.jobs.set(dcl, key, job.UID)
		r.refusals.set(dcl, key, "")
		if err := r.noteJob(ctx, dcl, phase, check, job.UID); err != nil {
			logf.FromContext(ctx).Error(err, "recording the uid of the Job created; the next decision records it",
				"job", job.Name)
		}
		return nil
	case apierrors.IsAlreadyExists(err):
		r.refusals.set(dcl, key, "")
		if r.jobs.get(dcl, key) != "" {
			// This manager's own, not in the cache yet.
			return nil
		}
		// Not created by tminus as far as it knows: no event of its creation will
		// come, so the failure brings the next measurement, which judges whose it is.
		return fmt.Errorf("creating Job %s for check %s/%s: a Job of that name exists that tminus did not create "+
			"for this check", job.Name, phase, check)
	case refused(err):
		// The API server will refuse it again until the spec, a quota or a policy
		// changes: the check reports it (and tries again at the next measurement),
		// the reconcile goes on.
		r.refusals.set(dcl, key, err.Error())
		return nil
	}
	return fmt.Errorf("creating Job %s for check %s/%s: %w", job.Name, phase, check, err)
}

// noteJob records in the check's status the uid of the Job just created for it. It is
// written even if the reconcile is being cancelled: the Job exists now.
func (r *DeploymentChecklistReconciler) noteJob(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	phase, check string, uid types.UID) error {
	ctx = context.WithoutCancel(ctx)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur deployv1alpha1.DeploymentChecklist
		if err := r.fresh().Get(ctx, client.ObjectKeyFromObject(dcl), &cur); err != nil {
			return client.IgnoreNotFound(err)
		}
		if cur.UID != dcl.UID {
			return nil
		}
		before := cur.DeepCopy()
		for i := range cur.Status.Phases {
			if cur.Status.Phases[i].Name != phase {
				continue
			}
			for j := range cur.Status.Phases[i].Checks {
				if cr := &cur.Status.Phases[i].Checks[j]; cr.Name == check && cr.JobUID != uid {
					cr.JobUID = uid
					return r.Status().Patch(ctx, &cur, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
				}
			}
		}
		return nil
	})
}

// refused says whether the API server refused a create for what it is (invalid,
// forbidden by RBAC, a quota or an admission policy), not for a passing fault.
func refused(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsRequestEntityTooLargeError(err)
}

// jobRefusals remembers, per checklist and job check, the API server's answer to the
// last refused create, until a create succeeds. A restart forgets them: the next
// create is refused again and they are back.
type jobRefusals struct{ m sync.Map }

func refusalKey(dcl *deployv1alpha1.DeploymentChecklist, check string) string {
	return string(dcl.UID) + "/" + check
}

func (j *jobRefusals) set(dcl *deployv1alpha1.DeploymentChecklist, check, msg string) {
	if msg == "" {
		j.m.Delete(refusalKey(dcl, check))
		return
	}
	j.m.Store(refusalKey(dcl, check), msg)
}

func (j *jobRefusals) get(dcl *deployv1alpha1.DeploymentChecklist, check string) string {
	if v, ok := j.m.Load(refusalKey(dcl, check)); ok {
		return v.(string)
	}
	return ""
}

// createdJobs remembers, per checklist and job check, the uid of the Job this manager
// created, until the check's status records it (the decision after the create writes
// it). A restart in between forgets it: the Job is then not known as tminus's, and the
// check fails saying so rather than taking a result it cannot vouch for.
type createdJobs struct{ m sync.Map }

func (j *createdJobs) set(dcl *deployv1alpha1.DeploymentChecklist, check string, uid types.UID) {
	j.m.Store(refusalKey(dcl, check), uid)
}

func (j *createdJobs) get(dcl *deployv1alpha1.DeploymentChecklist, check string) types.UID {
	if v, ok := j.m.Load(refusalKey(dcl, check)); ok {
		return v.(types.UID)
	}
	return ""
}

func (j *createdJobs) forget(dcl *deployv1alpha1.DeploymentChecklist, check string) {
	j.m.Delete(refusalKey(dcl, check))
}

// recordedJobUID is the uid of the Job status records tminus created for a job check.
func recordedJobUID(dcl *deployv1alpha1.DeploymentChecklist, phase, check string) types.UID {
	for _, p := range dcl.Status.Phases {
		if p.Name != phase {
			continue
		}
		for _, c := range p.Checks {
			if c.Name == check {
				return c.JobUID
			}
		}
	}
	return ""
}

func findJobCheck(dcl *deployv1alpha1.DeploymentChecklist, phase, check string) *deployv1alpha1.JobCheck {
	for _, p := range dcl.Spec.Phases {
		if p.Name != phase {
			continue
		}
		for _, c := range p.Checks {
			if c.Name == check && c.Job != nil {
				return c.Job
			}
		}
	}
	return nil
}
