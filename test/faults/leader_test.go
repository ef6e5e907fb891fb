package faults

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

const (
	leaseName      = "5ac64af1.tminus.dev"
	leaseNamespace = "tminus-system"
	leaseDuration  = 4 * time.Second
	renewDeadline  = 3 * time.Second
	retryPeriod    = 500 * time.Millisecond
)

// buildManager builds the manager binary (cmd/) under each name: the name is the
// process's user agent, so the API server's audit log tells their writes apart.
func buildManager(t *testing.T, names ...string) []string {
	t.Helper()
	paths, err := testbed.BuildManager(t.TempDir(), names...)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// runManager starts a manager process with leader election against the test bed; its
// log goes to the test bed's directory.
func runManager(t *testing.T, bin string) *exec.Cmd {
	t.Helper()
	return runManagerWith(t, bin,
		"--leader-elect", "--leader-elect-namespace", leaseNamespace,
		"--leader-elect-lease-duration", leaseDuration.String(),
		"--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(),
		// The health endpoint the checklist's HTTP checks call is on loopback, which the
		// address guard denies unless listed.
		"--allowed-hosts", "127.0.0.1/32",
		"--webhooks=false")
}

// runManagerWith starts a manager process against the test bed with args; its log
// goes to the test bed's directory. It is killed when the test ends.
func runManagerWith(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logFile, err := os.Create(filepath.Join(bed.Dir, filepath.Base(bin)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", bed.Kubeconfig,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
	})
	return cmd
}

func lease(g Gomega) *coordinationv1.Lease {
	var l coordinationv1.Lease
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, &l)).To(Succeed())
	return &l
}

func TestTheStandbyTakesOverWhenTheLeaderIsKilledAndNeverWritesBeforeIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(client.IgnoreAlreadyExists(bed.Client.Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}))).To(Succeed())
	bins := buildManager(t, "tminus-a", "tminus-b")

	a := runManager(t, bins[0])
	var leaderA string
	g.Eventually(func(g Gomega) {
		l := lease(g)
		g.Expect(l.Spec.HolderIdentity).NotTo(BeNil())
		leaderA = *l.Spec.HolderIdentity
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	runManager(t, bins[1])
	g.Eventually(func() (string, error) {
		raw, err := os.ReadFile(filepath.Join(bed.Dir, "tminus-b.log"))
		return string(raw), err
	}, time.Minute, 100*time.Millisecond).Should(ContainSubstring("Attempting to acquire leader lease"))

	// The leader holds a release for its sign-off.
	ns := newNamespace(t, "leader")
	svc := service(t)
	g.Expect(bed.Client.Create(ctx, testbed.Deployment(ns, "checkout", "checkout:v1", 3))).To(Succeed())
	waitRolledOut(t, ns, "checkout:v1")
	g.Expect(bed.Client.Create(ctx, checklistFor(ns, svc.URL))).To(Succeed())
	g.Eventually(func(g Gomega) bool { return getDeployment(g, ns).Spec.Paused }, time.Minute, 100*time.Millisecond).Should(BeTrue())
	pushImage(t, ns, "checkout:v2")
	g.Eventually(func(g Gomega) string { return getChecklist(g, ns).Status.NextAction }, time.Minute, 100*time.Millisecond).
		Should(ContainSubstring("waiting for deployment-lead sign-off"))

	// The leader dies without a word: its lease has to expire.
	g.Expect(a.Process.Signal(syscall.SIGKILL)).To(Succeed())
	_ = a.Wait()
	killed := time.Now()

	approve(t, ns)
	waitPhase(t, ns, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, ns, "checkout:v2")

	l := lease(g)
	g.Expect(*l.Spec.HolderIdentity).NotTo(Equal(leaderA))
	acquired := l.Spec.AcquireTime.Time
	takeover := acquired.Sub(killed)
	t.Logf("the standby took over %s after the leader was killed (lease %s, retry %s)", takeover.Round(time.Millisecond),
		leaseDuration, retryPeriod)
	// Leader election's own bound: the standby notices the last renewal within a retry
	// period and acquires within another after the lease expires. Two seconds more for
	// a loaded machine.
	g.Expect(takeover).To(BeNumerically("<=", leaseDuration+2*retryPeriod+2*time.Second))

	// The API server's audit log: who wrote the release's objects, and when.
	events, err := bed.Audit()
	g.Expect(err).NotTo(HaveOccurred())
	var fromA, fromB []testbed.AuditEvent
	for _, e := range events {
		if e.ObjectRef.Namespace != ns || e.ObjectRef.Resource == "events" || e.ResponseStatus.Code >= 300 {
			continue
		}
		switch {
		case strings.HasPrefix(e.UserAgent, "tminus-a/"):
			fromA = append(fromA, e)
		case strings.HasPrefix(e.UserAgent, "tminus-b/"):
			fromB = append(fromB, e)
		}
	}
	g.Expect(fromA).NotTo(BeEmpty(), "the leader held the release")
	g.Expect(fromB).NotTo(BeEmpty(), "the standby released it")
	for _, e := range fromA {
		g.Expect(e.RequestReceived).To(BeTemporally("<", killed), "%s %s/%s by the dead leader", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Subresource)
	}
	for _, e := range fromB {
		g.Expect(e.RequestReceived).To(BeTemporally(">=", acquired.Truncate(time.Microsecond)),
			"%s %s/%s by the standby before it led", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Subresource)
	}
	t.Logf("writes to the release's objects: %d by the first leader, %d by the second", len(fromA), len(fromB))

	// The checklist's managed fields show both managers, each for what it wrote.
	fields := getChecklist(g, ns).ManagedFields
	managers := make([]string, 0, len(fields))
	for _, mf := range fields {
		managers = append(managers, mf.Manager)
	}
	g.Expect(managers).To(ContainElements("tminus-a", "tminus-b"))
}
