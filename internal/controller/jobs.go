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
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// Labels on the Jobs tminus creates.
const (
	LabelChecklist = "deploy.tminus.dev/checklist"
	LabelPhase     = "deploy.tminus.dev/phase"
	LabelCheck     = "deploy.tminus.dev/check"
)

// observeJob reads the Job of a job check. A Job of that name that this checklist does
// not own (left by a deleted checklist of the same name) is reported as not done, so it
// is never taken for this checklist's result.
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
	if !metav1.IsControlledBy(&job, dcl) {
		return checklist.JobState{Exists: true, Message: "a Job of that name exists that this checklist does not own"}, nil
	}
	js := checklist.JobState{Exists: true}
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
	case err == nil || apierrors.IsAlreadyExists(err):
		r.refusals.set(dcl, key, "")
		return nil
	case refused(err):
		// The API server will refuse it again until the spec, a quota or a policy
		// changes: the check reports it (and tries again at the next measurement),
		// the reconcile goes on.
		r.refusals.set(dcl, key, err.Error())
		return nil
	}
	return fmt.Errorf("creating Job %s for check %s/%s: %w", job.Name, phase, check, err)
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
