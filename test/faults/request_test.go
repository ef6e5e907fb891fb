package faults

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

// rolledBackEvents counts the RolledBack events of checkout-v2 in ns, a series counting
// each time it was emitted.
func rolledBackEvents(g Gomega, ns string) int {
	var list eventsv1.EventList
	g.Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Reason != "RolledBack" || e.Regarding.Name != "checkout-v2" {
			continue
		}
		n++
		if e.Series != nil {
			n += int(e.Series.Count) - 1
		}
	}
	return n
}

// TestARollbackRequestIsActedOnOnceAcrossAManagerKilledRightAfterItWasWritten runs the
// real manager binary with its webhooks: the request is verified as it is written, the
// manager is killed at once, and the one started after it rolls the release back (or
// finishes the rollback the killed one decided), once: one rollback, fired once, and a
// manager started again does nothing more.
func TestARollbackRequestIsActedOnOnceAcrossAManagerKilledRightAfterItWasWritten(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(client.IgnoreAlreadyExists(bed.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}))).To(Succeed())
	port, err := testbed.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	installWebhooks(t, port)
	bin := buildManager(t, "tminus-requests")[0]
	start := func() func() {
		mgr := runManagerWith(t, bin, "--namespace", leaseNamespace, "--webhook-host", "127.0.0.1",
			"--webhook-port", strconv.Itoa(port), "--webhook-dns-names", "localhost", "--allowed-hosts", "127.0.0.1/32")
		return func() {
			g.Expect(mgr.Process.Signal(syscall.SIGKILL)).To(Succeed())
			_ = mgr.Wait()
		}
	}
	kill := start()

	ns := newNamespace(t, "request")
	svc := service(t)
	g.Expect(bed.Client.Create(ctx, testbed.Deployment(ns, "checkout", "checkout:v1", 2))).To(Succeed())
	waitRolledOut(t, ns, "checkout:v1")
	c := checklistFor(ns, svc.URL)
	c.Spec.Phases[1].At = "1h" // verifying for an hour: the request comes first
	g.Eventually(func() error { return bed.Client.Create(ctx, c.DeepCopy()) }, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	// Held before the push, so the push is the candidate.
	g.Eventually(func(g Gomega) bool { return getDeployment(g, ns).Spec.Paused }, time.Minute, 100*time.Millisecond).Should(BeTrue())
	pushImage(t, ns, "checkout:v2")
	signOff := []byte(`{"metadata":{"annotations":{"` + deployv1alpha1.ApprovalAnnotationPrefix + `deployment-lead":"testbed-admin for v2"}}}`)
	g.Expect(bed.Client.Patch(ctx, c.DeepCopy(), client.RawPatch(types.MergePatchType, signOff))).To(Succeed())
	waitPhase(t, ns, deployv1alpha1.PhaseVerifying)
	waitRolledOut(t, ns, "checkout:v2")

	rollback := []byte(`{"metadata":{"annotations":{"` + deployv1alpha1.RollbackRequestedAnnotation + `":"testbed-admin: CVE-2026-1234 in the new image"}}}`)
	g.Expect(bed.Client.Patch(ctx, c.DeepCopy(), client.RawPatch(types.MergePatchType, rollback))).To(Succeed())
	kill()
	g.Expect(getChecklist(g, ns).Annotations).To(HaveKeyWithValue("verified.deploy.tminus.dev/rollback-requested",
		"testbed-admin: CVE-2026-1234 in the new image | testbed-admin"))

	kill = start()
	waitPhase(t, ns, deployv1alpha1.PhaseRolledBack)
	waitRolledOut(t, ns, "checkout:v1")
	var fired metav1.Time
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, ns)
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets[0].RestoredAt).NotTo(BeNil())
		g.Expect(cur.Status.Request.State).To(Equal(deployv1alpha1.RequestActed))
		g.Expect(cur.Status.Rollback.Message).To(Equal("rolled back by testbed-admin: CVE-2026-1234 in the new image"))
		fired = cur.Status.Rollback.FiredAt
	}, time.Minute, 200*time.Millisecond).Should(Succeed())

	// Started again on the same request: nothing more is done.
	kill()
	kill = start()
	defer kill()
	g.Consistently(func(g Gomega) {
		cur := getChecklist(g, ns)
		g.Expect(cur.Status.Rollback.FiredAt).To(Equal(fired))
		// The killed manager may have decided the rollback and died before its event
		// left (events are best effort); never twice.
		g.Expect(rolledBackEvents(g, ns)).To(BeNumerically("<=", 1))
		g.Expect(getDeployment(g, ns).Spec.Template.Spec.Containers[0].Image).To(Equal("checkout:v1"))
	}, 5*time.Second, 250*time.Millisecond).Should(Succeed())
}
