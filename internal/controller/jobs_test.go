package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// withSmokeJob adds a phase T-5m, after T-10m's sign-off, holding a Job check, smoke.
func withSmokeJob(c *deployv1alpha1.DeploymentChecklist) {
	c.Spec.Phases = slices.Insert(c.Spec.Phases, 1, deployv1alpha1.PhaseSpec{Name: "T-5m", At: "-5m",
		Checks: []deployv1alpha1.CheckSpec{{Name: "smoke",
			Job: &deployv1alpha1.JobCheck{Template: deployv1alpha1.JobTemplate{Spec: smokeJobSpec()}}}}})
}

func smokeJobSpec() batchv1.JobSpec {
	return batchv1.JobSpec{
		BackoffLimit: new(int32(0)),
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "smoke", Image: "smoke-test:1"}},
		}},
	}
}

func checkStatus(g Gomega, c *deployv1alpha1.DeploymentChecklist, phase, check string) deployv1alpha1.CheckStatus {
	for _, p := range getChecklist(g, c).Status.Phases {
		for _, cr := range p.Checks {
			if p.Name == phase && cr.Name == check {
				return cr
			}
		}
	}
	g.Expect(false).To(BeTrue(), "no status of check %s/%s", phase, check)
	return deployv1alpha1.CheckStatus{}
}

func TestAJobPreCreatedUnderTheChecksNameWithAnOwnerReferenceFailsTheCheckNamingIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	startManagerIn(t, ns, healthyMetrics(), nil)
	c := newChecklist(ns, withSmokeJob)
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")

	// Mallory may create Jobs in the namespace. She reads the checklist and, while it
	// waits for its sign-off, makes a Job of the smoke check's name, owned by the
	// checklist as tminus's own would be, that will succeed whatever the release. It
	// waits (suspended) until tminus gets to the check.
	owner := getChecklist(g, c)
	forged := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: checklist.JobName(c.Name, "T-5m", "smoke"),
			Labels: map[string]string{LabelChecklist: c.Name, LabelPhase: checklist.PhaseSlug("T-5m"), LabelCheck: "smoke"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: deployv1alpha1.GroupVersion.String(),
				Kind: "DeploymentChecklist", Name: owner.Name, UID: owner.UID, Controller: new(true)}}},
		Spec: smokeJobSpec(),
	}
	forged.Spec.Suspend = new(true)
	g.Expect(bed.Client.Create(ctx, forged)).To(Succeed())

	// The sign-off comes; tminus reaches the check; Mallory's Job runs and succeeds.
	approve(t, c, "deployment-lead", "alice for v2")
	g.Eventually(func(g Gomega) deployv1alpha1.PhaseState {
		return getChecklist(g, c).Status.Phases[1].State
	}, time.Minute, 100*time.Millisecond).Should(Equal(deployv1alpha1.PhaseStateOpen))
	g.Eventually(func(g Gomega) {
		var job batchv1.Job
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(forged), &job)).To(Succeed())
		job.Spec.Suspend = new(false)
		g.Expect(bed.Client.Update(ctx, &job)).To(Succeed())
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var job batchv1.Job
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(forged), &job)).To(Succeed())
		g.Expect(job.Status.Succeeded).To(BeNumerically(">=", 1), "the forged Job ran to success")
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// The check is decided: the Job is not its result.
	var cr deployv1alpha1.CheckStatus
	g.Eventually(func(g Gomega) deployv1alpha1.Outcome {
		cr = checkStatus(g, c, "T-5m", "smoke")
		return cr.Outcome
	}, time.Minute, 100*time.Millisecond).ShouldNot(Equal(deployv1alpha1.OutcomePending))
	g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomeFail), cr.Message)
	g.Expect(cr.Message).To(ContainSubstring("Job " + forged.Name + " was not created by tminus for this check"))
	g.Expect(cr.JobUID).To(BeEmpty())
	g.Consistently(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
		g.Expect(cur.Status.Phases[1].State).To(Equal(deployv1alpha1.PhaseStateOpen))
		g.Expect(rolledImages(t, ns)).To(Equal([]string{"checkout:v1"}), "nothing released on a forged result")
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())

	// The Job is deleted, as the message says: tminus runs its own, and that one's
	// result counts.
	g.Expect(bed.Client.Delete(ctx, forged, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	var ours batchv1.Job
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(forged), &ours)).To(Succeed())
		g.Expect(ours.UID).NotTo(Equal(forged.UID))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		cr := checkStatus(g, c, "T-5m", "smoke")
		g.Expect(cr.JobUID).To(Equal(ours.UID))
		g.Expect(cr.Outcome).To(Equal(deployv1alpha1.OutcomePass))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	waitRunning(t, d, "checkout:v2")
}
