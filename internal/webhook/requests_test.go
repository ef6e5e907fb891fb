package webhook_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gstruct"
	"github.com/onsi/gomega/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	engine "github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/plugin"
	"github.com/tminus-dev/tminus/test/testbed"
)

// A person's requests on a release (kubectl checklist rollback, abort): annotations
// the webhook verifies like sign-offs, by the verbs rollback and abort, granted by the
// shipped deploymentchecklist-responder-role and not by the editor role.

var installRoles sync.Once

// shippedRoles creates the responder and editor ClusterRoles as config/rbac ships them,
// once, and binds, in namespace ns, carol and the GitOps writer to the responder role
// and mallory to the editor role; it waits until the authorizer sees the bindings.
func shippedRoles(t *testing.T, ns string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	installRoles.Do(func() {
		root, err := testbed.RepoRoot()
		g.Expect(err).NotTo(HaveOccurred())
		for _, f := range []string{"deploymentchecklist_responder_role.yaml", "deploymentchecklist_editor_role.yaml"} {
			raw, err := os.ReadFile(filepath.Join(root, "config", "rbac", f))
			g.Expect(err).NotTo(HaveOccurred())
			var role rbacv1.ClusterRole
			g.Expect(yaml.Unmarshal(raw, &role)).To(Succeed())
			if err := bed.Client.Create(ctx, &role); !apierrors.IsAlreadyExists(err) {
				g.Expect(err).NotTo(HaveOccurred())
			}
		}
	})
	bind := func(name, role string, users ...string) {
		b := binding(name, role, users...)
		b.Namespace, b.RoleRef.Kind = ns, "ClusterRole"
		g.Expect(bed.Client.Create(ctx, b)).To(Succeed())
	}
	bind("responders", "deploymentchecklist-responder-role", "carol", gitops)
	bind("editors", "deploymentchecklist-editor-role", "mallory")
}

// request writes a request annotation as user (a merge patch, as kubectl checklist
// does), trying again only when the checklist was not found yet.
func request(t *testing.T, user string, c *deployv1alpha1.DeploymentChecklist, annotation, value string) error {
	t.Helper()
	return annotateIn(as(t, user), c, map[string]string{annotation: value})
}

// requested matches a status.request record.
func requested(kind deployv1alpha1.RequestKind, by, writtenBy string, state deployv1alpha1.RequestState) types.GomegaMatcher {
	return gstruct.MatchFields(gstruct.IgnoreExtras, gstruct.Fields{
		"Kind": Equal(kind), "By": Equal(by), "WrittenBy": Equal(writtenBy), "State": Equal(state),
	})
}

// setImageRefused writes image once and returns the API server's answer.
func setImageRefused(d *appsv1.Deployment, image string) (*appsv1.Deployment, error) {
	var cur appsv1.Deployment
	if err := bed.Client.Get(context.Background(), client.ObjectKeyFromObject(d), &cur); err != nil {
		return nil, err
	}
	cur.Spec.Template.Spec.Containers[0].Image = image
	return &cur, bed.Client.Update(context.Background(), &cur)
}

func stored(g Gomega, c *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.DeploymentChecklist {
	var cur deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
	return &cur
}

func TestARollbackRequestedDuringVerificationByAResponderRestoresTheLastVersion(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	shippedRoles(t, ns)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitRolledOut(t, d, "checkout:v2")

	// mallory may edit checklists; that does not let her roll a release back.
	err := request(t, "mallory", c, deployv1alpha1.RollbackRequestedAnnotation, "mallory: I think it is slow")
	g.Expect(err).To(MatchError(ContainSubstring(`user "mallory" may not request a rollback of checklist checkout-v2: it needs the verb "rollback"`)))
	err = request(t, "carol", c, deployv1alpha1.RollbackRequestedAnnotation, "carol: ")
	g.Expect(err).To(MatchError(ContainSubstring("a request needs a reason")))
	err = request(t, "carol", c, deployv1alpha1.RollbackRequestedAnnotation, "alice: CVE-2026-1234")
	g.Expect(err).To(MatchError(ContainSubstring(`names "alice" but was written by "carol"`)))
	err = request(t, "carol", c, deployv1alpha1.AbortRequestedAnnotation, "carol: too late")
	g.Expect(err).To(MatchError(ContainSubstring("abort refused on checklist checkout-v2: T-0 has passed")))

	g.Expect(request(t, "carol", c, deployv1alpha1.RollbackRequestedAnnotation, "carol: CVE-2026-1234 in the new image")).To(Succeed())
	cur := waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(cur.Annotations).To(HaveKeyWithValue("verified.deploy.tminus.dev/rollback-requested",
		"carol: CVE-2026-1234 in the new image | carol"))
	g.Expect(cur.Status.Request).NotTo(BeNil())
	g.Expect(*cur.Status.Request).To(requested(deployv1alpha1.RequestRollback, "carol", "carol", deployv1alpha1.RequestActed))
	g.Expect(meta.FindStatusCondition(cur.Status.Conditions, engine.CondReady).Reason).To(Equal(engine.ReasonRollbackRequested))
	g.Expect(cur.Status.Rollback.Message).To(Equal("rolled back by carol: CVE-2026-1234 in the new image"))
	waitRolledOut(t, d, "checkout:v1")
	g.Eventually(func(g Gomega) *metav1.Time { return firstTarget(g, stored(g, c)).RestoredAt }, time.Minute, 100*time.Millisecond).
		ShouldNot(BeNil())
}

// TestARollbackCommittedThroughGitOpsAfterTheReleaseSucceededRestoresIt: the
// vulnerability found after the release ended; the request is committed to Git and
// applied by the trusted writer, naming the person who asked.
func TestARollbackCommittedThroughGitOpsAfterTheReleaseSucceededRestoresIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	shippedRoles(t, ns)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", 2*time.Second)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseSucceeded)

	g.Expect(request(t, gitops, c, deployv1alpha1.RollbackRequestedAnnotation, "carol: CVE-2026-1234 found today")).To(Succeed())
	cur := waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(*cur.Status.Request).To(requested(deployv1alpha1.RequestRollback, "carol", gitops, deployv1alpha1.RequestActed))
	g.Expect(cur.Status.Request.After).To(Equal(deployv1alpha1.PhaseSucceeded))
	waitRolledOut(t, d, "checkout:v1")
	g.Expect(get(t, d).Spec.Paused).To(BeFalse())
}

func TestARollbackOfASucceededReleaseWhoseTemplateWasReplacedIsRefused(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	shippedRoles(t, ns)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", 2*time.Second)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseSucceeded)
	// v3 is pushed (and held: no checklist releases it yet).
	setImage(t, d, "checkout:v3")

	err := request(t, "carol", c, deployv1alpha1.RollbackRequestedAnnotation, "carol: CVE-2026-1234")
	g.Expect(err).To(MatchError(ContainSubstring(
		"rollback refused on checklist checkout-v2: the released template (checkout:v2) no longer serves on Deployment checkout")))
	g.Expect(stored(g, c).Status.Phase).To(Equal(deployv1alpha1.PhaseSucceeded))
}

func TestAnAbortBeforeT0LeavesTheNewImageHeldAndRollsNothing(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	shippedRoles(t, ns)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	g.Eventually(func(g Gomega) string { return firstTarget(g, stored(g, c)).CandidateTemplateHash }, time.Minute, 100*time.Millisecond).
		ShouldNot(BeEmpty())

	err := request(t, "carol", c, deployv1alpha1.RollbackRequestedAnnotation, "carol: wrong build")
	g.Expect(err).To(MatchError(ContainSubstring("rollback refused on checklist checkout-v2: T-0 has not passed")))
	g.Expect(request(t, "mallory", c, deployv1alpha1.AbortRequestedAnnotation, "mallory: wrong build")).To(
		MatchError(ContainSubstring(`it needs the verb "abort"`)))
	g.Expect(request(t, "carol", c, deployv1alpha1.AbortRequestedAnnotation, "carol: wrong build")).To(Succeed())

	cur := waitFor(t, c, deployv1alpha1.PhaseFailed)
	ready := meta.FindStatusCondition(cur.Status.Conditions, engine.CondReady)
	g.Expect(ready.Reason).To(Equal(engine.ReasonAborted))
	g.Expect(ready.Message).To(ContainSubstring("aborted by carol: wrong build"))
	g.Expect(ready.Message).To(ContainSubstring("stays held"))
	g.Eventually(func(g Gomega) string {
		return get(t, d).Annotations[deployv1alpha1.HeldByAnnotation]
	}, time.Minute, 100*time.Millisecond).Should(Equal(deployv1alpha1.HeldByAdmission), "the change stays held, now at admission's name")
	held := get(t, d)
	g.Expect(held.Spec.Paused).To(BeTrue())
	g.Expect(held.Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v2"))
	g.Consistently(func(g Gomega) int { return podsOf(g, ns, "checkout:v2") }, 2*time.Second, 200*time.Millisecond).Should(BeZero())
}

// TestARetryAfterARollbackReleasesTheSameRevisionAfterFreshSignOffs: v2 was rolled back
// at carol's request; the fix was elsewhere, so v2 is retried: the retry asks its
// sign-offs again, the rolled-back template is admitted again (held for the retry) when
// GitOps pushes it, and the retry releases v2; the old checklist says it was retried
// and by whom.
func TestARetryAfterARollbackReleasesTheSameRevisionAfterFreshSignOffs(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	shippedRoles(t, ns)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	g.Expect(request(t, "carol", c, deployv1alpha1.RollbackRequestedAnnotation, "carol: payments provider down, not us")).To(Succeed())
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitRolledOut(t, d, "checkout:v1")
	g.Eventually(func(g Gomega) *metav1.Time { return firstTarget(g, stored(g, c)).RestoredAt }, time.Minute, 100*time.Millisecond).
		ShouldNot(BeNil())
	// While checkout-v2 exists, its rolled-back template stays refused.
	_, err := setImageRefused(d, "checkout:v2")
	g.Expect(err).To(MatchError(ContainSubstring("was rolled back by checklist checkout-v2")))

	// A retry-of annotation must name what it says.
	forged := release(ns, "v3", time.Hour)
	forged.Name, forged.Annotations = "checkout-v3", map[string]string{deployv1alpha1.RetryOfAnnotation: "checkout-v2"}
	g.Expect(bed.Client.Create(ctx, forged)).To(MatchError(ContainSubstring("a retry is of the same Deployment and revision")))

	made, err := plugin.Retry(ctx, bed.Client, ns, "checkout-v2", "testbed-admin")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(made).To(Equal("checkout-v2-retry-1"))
	g.Expect(stored(g, c).Annotations).To(HaveKeyWithValue(deployv1alpha1.RetriedAsAnnotation, "checkout-v2-retry-1 by testbed-admin"))
	_, err = plugin.Retry(ctx, bed.Client, ns, "checkout-v2", "testbed-admin")
	g.Expect(err).To(MatchError(ContainSubstring("was already retried: checkout-v2-retry-1 by testbed-admin")))

	retry := release(ns, "v2", time.Hour)
	retry.Name = made
	g.Eventually(func(g Gomega) bool { return get(t, d).Spec.Paused }, time.Minute, 100*time.Millisecond).Should(BeTrue(),
		"the retry holds the Deployment before T-0")
	stored2 := setImage(t, d, "checkout:v2")
	g.Expect(stored2.Spec.Paused).To(BeTrue(), "the rolled-back template is admitted again, held for the retry")
	g.Consistently(func(g Gomega) deployv1alpha1.ChecklistPhase { return stored(g, retry).Status.Phase }, 2*time.Second, 200*time.Millisecond).
		Should(BeElementOf(deployv1alpha1.PhaseRunning, deployv1alpha1.PhasePending), "no sign-off was carried over")
	signOff(t, retry)
	waitFor(t, retry, deployv1alpha1.PhaseVerifying)
	waitRolledOut(t, d, "checkout:v2")
}

// TestAnAbortedReleaseRetriedReleasesTheChangeItLeftHeldAfterFreshSignOffs: carol
// aborts v2 while its sign-offs are awaited (a wrong build, she thought); the change
// stays held. It was the
// right build after all: the retry takes over the held template without it being
// pushed again, asks its sign-offs afresh (the aborted checklist's do not carry over)
// and releases v2.
func TestAnAbortedReleaseRetriedReleasesTheChangeItLeftHeldAfterFreshSignOffs(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	shippedRoles(t, ns)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	g.Eventually(func(g Gomega) string { return firstTarget(g, stored(g, c)).CandidateTemplateHash }, time.Minute, 100*time.Millisecond).
		ShouldNot(BeEmpty())
	g.Expect(request(t, "carol", c, deployv1alpha1.AbortRequestedAnnotation, "carol: wrong build")).To(Succeed())
	waitFor(t, c, deployv1alpha1.PhaseFailed)
	g.Eventually(func(g Gomega) string {
		return get(t, d).Annotations[deployv1alpha1.HeldByAnnotation]
	}, time.Minute, 100*time.Millisecond).Should(Equal(deployv1alpha1.HeldByAdmission))

	made, err := plugin.Retry(ctx, bed.Client, ns, "checkout-v2", "carol")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(made).To(Equal("checkout-v2-retry-1"))
	retry := release(ns, "v2", time.Hour)
	retry.Name = made
	g.Eventually(func(g Gomega) string { return firstTarget(g, stored(g, retry)).CandidateTemplateHash }, time.Minute, 100*time.Millisecond).
		ShouldNot(BeEmpty(), "the retry holds the change the aborted checklist left held")
	g.Consistently(func(g Gomega) deployv1alpha1.ChecklistPhase { return stored(g, retry).Status.Phase }, 2*time.Second, 200*time.Millisecond).
		Should(BeElementOf(deployv1alpha1.PhaseRunning, deployv1alpha1.PhasePending), "no sign-off was carried over")
	g.Expect(podsOf(g, ns, "checkout:v2")).To(BeZero())
	signOff(t, retry)
	waitFor(t, retry, deployv1alpha1.PhaseVerifying)
	waitRolledOut(t, d, "checkout:v2")
	g.Expect(stored(g, c).Status.Phase).To(Equal(deployv1alpha1.PhaseFailed), "the aborted checklist stays as it ended")
}

// TestARollbackRequestedOnAFrontendAndBackendReleaseRestoresBothInReverseOrder: one
// release of a frontend and its backend (the backend's image listed first, so it was
// released first); during verification carol asks for the rollback: both are restored
// to their own last version, the frontend first, and the event says who and why.
func TestARollbackRequestedOnAFrontendAndBackendReleaseRestoresBothInReverseOrder(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	shippedRoles(t, ns)
	var backend, frontend *appsv1.Deployment
	for _, w := range []struct {
		name string
		d    **appsv1.Deployment
	}{{"backend", &backend}, {"frontend", &frontend}} {
		d := testbed.Deployment(ns, w.name, w.name+":v1", 2)
		g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
		waitRolledOut(t, d, w.name+":v1")
		*w.d = label(t, d)
	}
	c := release(ns, "v2", time.Hour)
	c.Name, c.Spec.Target = "shop-v2", nil
	c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "backend"}, {Kind: "Deployment", Name: "frontend"}}
	g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
	g.Expect(setImage(t, backend, "backend:v2").Spec.Paused).To(BeTrue())
	g.Expect(setImage(t, frontend, "frontend:v2").Spec.Paused).To(BeTrue())
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	waitRolledOut(t, backend, "backend:v2")
	waitRolledOut(t, frontend, "frontend:v2")

	g.Expect(request(t, "carol", c, deployv1alpha1.RollbackRequestedAnnotation, "carol: CVE-2026-1234 in the backend")).To(Succeed())
	cur := waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(cur.Status.Rollback.Reason).To(Equal(engine.ReasonRollbackRequested))
	waitRolledOut(t, backend, "backend:v1")
	waitRolledOut(t, frontend, "frontend:v1")
	g.Eventually(func(g Gomega) {
		cur := stored(g, c)
		g.Expect(cur.TargetStatusOf("backend").RestoredAt).NotTo(BeNil())
		g.Expect(cur.TargetStatusOf("frontend").RestoredAt).NotTo(BeNil())
		var events corev1.EventList
		g.Expect(bed.Client.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		var msgs []string
		for _, e := range events.Items {
			if e.Reason == engine.ReasonRolledBack {
				msgs = append(msgs, e.Message)
			}
		}
		g.Expect(msgs).To(ConsistOf(And(
			ContainSubstring("rolled back by carol: CVE-2026-1234 in the backend"),
			ContainSubstring("restoring Deployment frontend, backend, in reverse order of release"))))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
}

// firstTarget is the status of a checklist's first target, failing the poll while none
// is recorded.
func firstTarget(g Gomega, c *deployv1alpha1.DeploymentChecklist) *deployv1alpha1.TargetStatus {
	g.Expect(c.Status.Targets).NotTo(BeEmpty())
	return &c.Status.Targets[0].TargetStatus
}
