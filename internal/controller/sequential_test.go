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
	"github.com/tminus-dev/tminus/test/testbed"
)

// labelNode sets (value non-empty) or removes a label of the test bed's one node.
func labelNode(t *testing.T, key, value string) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		var node corev1.Node
		if err := bed.Client.Get(context.Background(), client.ObjectKey{Name: testbed.NodeName}, &node); err != nil {
			return err
		}
		if value == "" {
			delete(node.Labels, key)
		} else {
			node.Labels[key] = value
		}
		return bed.Client.Update(context.Background(), &node)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

// TestASequentialReleaseHoldsTheFrontendUntilTheBackendRolledOutAndABackendBreachRestoresBoth:
// backend then frontend, release order Sequential, a trigger judging the backend's own
// error rate. Both get a new image; one sign-off releases the backend alone. Its new
// pods cannot be scheduled yet (they want a node label nothing has): the backend is
// still rolling out, so the frontend stays paused on its new template with no
// ReplicaSet of it. Once the node gets the label the backend rolls out, the frontend is
// released and rolls out; then the backend's error rate (its query asked with
// {{target}} = backend) breaches, and both are restored, the frontend first.
func TestASequentialReleaseHoldsTheFrontendUntilTheBackendRolledOutAndABackendBreachRestoresBoth(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	backend, frontend := workload(t, ns, "backend", "backend:v1"), workload(t, ns, "frontend", "frontend:v1")
	metrics := healthyMetrics()
	const backendErrors, frontendErrors = `error_rate{deployment="backend"}`, `error_rate{deployment="frontend"}`
	metrics.set(backendErrors, 0.001)
	metrics.set(frontendErrors, 0.001)
	startManagerIn(t, ns, metrics, nil)
	c := twoTierRelease(ns)
	c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "backend"}, {Kind: "Deployment", Name: "frontend"}}
	c.Spec.Release = &deployv1alpha1.ReleaseSpec{Order: deployv1alpha1.ReleaseSequential}
	c.Spec.Metrics = append(c.Spec.Metrics, deployv1alpha1.MetricSpec{Name: "tier-errors", Query: `error_rate{deployment="{{target}}"}`})
	c.Spec.RollbackTriggers = append(c.Spec.RollbackTriggers, deployv1alpha1.RollbackTrigger{Name: "backend-errors",
		Metric: "tier-errors", Target: "backend", Above: new("0.05")})
	create(t, c)
	waitPaused(t, backend)
	waitPaused(t, frontend)

	pool := "tminus.test/pool-" + ns
	t.Cleanup(func() { labelNode(t, pool, "") })
	g.Eventually(func() error {
		cur := getDeployment(t, backend)
		cur.Spec.Template.Spec.Containers[0].Image = "backend:v2"
		cur.Spec.Template.Spec.NodeSelector = map[string]string{pool: "backend"}
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	setImage(t, frontend, "frontend:v2")
	waitCandidates(t, c, "backend", "frontend")
	approve(t, c, "deployment-lead", "alice for v2")

	// The backend is released and its new pods wait for a node: it cannot roll out.
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.Status.Releasing).To(Equal("backend"))
		g.Expect(cur.Status.NextAction).To(ContainSubstring("then Deployment frontend"))
		d := getDeployment(t, backend)
		g.Expect(d.Spec.Paused).To(BeFalse())
		g.Expect(d.Status.UpdatedReplicas).To(BeNumerically(">", 0), "the backend's rollout started")
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	held := getDeployment(t, frontend)
	g.Expect(held.Spec.Paused).To(BeTrue(), "the frontend waits for the backend's rollout")
	g.Expect(held.Spec.Template.Spec.Containers[0].Image).To(Equal("frontend:v2"))
	var rss appsv1.ReplicaSetList
	g.Expect(bed.Client.List(context.Background(), &rss, client.InNamespace(ns))).To(Succeed())
	for _, rs := range rss.Items {
		g.Expect(rs.Spec.Template.Spec.Containers[0].Image).NotTo(Equal("frontend:v2"), "nothing of the frontend's release ran")
	}
	g.Expect(getChecklist(g, c).TargetStatusOf("frontend").ReleasedAt).To(BeNil())

	labelNode(t, pool, "backend")
	waitRunning(t, backend, "backend:v2")
	waitRunning(t, frontend, "frontend:v2")
	verifying := waitPhase(t, c, deployv1alpha1.PhaseVerifying)
	g.Expect(verifying.Status.Releasing).To(BeEmpty())
	g.Expect(verifying.TargetStatusOf("frontend").ReleasedAt.Time).NotTo(BeTemporally("<", verifying.TargetStatusOf("backend").ReleasedAt.Time))

	metrics.set(backendErrors, 0.07)
	rolled := waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(rolled.Status.Rollback.Message).To(ContainSubstring("rollback trigger backend-errors fired on Deployment backend's series: 0.07"))
	waitRunning(t, frontend, "frontend:v1")
	waitRunning(t, backend, "backend:v1")
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		g.Expect(cur.TargetStatusOf("frontend").RestoredAt).NotTo(BeNil())
		g.Expect(cur.TargetStatusOf("backend").RestoredAt).NotTo(BeNil())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
}
