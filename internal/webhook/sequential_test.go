package webhook_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// TestAFrontendWaitingItsTurnIsStoredPausedWhenResumedOrGivenANewImage: backend then
// frontend, release order Sequential. The backend is released, and its new pods wait
// for a node label nothing has yet, so the frontend waits its turn. Someone resumes the
// frontend (kubectl rollout resume): the API server stores it paused. A pipeline pushes
// another frontend image: stored paused too, and it becomes what the frontend
// releases. Once the backend rolls out, the frontend is released with that image.
func TestAFrontendWaitingItsTurnIsStoredPausedWhenResumedOrGivenANewImage(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	backend, frontend := gatedWorkload(t, ns, "backend"), gatedWorkload(t, ns, "frontend")
	c := shopRelease(ns, time.Hour, "backend", "frontend")
	c.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: deployv1alpha1.ReleaseSequential}
	c.Spec.RollbackTriggers = nil // Prometheus is not reachable here; nothing to judge after T-0
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())

	pool := "tminus.test/pool-" + ns
	setNodeLabel := func(value string) {
		g.Eventually(func() error {
			var node corev1.Node
			if err := bed.Client.Get(context.Background(), client.ObjectKey{Name: testbed.NodeName}, &node); err != nil {
				return err
			}
			if value == "" {
				delete(node.Labels, pool)
			} else {
				node.Labels[pool] = value
			}
			return bed.Client.Update(context.Background(), &node)
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	}
	t.Cleanup(func() { setNodeLabel("") })
	g.Eventually(func() error {
		cur := get(t, backend)
		cur.Spec.Template.Spec.Containers[0].Image = "backend:v2"
		cur.Spec.Template.Spec.NodeSelector = map[string]string{pool: "backend"}
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	setImage(t, frontend, "frontend:v2")
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		for _, n := range []string{"backend", "frontend"} {
			g.Expect(cur.TargetStatusOf(n)).NotTo(BeNil())
			g.Expect(cur.TargetStatusOf(n).CandidateTemplateHash).NotTo(BeEmpty())
		}
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	signOff(t, c)
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.Status.Releasing).To(Equal("backend"))
		g.Expect(get(t, backend).Status.UpdatedReplicas).To(BeNumerically(">", 0), "the backend's rollout started")
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// kubectl rollout resume deployment/frontend
	var resumed appsv1.Deployment
	g.Eventually(func() error {
		cur := get(t, frontend)
		cur.Spec.Paused = false
		if err := bed.Client.Update(context.Background(), cur); err != nil {
			return err
		}
		resumed = *cur
		return nil
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(resumed.Spec.Paused).To(BeTrue(), "a resume of a target waiting its turn is stored paused")
	pushed := setImage(t, frontend, "frontend:v3")
	g.Expect(pushed.Spec.Paused).To(BeTrue(), "a new image on a target waiting its turn is stored paused")
	g.Expect(replicaSetImages(g, ns)).NotTo(ContainElements("frontend:v2", "frontend:v3"))

	setNodeLabel("backend")
	waitRolledOut(t, backend, "backend:v2")
	waitRolledOut(t, frontend, "frontend:v3")
	verifying := waitFor(t, c, deployv1alpha1.PhaseVerifying)
	g.Expect(verifying.TargetStatusOf("frontend").CandidateImages).To(Equal([]string{"frontend:v3"}))
}
