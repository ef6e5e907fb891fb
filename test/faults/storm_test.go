package faults

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/test/manager"
	"github.com/tminus-dev/tminus/test/testbed"
)

// gitops re-applies the committed manifests of the checklist and its Deployment, as
// Argo CD or Flux with a short sync interval would, with server-side apply under its own
// field manager (which leaves spec.paused and the checklist's status to tminus). Each
// apply stamps a sync counter into an annotation, so every one is a real write that
// moves the objects' resourceVersions under tminus's feet.
type gitops struct {
	ns, url string
	image   atomic.Value
	applied atomic.Int64
}

func (g *gitops) apply(ctx context.Context, obj client.Object, n int64) error {
	obj.SetAnnotations(map[string]string{"gitops.example.com/sync": strconv.FormatInt(n, 10)})
	raw, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return bed.Client.Patch(ctx, obj, client.RawPatch("application/apply-patch+yaml", raw),
		client.FieldOwner("gitops"), client.ForceOwnership)
}

func (g *gitops) sync(ctx context.Context) error {
	n := g.applied.Add(1)
	if err := g.apply(ctx, testbed.Deployment(g.ns, "checkout", g.image.Load().(string), 3), n); err != nil {
		return err
	}
	return g.apply(ctx, checklistFor(g.ns, g.url), n)
}

// storm syncs every period until ctx ends.
func (g *gitops) storm(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = g.sync(ctx)
		}
	}
}

func TestTminusConvergesWhileGitOpsReappliesTheChecklistAndItsTarget(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "storm")
	svc := service(t)
	ctx := context.Background()

	git := &gitops{ns: ns, url: svc.URL}
	git.image.Store("checkout:v1")
	g.Expect(git.apply(ctx, testbed.Deployment(ns, "checkout", "checkout:v1", 3), 0)).To(Succeed())
	waitRolledOut(t, ns, "checkout:v1")

	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgr, err := manager.Start(mgrCtx, bed.Config, bed.Client.Scheme(), &prometheus.Provider{Secrets: bed.Client}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { stopMgr(); <-mgr.Done })

	conflictsBefore := conflicts(g)
	stormCtx, stopStorm := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Two syncing loops, as an Argo CD application and a Flux Kustomization both
	// owning the same manifests would.
	for range 2 {
		wg.Go(func() { git.storm(stormCtx, 10*time.Millisecond) })
	}
	t.Cleanup(func() { stopStorm(); wg.Wait() })

	// The checklist arrives with the storm; tminus holds the Deployment regardless.
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns).Spec.Paused).To(BeTrue())
		c := getChecklist(g, ns)
		g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, checklist.CondAwaitingApproval)).To(BeTrue())
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())

	// The release is committed: the storm now applies v2. Held, it does not roll.
	git.image.Store("checkout:v2")
	g.Eventually(func(g Gomega) string {
		return getDeployment(g, ns).Spec.Template.Spec.Containers[0].Image
	}, time.Minute, 50*time.Millisecond).Should(Equal("checkout:v2"))
	g.Consistently(func(g Gomega) []string { return replicaSetImages(g, ns) }, 3*time.Second, 200*time.Millisecond).
		Should(ConsistOf("checkout:v1"), "no ReplicaSet of v2 while the sign-off is missing")

	approve(t, ns)
	waitPhase(t, ns, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, ns, "checkout:v2")

	stopStorm()
	wg.Wait()
	c := getChecklist(g, ns)
	g.Expect(c.Status.Approvals).To(HaveLen(1))
	g.Expect(c.Annotations).To(HaveKey("gitops.example.com/sync"), "GitOps's own fields are left alone")
	g.Expect(git.applied.Load()).To(BeNumerically(">", 20), "the storm ran")
	g.Expect(conflicts(g)-conflictsBefore).To(BeNumerically(">", 0),
		"the storm made writes conflict, and tminus converged anyway")
	t.Logf("%d syncs, %.0f conflicts answered by the API server", git.applied.Load(), conflicts(g)-conflictsBefore)
}
