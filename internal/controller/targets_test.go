package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/record"
	"github.com/tminus-dev/tminus/test/testbed"
)

// twoTierRelease is newChecklist for the frontend and its backend.
func twoTierRelease(ns string) *deployv1alpha1.DeploymentChecklist {
	c := newChecklist(ns, withLongVerification)
	c.Name = "shop-v2"
	c.Spec.Target = nil
	c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "frontend"}, {Kind: "Deployment", Name: "backend"}}
	return c
}

func workload(t *testing.T, ns, name, image string) *appsv1.Deployment {
	t.Helper()
	d := testbed.Deployment(ns, name, image, 2)
	NewWithT(t).Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	waitRunning(t, d, image)
	return d
}

// waitCandidates waits until the checklist follows a candidate on each named target.
func waitCandidates(t *testing.T, c *deployv1alpha1.DeploymentChecklist, names ...string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		for _, n := range names {
			ts := cur.TargetStatusOf(n)
			g.Expect(ts).NotTo(BeNil())
			g.Expect(ts.CandidateTemplateHash).NotTo(BeEmpty(), n)
		}
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
}

// TestAFrontendAndItsBackendAreReleasedTogetherAndRolledBackTogether: both get a new
// image before T-0 and are held; one sign-off releases both; the error rate breaches at
// T+ and both are restored to their own pre-deploy image, with one RolledBack event,
// and the release record lists both.
func TestAFrontendAndItsBackendAreReleasedTogetherAndRolledBackTogether(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	frontend, backend := workload(t, ns, "frontend", "frontend:v1"), workload(t, ns, "backend", "backend:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := twoTierRelease(ns)
	create(t, c)
	waitPaused(t, frontend)
	waitPaused(t, backend)
	setImage(t, frontend, "frontend:v2")
	setImage(t, backend, "backend:v2")
	waitCandidates(t, c, "frontend", "backend")
	approve(t, c, "deployment-lead", "alice for v2")
	waitRunning(t, frontend, "frontend:v2")
	waitRunning(t, backend, "backend:v2")
	verifying := waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	g.Expect(verifying.Status.TargetNames).To(Equal("frontend,backend"))

	metrics.set(errorQuery, 0.07)
	waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, frontend, "frontend:v1")
	waitRunning(t, backend, "backend:v1")
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.TargetStatusOf("frontend").RestoredAt).NotTo(BeNil())
		g.Expect(cur.TargetStatusOf("backend").RestoredAt).NotTo(BeNil())
		g.Expect(cur.Status.Rollback.CompletedAt).NotTo(BeNil())
		g.Expect(cur.Status.Record).NotTo(BeEmpty())
		var cm corev1.ConfigMap
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cur.Status.Record}, &cm)).To(Succeed())
		kept, err := record.Parse(&cm)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(kept.Targets).To(HaveLen(2))
		g.Expect(kept.Targets[0].Name).To(Equal("frontend"))
		g.Expect(kept.Targets[1].ReleasedImages).To(Equal([]string{"backend:v2"}))
		g.Expect(kept.Targets[1].Restored).NotTo(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	var events corev1.EventList
	g.Expect(bed.Client.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	rolledBack := 0
	for _, e := range events.Items {
		if e.Reason == checklist.ReasonRolledBack {
			rolledBack++
			g.Expect(e.Message).To(ContainSubstring("restoring Deployment backend, frontend, in reverse order of release"))
		}
	}
	g.Expect(rolledBack).To(Equal(1))
}

// TestOnlyTheBackendChangedTheFrontendIsNeitherReleasedNorRestored: the frontend keeps
// its image; at T-0 only the backend is released, tminus's pause comes off the
// frontend, and the rollback leaves the frontend's template as it was.
func TestOnlyTheBackendChangedTheFrontendIsNeitherReleasedNorRestored(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	frontend, backend := workload(t, ns, "frontend", "frontend:v1"), workload(t, ns, "backend", "backend:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil)
	c := twoTierRelease(ns)
	create(t, c)
	waitPaused(t, backend)
	setImage(t, backend, "backend:v2")
	waitCandidates(t, c, "backend")
	approve(t, c, "deployment-lead", "alice for v2")
	waitRunning(t, backend, "backend:v2")
	waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	g.Eventually(func() bool { return getDeployment(t, frontend).Spec.Paused }, time.Minute, 100*time.Millisecond).Should(BeFalse())
	gen := getDeployment(t, frontend).Generation

	metrics.set(errorQuery, 0.07)
	waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, backend, "backend:v1")
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Rollback.CompletedAt).NotTo(BeNil())
		g.Expect(cur.TargetStatusOf("frontend").ReleasedTemplateHash).To(BeEmpty())
		g.Expect(cur.TargetStatusOf("frontend").RestoredAt).To(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(getDeployment(t, frontend).Generation).To(Equal(gen), "the frontend was not written to")
}
