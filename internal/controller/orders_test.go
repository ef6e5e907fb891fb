package controller

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// Orders of events around the engine's decisions that the API server interleaves: a
// write lands between a decision and the write that applies it.

// pushDuringRelease lets the pipeline's push of image land on the Deployment just as
// the manager's first release write goes out: the release, read before the push,
// conflicts and is retried on the Deployment read afresh.
type pushDuringRelease struct {
	client.Client
	image string
	once  sync.Once
	err   error
}

func (p *pushDuringRelease) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if d, ok := obj.(*appsv1.Deployment); ok {
		if data, _ := patch.Data(obj); bytes.Contains(data, []byte(deployv1alpha1.ReleasedRevisionsAnnotation)) {
			p.once.Do(func() {
				p.err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
					var cur appsv1.Deployment
					if err := bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
						return err
					}
					cur.Spec.Template.Spec.Containers[0].Image = p.image
					return bed.Client.Update(ctx, &cur)
				})
			})
		}
	}
	return p.Client.Patch(ctx, obj, patch, opts...)
}

func TestAPushLandingAsT0ReleasesIsNotUnpausedUnderTheSignOffsOfTheTemplateBefore(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	push := &pushDuringRelease{image: "checkout:v3"}
	startManagerIn(t, ns, healthyMetrics(), func(c client.Client, _ context.CancelFunc) client.Client { push.Client = c; return push })
	c := newChecklist(ns)
	create(t, c)
	waitPaused(t, d)
	setImage(t, d, "checkout:v2")

	// alice signs off v2; T-0 releases it, and v3 lands on the Deployment in between
	// the release's read and its write.
	approve(t, c, "deployment-lead", "alice for v2")
	failed := waitPhase(t, c, deployv1alpha1.PhaseFailed)
	push.once.Do(func() {}) // the push is done (or never happened: the image below says)
	g.Expect(push.err).NotTo(HaveOccurred())
	g.Expect(failed.Status.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
	g.Expect(condition(g, c, checklist.CondReady).Reason).To(Equal(checklist.ReasonReleaseReplaced))

	// v3 was signed off by nobody: it stays held, waiting for a checklist of its own.
	g.Eventually(func(g Gomega) {
		cur := getDeployment(t, d)
		g.Expect(cur.Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v3"))
		g.Expect(cur.Spec.Paused).To(BeTrue(), "v3 is not unpaused under v2's sign-offs")
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
		g.Expect(cur.Annotations).NotTo(HaveKey(deployv1alpha1.ReleasedRevisionsAnnotation))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func() []string { return rolledImages(t, ns) }, 2*time.Second, 200*time.Millisecond).
		ShouldNot(ContainElement("checkout:v3"))
}

func TestOfTwoChecklistsCreatedInTheSameInstantOnlyTheFirstActsAndTheOtherSaysItIsBlocked(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(t, ns, "checkout:v1")
	first := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) { c.Labels = map[string]string{"race": "first"} })
	second := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) {
		c.Name, c.Spec.Revision, c.Labels = "checkout-v3", "v3", map[string]string{"race": "second"}
	})

	// Both are created at once, with no admission webhook to refuse the second; the
	// manager sees only the second at first (its cache had not seen the first yet), so
	// the second starts: it captures v1 and holds the Deployment.
	late := startManagerSeeing(t, ns, labels.SelectorFromSet(labels.Set{"race": "second"}), healthyMetrics(), nil)
	create(t, first)
	create(t, second)
	started := waitPhase(t, second, deployv1alpha1.PhaseRunning)
	g.Expect(started.Status.Targets[0].CapturedAt).NotTo(BeNil())
	waitPaused(t, d)
	late.stop()

	// The manager sees both: the first comes first (created no later, and first by
	// name). The second stops, captured nothing any more, touches nothing.
	startManagerIn(t, ns, healthyMetrics(), nil)
	blocked := waitPhase(t, second, deployv1alpha1.PhaseBlocked)
	g.Expect(blocked.Status.NextAction).To(ContainSubstring("checklist checkout-v2 is live on Deployment checkout"))
	g.Expect(blocked.Status.Targets).To(BeEmpty())
	g.Expect(condition(g, second, checklist.CondReady).Reason).To(Equal(checklist.ReasonBlocked))
	running := waitPhase(t, first, deployv1alpha1.PhaseRunning)
	g.Expect(running.Status.Targets[0].PreDeployImages).To(Equal([]string{"checkout:v1"}))

	// The first releases v2 and ends; then the second starts from what serves.
	setImage(t, d, "checkout:v2")
	approve(t, first, "deployment-lead", "alice for v2")
	waitPhase(t, first, deployv1alpha1.PhaseSucceeded)
	// The second captures only a settled Deployment, so v2 serving is what it holds
	// from (it pauses the Deployment again as soon as it does: its own hold, so the
	// test does not wait for an unpaused v2, which would race that hold).
	g.Eventually(func(g Gomega) {
		again := getChecklist(g, second)
		g.Expect(again.Status.Phase).To(Equal(deployv1alpha1.PhaseRunning))
		g.Expect(again.Status.Targets).NotTo(BeEmpty())
		g.Expect(again.Status.Targets[0].PreDeployImages).To(Equal([]string{"checkout:v2"}))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}
