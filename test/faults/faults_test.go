// Package faults holds the fault suite that needs more than one manager or writers
// other than tminus: a leader killed while a standby waits, and GitOps controllers
// re-applying the checklist and its target while tminus writes them. The single-manager
// faults (Prometheus failing in every way, a manager killed right after its rollback
// patch or mid-Job, the target deleted) are in internal/controller and
// internal/prometheus; docs/reliability.md maps each guarantee to its test.
package faults

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/test/testbed"
)

var bed *testbed.Bed

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Cluster: true, Audit: true}, func(b *testbed.Bed) error { bed = b; return nil }))
}

var nsCounter atomic.Int32

func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + strconv.Itoa(int(nsCounter.Add(1)))}}
	NewWithT(t).Expect(bed.Client.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// service is a health endpoint the checklist's HTTP check and trigger call; it answers
// 200 until told otherwise.
func service(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(s.Close)
	return s
}

// checklistFor holds checkout until deployment-lead signs off, verifies it with an HTTP
// check two seconds after it is available, and rolls back if the health endpoint stops
// answering 200. Nothing in it needs Prometheus.
func checklistFor(ns, url string) *deployv1alpha1.DeploymentChecklist {
	return &deployv1alpha1.DeploymentChecklist{
		TypeMeta:   metav1.TypeMeta{APIVersion: deployv1alpha1.GroupVersion.String(), Kind: "DeploymentChecklist"},
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-v2", Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision: "v2",
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Interval: "1s",
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
					}},
					{Name: "T+2s", At: "2s", Checks: []deployv1alpha1.CheckSpec{
						{Name: "health", HTTP: &deployv1alpha1.HTTPCheck{URL: url, Timeout: "1s"}},
					}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{
					{Name: "health", HTTP: &deployv1alpha1.HTTPCheck{URL: url, Timeout: "1s"}},
				},
			},
		},
	}
}

func getDeployment(g Gomega, ns string) *appsv1.Deployment {
	var d appsv1.Deployment
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "checkout"}, &d)).To(Succeed())
	return &d
}

func getChecklist(g Gomega, ns string) *deployv1alpha1.DeploymentChecklist {
	var c deployv1alpha1.DeploymentChecklist
	g.Expect(bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "checkout-v2"}, &c)).To(Succeed())
	return &c
}

func waitRolledOut(t *testing.T, ns, image string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) error { return testbed.RolledOut(getDeployment(g, ns), image) },
		2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

func waitPhase(t *testing.T, ns string, phase deployv1alpha1.ChecklistPhase) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) deployv1alpha1.ChecklistPhase {
		return getChecklist(g, ns).Status.Phase
	}, 3*time.Minute, 100*time.Millisecond).Should(Equal(phase))
}

// pushImage sets the Deployment's image, as a pipeline's commit does (retrying a write
// that lost a race with the manager's).
func pushImage(t *testing.T, ns, image string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) error {
		d := getDeployment(g, ns)
		d.Spec.Template.Spec.Containers[0].Image = image
		return bed.Client.Update(context.Background(), d)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

// approve adds the sign-off as `kubectl annotate` does: a merge patch of the one
// annotation, which no other writer's change conflicts with.
func approve(t *testing.T, ns string) {
	t.Helper()
	c := &deployv1alpha1.DeploymentChecklist{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout-v2"}}
	patch := []byte(`{"metadata":{"annotations":{"` + deployv1alpha1.ApprovalAnnotationPrefix + `deployment-lead":"alice for v2"}}}`)
	NewWithT(t).Expect(bed.Client.Patch(context.Background(), c, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// replicaSetImages lists the image of every ReplicaSet of the namespace.
func replicaSetImages(g Gomega, ns string) []string {
	var list appsv1.ReplicaSetList
	g.Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	out := make([]string, 0, len(list.Items))
	for _, rs := range list.Items {
		out = append(out, rs.Spec.Template.Spec.Containers[0].Image)
	}
	return out
}

// conflicts reads the API server's count of requests answered 409 Conflict.
func conflicts(g Gomega) float64 {
	n, err := bed.APIRequests(context.Background(), func(labels string) bool { return strings.Contains(labels, `code="409"`) })
	g.Expect(err).NotTo(HaveOccurred())
	return n
}
