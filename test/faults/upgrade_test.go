package faults

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/test/testbed"
)

// previousRelease is the commit whose manager the upgrade starts from: the end of wave 1
// and the lifecycle work, before checklist templates, the trust model, baselines,
// notifications, records and change freezes added to v1alpha1.
const previousRelease = "a719166"

// buildAt builds the manager of commit from the repository's history (git archive: the
// checkout is not touched) into dir.
func buildAt(t *testing.T, commit, name string) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("sh", "-c", "git archive --format=tar "+commit+" | tar -x -C "+src)
	archive.Dir = root
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s (the test needs the repository's history): %v\n%s", commit, err, out)
	}
	bin := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", bin, "./cmd")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the manager of %s: %v\n%s", commit, err, out)
	}
	return bin
}

func TestAReleaseHeldByThePreviousManagerIsFinishedByTheNewOneAfterAnUpgrade(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	old := buildAt(t, previousRelease, "tminus-previous")
	current := buildManager(t, "tminus-current")[0]
	args := []string{"--webhooks=false", "--allowed-hosts", "127.0.0.1/32"}

	// The previous manager runs against the current CRDs (the upgrade applies them first)
	// and holds a release for its sign-off, with the new template waiting.
	ns := newNamespace(t, "upgrade")
	svc := service(t)
	prev := runManagerWith(t, old, args...)
	g.Expect(bed.Client.Create(ctx, testbed.Deployment(ns, "checkout", "checkout:v1", 2))).To(Succeed())
	waitRolledOut(t, ns, "checkout:v1")
	g.Expect(bed.Client.Create(ctx, checklistFor(ns, svc.URL))).To(Succeed())
	g.Eventually(func(g Gomega) bool { return getDeployment(g, ns).Spec.Paused }, time.Minute, 100*time.Millisecond).Should(BeTrue())
	pushImage(t, ns, "checkout:v2")
	var before deployv1alpha1.DeploymentChecklistStatus
	g.Eventually(func(g Gomega) {
		before = getChecklist(g, ns).Status
		g.Expect(before.NextAction).To(ContainSubstring("waiting for deployment-lead sign-off"))
		g.Expect(before.Target.CandidateImages).To(Equal([]string{"checkout:v2"}), "the old manager saw the new template")
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// The rollout of the new manager: the old one stops, the new one starts.
	g.Expect(prev.Process.Signal(syscall.SIGTERM)).To(Succeed())
	_ = prev.Wait()
	runManagerWith(t, current, args...)
	approve(t, ns)
	waitPhase(t, ns, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, ns, "checkout:v2")

	done := getChecklist(g, ns)
	g.Expect(done.Status.Targets[0].PreDeployImages).To(Equal(before.Target.PreDeployImages),
		"what served before the release is the old manager's capture, kept")
	// The old manager named templates by the first 16 hex digits of their SHA-256; the
	// new one by all of it, and reads the old names as prefixes.
	g.Expect(gate.SameTemplate(done.Status.Targets[0].ReleasedTemplateHash, before.Target.CandidateTemplateHash)).To(BeTrue(),
		"the template released (%s) is the one the old manager held (%s)", done.Status.Targets[0].ReleasedTemplateHash,
		before.Target.CandidateTemplateHash)
	g.Expect(replicaSetImages(g, ns)).To(ConsistOf("checkout:v1", "checkout:v2"))
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, ns)
		g.Expect(cur.Status.Record).NotTo(BeEmpty(), "the new manager records the release")
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, checklist.CondRecorded)).To(BeTrue())
		g.Expect(cur.Finalizers).To(BeEmpty(), "the old manager's finalizer, if any, is taken off")
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
}
