package webhook_test

import (
	"context"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	engine "github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/gate"
	"github.com/tminus-dev/tminus/internal/plugin"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/test/testbed"
)

// The Deployment gate, with the API server calling the webhook (envtest installs
// config/webhook and points it at the manager's webhook server).

const errorQuery = "error_rate"

// metrics is the package manager's metric source: every checklist here measures
// errorQuery, which a test sets.
var metrics = &fakeMetrics{values: map[string]float64{}}

type fakeMetrics struct {
	mu     sync.Mutex
	values map[string]float64
}

func (f *fakeMetrics) set(query string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[query] = v
}

func (f *fakeMetrics) Measure(_ context.Context, req prometheus.Request) engine.Measurement {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.values[req.Query]
	if !ok {
		return engine.Measurement{Kind: engine.ResultNoData, Query: req.Query}
	}
	return engine.Measurement{Kind: engine.ResultValue, Value: v, Display: strconv.FormatFloat(v, 'g', 6, 64), Query: req.Query}
}

// errorsIn is the query a checklist of namespace ns sends: each test has its own error rate.
func errorsIn(ns string) string { return errorQuery + `{namespace="` + ns + `"}` }

var nsCounter atomic.Int32

func newNamespace(t *testing.T) string {
	t.Helper()
	name := "gate" + strconv.Itoa(int(nsCounter.Add(1)))
	NewWithT(t).Expect(bed.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	metrics.set(errorsIn(name), 0.001)
	return name
}

// gated creates checkout running image, labelled deploy.tminus.dev/gated=true in Git,
// and waits for it to roll out (a new gated Deployment is held at creation: it is
// created ungated and labelled once it runs, as an existing service would be).
func gated(t *testing.T, ns, image string) *appsv1.Deployment {
	t.Helper()
	d := testbed.Deployment(ns, "checkout", image, 3)
	NewWithT(t).Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	waitRolledOut(t, d, image)
	return label(t, d)
}

// label labels d deploy.tminus.dev/gated=true.
func label(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		cur := get(t, d)
		cur.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
		return bed.Client.Update(context.Background(), cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	return d
}

func get(t *testing.T, d *appsv1.Deployment) *appsv1.Deployment {
	t.Helper()
	var cur appsv1.Deployment
	NewWithT(t).Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(d), &cur)).To(Succeed())
	return &cur
}

func waitRolledOut(t *testing.T, d *appsv1.Deployment, image string) {
	t.Helper()
	NewWithT(t).Eventually(func() error { return testbed.RolledOut(get(t, d), image) }, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
}

// setImage changes the image as a pipeline would and returns the Deployment as the API
// server stored it: what the webhook made of the write.
func setImage(t *testing.T, d *appsv1.Deployment, image string) *appsv1.Deployment {
	t.Helper()
	var stored *appsv1.Deployment
	NewWithT(t).Eventually(func() error {
		cur := get(t, d)
		cur.Spec.Template.Spec.Containers[0].Image = image
		if err := bed.Client.Update(context.Background(), cur); err != nil {
			return err
		}
		stored = cur
		return nil
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	return stored
}

// replicaSetImages lists the image of every ReplicaSet of the namespace with the pods
// it ever asked for: a template that never rolled has no ReplicaSet.
func replicaSetImages(g Gomega, ns string) []string {
	var list appsv1.ReplicaSetList
	g.Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	out := make([]string, 0, len(list.Items))
	for _, rs := range list.Items {
		out = append(out, rs.Spec.Template.Spec.Containers[0].Image)
	}
	return out
}

func podsOf(g Gomega, ns, image string) int {
	var list corev1.PodList
	g.Expect(bed.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	n := 0
	for _, p := range list.Items {
		if p.Spec.Containers[0].Image == image {
			n++
		}
	}
	return n
}

// gatedWorkload creates the Deployment name running name:v1 and labels it gated once it
// rolled out, as an existing service of a two-tier product would be.
func gatedWorkload(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := testbed.Deployment(ns, name, name+":v1", 2)
	NewWithT(t).Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	waitRolledOut(t, d, name+":v1")
	return label(t, d)
}

// shopRelease is release v2 of the shop, whose targets are the Deployments named, in
// that order: a release checklist (release) of several workloads.
func shopRelease(ns string, verifyFor time.Duration, targets ...string) *deployv1alpha1.DeploymentChecklist {
	c := release(ns, "v2", verifyFor)
	c.Name = "shop-v2"
	c.Spec.Target = nil
	for _, name := range targets {
		c.Spec.Targets = append(c.Spec.Targets, deployv1alpha1.TargetRef{Kind: "Deployment", Name: name})
	}
	return c
}

// release is the checklist of checkout's release v<n>: a deployment-lead sign-off before
// T-0, the error rate below 1 % at T+2s, and an error rate above 5 % rolls back.
func release(ns, rev string, verifyFor time.Duration) *deployv1alpha1.DeploymentChecklist {
	at := verifyFor.String()
	return &deployv1alpha1.DeploymentChecklist{
		TypeMeta:   metav1.TypeMeta{APIVersion: deployv1alpha1.GroupVersion.String(), Kind: "DeploymentChecklist"},
		ObjectMeta: metav1.ObjectMeta{Name: "checkout-" + rev, Namespace: ns},
		Spec: deployv1alpha1.DeploymentChecklistSpec{
			Target:   &deployv1alpha1.TargetRef{Kind: "Deployment", Name: "checkout"},
			Revision: rev,
			ChecklistBody: deployv1alpha1.ChecklistBody{
				Interval:   "1s",
				Prometheus: &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.invalid:9090", Timeout: "1s"},
				Metrics:    []deployv1alpha1.MetricSpec{{Name: "error-rate", Query: errorQuery + `{namespace="{{namespace}}"}`}},
				Phases: []deployv1alpha1.PhaseSpec{
					{Name: "T-10m", At: "-10m", Checks: []deployv1alpha1.CheckSpec{
						{Name: "lead", Approval: &deployv1alpha1.ApprovalCheck{Role: "deployment-lead"}},
					}},
					{Name: "T+" + strings.TrimSuffix(at, "0s"), At: at, Checks: []deployv1alpha1.CheckSpec{
						{Name: "errors", Metric: "error-rate", Below: new("0.01")},
					}},
				},
				RollbackTriggers: []deployv1alpha1.RollbackTrigger{{Name: "errors-5pct", Metric: "error-rate", Above: new("0.05")}},
			},
		},
	}
}

func signOff(t *testing.T, c *deployv1alpha1.DeploymentChecklist) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		return annotateIn(bed.Client, c, map[string]string{"approve.tminus.dev/deployment-lead": "testbed-admin for " + c.Spec.Revision})
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

func annotateIn(c client.Client, dcl *deployv1alpha1.DeploymentChecklist, ann map[string]string) error {
	var cur deployv1alpha1.DeploymentChecklist
	if err := bed.Client.Get(context.Background(), client.ObjectKeyFromObject(dcl), &cur); err != nil {
		return err
	}
	before := cur.DeepCopy()
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	maps.Copy(cur.Annotations, ann)
	return c.Patch(context.Background(), &cur, client.MergeFrom(before))
}

func waitFor(t testing.TB, c *deployv1alpha1.DeploymentChecklist, phase deployv1alpha1.ChecklistPhase) *deployv1alpha1.DeploymentChecklist {
	t.Helper()
	var cur deployv1alpha1.DeploymentChecklist
	NewWithT(t).Eventually(func(g Gomega) deployv1alpha1.ChecklistPhase {
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		return cur.Status.Phase
	}, 2*time.Minute, 100*time.Millisecond).Should(Equal(phase))
	return &cur
}

// apply server-side-applies obj as Argo CD's application controller would.
func apply(obj client.Object) error {
	u, err := toUnstructured(obj)
	if err != nil {
		return err
	}
	return bed.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("argocd-controller"), client.ForceOwnership)
}

func TestOneApplyOfTheNewImageAndItsChecklistRollsNothingUntilTheChecklistReleasesIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")

	// One commit holds both; Argo CD applies the built-in kind first.
	v2 := testbed.Deployment(ns, "checkout", "checkout:v2", 3)
	v2.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	g.Expect(apply(v2)).To(Succeed())
	c := release(ns, "v2", 2*time.Second)
	g.Expect(apply(c)).To(Succeed())

	stored := get(t, d)
	g.Expect(stored.Spec.Paused).To(BeTrue(), "held in the same write that changed the template")
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets[0].PreDeployImages).To(Equal([]string{"checkout:v1"}))
		g.Expect(cur.Status.Targets).NotTo(BeEmpty())
		g.Expect(cur.Status.Targets[0].CandidateImages).To(Equal([]string{"checkout:v2"}))
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, engine.CondAdmissionGate)).To(BeTrue())
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) []string { return replicaSetImages(g, ns) }, 2*time.Second, 200*time.Millisecond).
		Should(ConsistOf("checkout:v1"), "no ReplicaSet of v2 before its checklist releases it")

	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, d, "checkout:v2")
	g.Expect(get(t, d).Annotations).NotTo(HaveKey(deployv1alpha1.HeldByAnnotation))
}

// TestOneApplyOfTwoImagesAndTheirChecklistReleasesBothAndABreachRestoresBothForGood:
// one commit holds the frontend's and the backend's new images and the checklist of
// their release, applied in any sync order: the Deployments first (Argo CD's order for
// built-in kinds), the checklist first, or the checklist between them. Both are held in
// the writes that bring them, nothing rolls until the sign-off, then both roll out. A
// breach restores both, and the self-heal that re-applies the whole commit is refused on
// each Deployment, naming the checklist, while both keep serving v1.
func TestOneApplyOfTwoImagesAndTheirChecklistReleasesBothAndABreachRestoresBothForGood(t *testing.T) {
	t.Parallel()
	// The commit is frontend, backend, checklist; each order lists their indexes.
	for _, order := range []struct {
		name string
		idx  []int
	}{
		{"the Deployments first", []int{0, 1, 2}},
		{"the checklist first", []int{2, 0, 1}},
		{"the checklist between the Deployments", []int{0, 2, 1}},
	} {
		t.Run(order.name, func(t *testing.T) {
			t.Parallel()
			oneApplyOfTwoImages(t, order.idx)
		})
	}
}

func oneApplyOfTwoImages(t *testing.T, order []int) {
	g := NewWithT(t)
	ns := newNamespace(t)
	names := []string{"frontend", "backend"}
	deployments := map[string]*appsv1.Deployment{}
	for _, name := range names {
		deployments[name] = gatedWorkload(t, ns, name)
	}
	commit := func() []client.Object {
		var objs []client.Object
		for _, name := range names {
			d := testbed.Deployment(ns, name, name+":v2", 2)
			d.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
			objs = append(objs, d)
		}
		return append(objs, shopRelease(ns, time.Hour, "backend", "frontend"))
	}
	objs := commit()
	for _, i := range order {
		g.Expect(apply(objs[i])).To(Succeed())
	}
	c := objs[len(objs)-1].(*deployv1alpha1.DeploymentChecklist)
	for _, name := range names {
		stored := get(t, deployments[name])
		g.Expect(stored.Spec.Paused).To(BeTrue(), "%s held in the write that changed its template", name)
	}
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		for _, name := range names {
			ts := cur.TargetStatusOf(name)
			g.Expect(ts).NotTo(BeNil())
			g.Expect(ts.PreDeployImages).To(Equal([]string{name + ":v1"}))
			g.Expect(ts.CandidateImages).To(Equal([]string{name + ":v2"}))
		}
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) []string { return replicaSetImages(g, ns) }, 2*time.Second, 200*time.Millisecond).
		Should(ConsistOf("frontend:v1", "backend:v1"), "nothing rolls before the sign-off")

	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	for _, name := range names {
		waitRolledOut(t, deployments[name], name+":v2")
	}

	metrics.set(errorsIn(ns), 0.07)
	done := waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	g.Expect(done.Status.Rollback).NotTo(BeNil())
	g.Expect(done.Status.Rollback.Message).To(ContainSubstring("errors-5pct"))
	for _, name := range names {
		waitRolledOut(t, deployments[name], name+":v1")
	}

	// Argo CD's self-heal re-applies the commit, over and over.
	for write := 1; write <= 5; write++ {
		for _, o := range commit()[:len(names)] {
			err := apply(o)
			g.Expect(err).To(HaveOccurred(), "self-heal write %d of %s", write, o.GetName())
			g.Expect(err.Error()).To(ContainSubstring("Deployment " + ns + "/" + o.GetName() + ": this pod template (" + o.GetName() + ":v2) was rolled back by checklist shop-v2"))
		}
	}
	for _, name := range names {
		g.Expect(get(t, deployments[name]).Spec.Template.Spec.Containers[0].Image).To(Equal(name + ":v1"))
		g.Eventually(func(g Gomega) int { return podsOf(g, ns, name+":v2") }, time.Minute, 200*time.Millisecond).
			Should(BeZero(), "no pod of %s:v2 once restored", name)
	}
}

func TestSignOffsCommittedUpFrontReleaseTheImageAsItArrives(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", 2*time.Second)
	c.Annotations = map[string]string{"approve.tminus.dev/deployment-lead": "testbed-admin for v2"}
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	waitFor(t, c, deployv1alpha1.PhaseHolding)
	g.Eventually(func() bool { return get(t, d).Spec.Paused }, 30*time.Second, 100*time.Millisecond).Should(BeFalse())

	// T-0 has passed: the new template is the release, not held.
	stored := setImage(t, d, "checkout:v2")
	g.Expect(stored.Spec.Paused).To(BeFalse())
	waitFor(t, c, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, d, "checkout:v2")
}

func TestATemplateChangedDuringVerificationIsHeldAtAdmissionAndReported(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", 6*time.Second)
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)

	stored := setImage(t, d, "checkout:v3")
	g.Expect(stored.Spec.Paused).To(BeTrue(), "held in the write itself")
	g.Expect(stored.Annotations[deployv1alpha1.HoldReasonAnnotation]).To(ContainSubstring("while checklist checkout-v2 verifies its release (checkout:v2)"))
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		cond := meta.FindStatusCondition(cur.Status.Conditions, engine.CondHeldChange)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(cond.Message).To(ContainSubstring("checkout:v3"))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())

	done := waitFor(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.Status.Rollback).To(BeNil())
	g.Expect(replicaSetImages(g, ns)).NotTo(ContainElement("checkout:v3"), "v3 never rolled")
	g.Consistently(func() bool { return get(t, d).Spec.Paused }, 2*time.Second, 200*time.Millisecond).Should(BeTrue(),
		"v3 waits for a checklist of its own")
}

func toUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

// TestASelfHealStormAfterARollbackIsRefusedAndRollsNothing: after tminus rolls a bad
// release back, a GitOps writer server-side-applies the bad image every 100 ms for 20 s
// (Argo CD self-heal). Every write is refused naming the checklist; no pod of the bad
// image is created; then a commit of a new image with its own checklist releases
// normally.
func TestASelfHealStormAfterARollbackIsRefusedAndRollsNothing(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", time.Hour)
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	waitFor(t, c, deployv1alpha1.PhaseVerifying)
	metrics.set(errorsIn(ns), 0.07)
	waitFor(t, c, deployv1alpha1.PhaseRolledBack)
	waitRolledOut(t, d, "checkout:v1")
	g.Eventually(func(g Gomega) int { return podsOf(g, ns, "checkout:v2") }, time.Minute, 100*time.Millisecond).Should(BeZero())

	bad := testbed.Deployment(ns, "checkout", "checkout:v2", 3)
	bad.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	refused, writes := 0, 0
	var lastErr string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		writes++
		if err := apply(bad); err != nil {
			refused++
			lastErr = err.Error()
		}
		g.Expect(podsOf(g, ns, "checkout:v2")).To(BeZero(), "after write %d", writes)
	}
	t.Logf("%d self-heal writes, %d refused", writes, refused)
	g.Expect(refused).To(Equal(writes))
	g.Expect(lastErr).To(ContainSubstring("was rolled back by checklist checkout-v2"))
	g.Expect(lastErr).To(ContainSubstring("commit a new revision"))
	waitRolledOut(t, d, "checkout:v1")

	// The fix: a new image with its own checklist, in one commit.
	metrics.set(errorsIn(ns), 0.001)
	fixed := testbed.Deployment(ns, "checkout", "checkout:v3", 3)
	fixed.Labels = bad.Labels
	g.Expect(apply(fixed)).To(Succeed())
	next := release(ns, "v3", 2*time.Second)
	g.Expect(apply(next)).To(Succeed())
	signOff(t, next)
	waitFor(t, next, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, d, "checkout:v3")
}

// TestScalingRestartAndUndoGoThroughOnAGatedDeployment: none of them is a release, so
// none is held: scaling through the scale subresource (an HPA), `kubectl rollout
// restart`, and `kubectl rollout undo` to a template the Deployment ran.
func TestScalingRestartAndUndoGoThroughOnAGatedDeployment(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := testbed.Deployment(ns, "checkout", "checkout:v0", 2)
	g.Expect(bed.Client.Create(context.Background(), d)).To(Succeed())
	waitRolledOut(t, d, "checkout:v0")
	setImage(t, d, "checkout:v1")
	waitRolledOut(t, d, "checkout:v1")
	d = label(t, d)

	// HPA-style: the scale subresource.
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 4}}
	g.Expect(bed.Client.SubResource("scale").Update(context.Background(), get(t, d), client.WithSubResourceBody(scale))).To(Succeed())
	g.Eventually(func() int32 { return get(t, d).Status.AvailableReplicas }, time.Minute, 100*time.Millisecond).Should(BeEquivalentTo(4))
	g.Expect(get(t, d).Spec.Paused).To(BeFalse())

	// kubectl rollout restart: a new ReplicaSet of the same template.
	out, err := bed.Kubectl(context.Background(), "-n", ns, "rollout", "restart", "deployment/checkout")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(get(t, d).Spec.Paused).To(BeFalse())
	g.Eventually(func(g Gomega) int { return len(replicaSetImages(g, ns)) }, time.Minute, 100*time.Millisecond).Should(Equal(3))
	waitRolledOut(t, d, "checkout:v1")

	// kubectl rollout undo: back to a template the Deployment ran.
	out, err = bed.Kubectl(context.Background(), "-n", ns, "rollout", "undo", "deployment/checkout", "--to-revision=1")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(get(t, d).Spec.Paused).To(BeFalse())
	waitRolledOut(t, d, "checkout:v0")
}

// TestASecondImagePushedWhileAChecklistHoldsTheFirstIsMarkedAsTheChangeHeld: v2 is
// pushed with no checklist (held at admission, marked as the change held); a checklist
// is created and takes the hold as it finds it (paused, in the admission's name); v3 is
// pushed before T-0; the checklist is deleted. v3 stays held (it never ran), and the
// hold names v3, the template it holds, not v2 (found by test/chaos, seed 2: the write
// of v3 was admitted paused with the marks of v2 left on it).
func TestASecondImagePushedWhileAChecklistHoldsTheFirstIsMarkedAsTheChangeHeld(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")
	v2 := setImage(t, d, "checkout:v2")
	g.Expect(v2.Spec.Paused).To(BeTrue())
	g.Expect(v2.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldTemplateAnnotation, gate.TemplateHash(&v2.Spec.Template)))

	c := release(ns, "v2", 2*time.Second)
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	// The manager's cache (what the webhook reads first) shows the checklist holding
	// before T-0.
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(cached.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(firstTarget(g, &cur).CapturedAt).NotTo(BeNil())
		g.Expect(firstTarget(g, &cur).CandidateImages).To(Equal([]string{"checkout:v2"}))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	v3 := setImage(t, d, "checkout:v3")
	g.Expect(v3.Spec.Paused).To(BeTrue())
	g.Expect(v3.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldTemplateAnnotation, gate.TemplateHash(&v3.Spec.Template)),
		"the write of v3 is marked as the change it holds")
	g.Expect(v3.Annotations[deployv1alpha1.HoldReasonAnnotation]).To(ContainSubstring("checkout:v3"))

	g.Expect(bed.Client.Delete(context.Background(), c)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		err := bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)
		g.Expect(client.IgnoreNotFound(err)).To(Succeed())
		g.Expect(err).To(HaveOccurred())
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		cur := get(t, d)
		g.Expect(cur.Spec.Paused).To(BeTrue())
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
		g.Expect(cur.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldTemplateAnnotation, gate.TemplateHash(&v3.Spec.Template)))
		g.Expect(cur.Annotations[deployv1alpha1.HoldReasonAnnotation]).To(ContainSubstring("checkout:v3"))
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(replicaSetImages(g, ns)).To(ConsistOf("checkout:v1"), "neither v2 nor v3 ran")
}

func TestASecondLiveChecklistIsRefusedNamingTheFirst(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	gated(t, ns, "checkout:v1")
	first := release(ns, "v2", 2*time.Second)
	g.Expect(bed.Client.Create(context.Background(), first)).To(Succeed())
	second := release(ns, "v3", 2*time.Second)
	err := bed.Client.Create(context.Background(), second)
	g.Expect(err).To(MatchError(ContainSubstring("Deployment checkout already has a live checklist, checkout-v2")))
	g.Expect(err).To(MatchError(ContainSubstring("one live checklist per Deployment")))

	// Once the first ends, the second is accepted.
	g.Expect(bed.Client.Delete(context.Background(), first)).To(Succeed())
	g.Eventually(func() error { return bed.Client.Create(context.Background(), release(ns, "v3", 2*time.Second)) },
		30*time.Second, 200*time.Millisecond).Should(Succeed())
}

// TestAReleaseSharingAWorkloadWithALiveChecklistIsRefusedNamingIt: two releases share
// the checkout Deployment; the one created second is refused naming the Deployment they
// share and the live checklist, whichever of them lists several workloads.
func TestAReleaseSharingAWorkloadWithALiveChecklistIsRefusedNamingIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	gated(t, ns, "checkout:v1")
	twoTier := func(rev string) *deployv1alpha1.DeploymentChecklist {
		c := release(ns, rev, 2*time.Second)
		c.Spec.Target = nil
		c.Spec.Targets = []deployv1alpha1.TargetRef{{Kind: "Deployment", Name: "storefront"}, {Kind: "Deployment", Name: "checkout"}}
		return c
	}
	first := twoTier("v2")
	g.Expect(bed.Client.Create(context.Background(), first)).To(Succeed())
	err := bed.Client.Create(context.Background(), release(ns, "v3", 2*time.Second))
	g.Expect(err).To(MatchError(ContainSubstring("Deployment checkout already has a live checklist, checkout-v2")))

	g.Expect(bed.Client.Delete(context.Background(), first)).To(Succeed())
	g.Eventually(func() error { return bed.Client.Create(context.Background(), release(ns, "v3", 2*time.Second)) },
		30*time.Second, 200*time.Millisecond).Should(Succeed())
	// At once, as a GitOps sync applying both would: the webhook reads the live
	// checklists from the API server, not from a cache that may not have seen v3 yet.
	err = bed.Client.Create(context.Background(), twoTier("v4"))
	g.Expect(err).To(MatchError(ContainSubstring("Deployment checkout already has a live checklist, checkout-v3")))
}

// TestASignOffForBothImagesStopsCountingWhenTheFrontendsImageChanges: one checklist
// releases the frontend and its backend, both gated at admission. The sign-off is
// bound, by the approval webhook, to the set of images both hold; a new frontend image
// voids it, nothing is released on it, and signing again releases both.
func TestASignOffForBothImagesStopsCountingWhenTheFrontendsImageChanges(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	frontend, backend := gatedWorkload(t, ns, "frontend"), gatedWorkload(t, ns, "backend")
	c := shopRelease(ns, 2*time.Second, "frontend", "backend")
	deployAt := metav1.NewTime(time.Now().Add(8 * time.Second).Truncate(time.Second))
	c.Spec.DeployAt, c.Spec.Window = &deployAt, "5m"
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	setImage(t, frontend, "frontend:v2")
	setImage(t, backend, "backend:v2")
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		for _, n := range []string{"frontend", "backend"} {
			g.Expect(cur.TargetStatusOf(n)).NotTo(BeNil())
			g.Expect(cur.TargetStatusOf(n).CandidateTemplateHash).NotTo(BeEmpty())
		}
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	signOff(t, c)
	holding := waitFor(t, c, deployv1alpha1.PhaseHolding)
	g.Expect(holding.Status.Approvals[0].CandidateImages).To(Equal([]string{"frontend:v2", "backend:v2"}))

	setImage(t, frontend, "frontend:v2-swapped")
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.Status.Approvals[0].NotCounted).To(ContainSubstring(
			"given for frontend:v2, backend:v2, but the Deployment now holds frontend:v2-swapped, backend:v2"))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) []string { return replicaSetImages(g, ns) }, time.Until(deployAt.Time)+2*time.Second, 500*time.Millisecond).
		Should(ConsistOf("frontend:v1", "backend:v1"), "nothing released on a sign-off for another set of images")

	cmd := plugin.NewCommand(io.Discard, io.Discard)
	cmd.SetArgs([]string{"--kubeconfig", bed.Kubeconfig, "-n", ns, "approve", c.Name, "--role", "deployment-lead"})
	g.Expect(cmd.ExecuteContext(context.Background())).To(Succeed())
	waitFor(t, c, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, frontend, "frontend:v2-swapped")
	waitRolledOut(t, backend, "backend:v2")
}

// TestATemplateArrivingAfterT0OnATargetTheReleaseLeftUnchangedIsHeld: one checklist
// releases the frontend and its backend together, but only the backend's image was
// committed before T-0, so the frontend is not released. While the backend verifies,
// a frontend image arrives: it is not part of the release (its sign-offs were for the
// backend alone) and is stored paused, waiting for a checklist of its own; the backend's
// release goes on and succeeds.
func TestATemplateArrivingAfterT0OnATargetTheReleaseLeftUnchangedIsHeld(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	frontend, backend := gatedWorkload(t, ns, "frontend"), gatedWorkload(t, ns, "backend")
	c := shopRelease(ns, 6*time.Second, "frontend", "backend")
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	setImage(t, backend, "backend:v2")
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.TargetStatusOf("backend")).NotTo(BeNil())
		g.Expect(cur.TargetStatusOf("backend").CandidateTemplateHash).NotTo(BeEmpty())
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	signOff(t, c)
	verifying := waitFor(t, c, deployv1alpha1.PhaseVerifying)
	g.Expect(verifying.TargetStatusOf("frontend").ReleasedTemplateHash).To(BeEmpty(), "the frontend did not change at T-0")

	stored := setImage(t, frontend, "frontend:v2")
	g.Expect(stored.Spec.Paused).To(BeTrue(), "held in the write that brings it")
	g.Expect(stored.Annotations).To(HaveKeyWithValue(deployv1alpha1.HeldByAnnotation, deployv1alpha1.HeldByAdmission))
	g.Expect(stored.Annotations[deployv1alpha1.HoldReasonAnnotation]).To(ContainSubstring("frontend:v2"))

	done := waitFor(t, c, deployv1alpha1.PhaseSucceeded)
	g.Expect(done.TargetStatusOf("frontend").ReleasedTemplateHash).To(BeEmpty(), "the frontend's new image is not the release's")
	waitRolledOut(t, backend, "backend:v2")
	g.Consistently(func(g Gomega) []string { return replicaSetImages(g, ns) }, 2*time.Second, 200*time.Millisecond).
		ShouldNot(ContainElement("frontend:v2"), "no pod of an image no checklist released")
	g.Expect(get(t, frontend).Spec.Paused).To(BeTrue(), "still held once the release ended: it waits for a checklist of its own")
}

func namespaceObj(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// TestAnImageSwappedAfterTheSignOffVoidsIt: sign-offs are for the template the
// Deployment held when they were given. The held image is swapped afterwards: the
// release waits, status says why, and signing again (kubectl checklist approve) releases
// the new one.
func TestAnImageSwappedAfterTheSignOffVoidsIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t)
	d := gated(t, ns, "checkout:v1")
	c := release(ns, "v2", 2*time.Second)
	deployAt := metav1.NewTime(time.Now().Add(8 * time.Second).Truncate(time.Second))
	c.Spec.DeployAt, c.Spec.Window = &deployAt, "5m"
	g.Expect(bed.Client.Create(context.Background(), c)).To(Succeed())
	setImage(t, d, "checkout:v2")
	signOff(t, c)
	holding := waitFor(t, c, deployv1alpha1.PhaseHolding)
	g.Expect(holding.Status.Approvals[0].CandidateImages).To(Equal([]string{"checkout:v2"}))

	setImage(t, d, "checkout:v2-swapped")
	g.Eventually(func(g Gomega) {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(context.Background(), client.ObjectKeyFromObject(c), &cur)).To(Succeed())
		g.Expect(cur.Status.Approvals[0].NotCounted).To(ContainSubstring("given for checkout:v2, but the Deployment now holds checkout:v2-swapped"))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) []string { return replicaSetImages(g, ns) }, time.Until(deployAt.Time)+2*time.Second, 500*time.Millisecond).
		Should(ConsistOf("checkout:v1"), "nothing released on a sign-off for another template")

	// Signed again: the swapped image is what was approved, and it is released.
	cmd := plugin.NewCommand(io.Discard, io.Discard)
	cmd.SetArgs([]string{"--kubeconfig", bed.Kubeconfig, "-n", ns, "approve", c.Name, "--role", "deployment-lead"})
	g.Expect(cmd.ExecuteContext(context.Background())).To(Succeed())
	waitFor(t, c, deployv1alpha1.PhaseSucceeded)
	waitRolledOut(t, d, "checkout:v2-swapped")
}
