package webhook_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// TestARollbackWhoseOldReplicaSetIsGoneRestoresTheOldVersion: checkout keeps no old
// ReplicaSets (revisionHistoryLimit: 0), so once v2 rolled out, nothing of v1 is left
// but the checklist's record of it. v2 breaches its trigger: the restore of v1 is
// tminus's own and is admitted, not held as a template nothing released; v1 serves
// again, unpaused.
func TestARollbackWhoseOldReplicaSetIsGoneRestoresTheOldVersion(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 3)
	d.Spec.RevisionHistoryLimit = new(int32(0))
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v1")
	d = label(t, d)

	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitRolledOut(t, d, "checkout:v2")
	g.Eventually(func(g Gomega) []string { return replicaSetImages(g, ns) }, time.Minute, 100*time.Millisecond).
		Should(ConsistOf("checkout:v2"), "v1's ReplicaSet cleaned up")

	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitRolledOut(t, d, "checkout:v1")
	cur := get(t, d)
	g.Expect(cur.Spec.Paused).To(BeFalse())
	g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.HeldByAnnotation))
	g.Eventually(func(g Gomega) int { return podsOf(g, ns, "checkout:v2") }, time.Minute, 100*time.Millisecond).Should(BeZero())
	g.Eventually(func(g Gomega) *deployv1alpha1.DeploymentChecklist {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		return &cur
	}, time.Minute, 100*time.Millisecond).Should(HaveField("Status.Rollback.CompletedAt", Not(BeNil())))
}
