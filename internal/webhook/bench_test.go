package webhook_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/webhook"
	"github.com/tminus-dev/tminus/test/testbed"
)

// BenchmarkDeploymentGate times the Deployment gate's handler on the manager's real
// cache (the test bed's API server behind it): a gated Deployment with a history of 10
// ReplicaSets and 10 checklists (one live, verifying). It reports the p50 and p99 of one
// admission, for the writes the webhook is called for (the match conditions keep every
// other write away from it):
//
//   - release: the live checklist's released template (the release's resume);
//
//   - undo: a template the Deployment ran before (`kubectl rollout undo`);
//
//   - hold: a new template nothing released, held (decided again on a fresh read from
//     the API server before it is held, so it costs two API round trips).
//
//     go test ./internal/webhook -run XXX -bench DeploymentGate   (with the test bed's env)
func BenchmarkDeploymentGate(b *testing.B) {
	g := NewWithT(b)
	ctx := context.Background()
	ns := "bench"
	if err := bed.Client.Create(ctx, namespaceObj(ns)); client.IgnoreAlreadyExists(err) != nil {
		b.Fatal(err)
	}
	d := testbed.Deployment(ns, "checkout", "checkout:v0", 1)
	g.Expect(client.IgnoreAlreadyExists(bed.Client.Create(ctx, d))).To(Succeed())
	key := client.ObjectKeyFromObject(d)
	var cur appsv1.Deployment
	for i := 1; i <= 10; i++ {
		g.Eventually(func() error {
			if err := bed.Client.Get(ctx, key, &cur); err != nil {
				return err
			}
			cur.Spec.Template.Spec.Containers[0].Image = "checkout:v" + strconv.Itoa(i)
			return bed.Client.Update(ctx, &cur)
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		g.Eventually(func() error {
			_ = bed.Client.Get(ctx, key, &cur)
			return testbed.RolledOut(&cur, cur.Spec.Template.Spec.Containers[0].Image)
		},
			time.Minute, 50*time.Millisecond).Should(Succeed())
	}
	// Nine finished checklists (each timed out waiting for a sign-off), then the live
	// one, signed off up front, releasing v11 and verifying for ten minutes.
	for i := range 9 {
		c := release(ns, "v0-"+strconv.Itoa(i), 10*time.Minute)
		c.Spec.Phases[0].Timeout = "1s"
		g.Expect(bed.Client.Create(ctx, c)).To(Succeed())
		g.Eventually(func(g Gomega) deployv1alpha1.ChecklistPhase {
			var cur deployv1alpha1.DeploymentChecklist
			g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur)).To(Succeed())
			return cur.Status.Phase
		}, time.Minute, 100*time.Millisecond).Should(Equal(deployv1alpha1.PhaseFailed))
	}
	live := release(ns, "v11", 10*time.Minute)
	live.Annotations = map[string]string{"approve.tminus.dev/deployment-lead": "testbed-admin for v11"}
	g.Expect(bed.Client.Create(ctx, live)).To(Succeed())
	g.Eventually(func(g Gomega) deployv1alpha1.ChecklistPhase {
		var cur deployv1alpha1.DeploymentChecklist
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(live), &cur)).To(Succeed())
		return cur.Status.Phase
	}, time.Minute, 100*time.Millisecond).Should(Equal(deployv1alpha1.PhaseHolding))
	g.Eventually(func() error {
		if err := bed.Client.Get(ctx, key, &cur); err != nil {
			return err
		}
		cur.Spec.Template.Spec.Containers[0].Image = "checkout:v11"
		return bed.Client.Update(ctx, &cur)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	waitFor(b, live, deployv1alpha1.PhaseVerifying)
	// The cache has them all.
	g.Eventually(func(g Gomega) {
		var rss appsv1.ReplicaSetList
		g.Expect(cached.List(ctx, &rss, client.InNamespace(ns))).To(Succeed())
		g.Expect(len(rss.Items)).To(BeNumerically(">=", 10))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(bed.Client.Get(ctx, key, &cur)).To(Succeed())

	h := &webhook.DeploymentGate{Reader: cached, Fresh: fresh, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	request := func(old, cur *appsv1.Deployment) admission.Request {
		raw := func(o runtime.Object) runtime.RawExtension {
			j, _ := json.Marshal(o)
			return runtime.RawExtension{Raw: j}
		}
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: types.UID("bench"), Operation: admissionv1.Update, Namespace: ns, Name: cur.Name,
			Object: raw(cur), OldObject: raw(old),
		}}
	}
	labelled := cur.DeepCopy()
	labelled.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
	undo := labelled.DeepCopy()
	undo.Spec.Template.Spec.Containers[0].Image = "checkout:v3"
	fresh := labelled.DeepCopy()
	fresh.Spec.Template.Spec.Containers[0].Image = "checkout:v99"
	paused := labelled.DeepCopy()
	paused.Spec.Paused = true

	for _, bc := range []struct {
		name    string
		req     admission.Request
		patched bool
		allowed bool
	}{
		{"release", request(paused, labelled), false, true},
		{"undo", request(labelled, undo), false, true},
		{"hold", request(labelled, fresh), true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			times := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				resp := h.Handle(ctx, bc.req)
				times = append(times, time.Since(start))
				if resp.Allowed != bc.allowed || (len(resp.Patches) > 0) != bc.patched {
					b.Fatalf("%s: allowed %v, %d patches: %v", bc.name, resp.Allowed, len(resp.Patches), resp.Result)
				}
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkARefusedSelfHealStorm times the refusal of a self-heal storm after a
// rollback, in a namespace with a history: TMINUS_BENCH_STORM="<finished checklists of
// the Deployment>,<ReplicaSets of other Deployments>" (500,5000 unless set). Each
// iteration is one refused write of the rolled-back template; it reports the API
// requests and objects read per write and the p50/p99 of one admission.
//
//	go test ./internal/webhook -run XXX -bench ARefusedSelfHealStorm -benchtime 20x   (with the test bed's env)
func BenchmarkARefusedSelfHealStorm(b *testing.B) {
	g := NewWithT(b)
	ctx := context.Background()
	checklists, replicaSets := 500, 5000
	if v := os.Getenv("TMINUS_BENCH_STORM"); v != "" {
		c, r, _ := strings.Cut(v, ",")
		checklists, _ = strconv.Atoi(c)
		replicaSets, _ = strconv.Atoi(r)
	}
	ns := "storm-" + strconv.Itoa(checklists) + "-" + strconv.Itoa(replicaSets)
	if err := bed.Client.Create(ctx, namespaceObj(ns)); err != nil {
		b.Fatal(err) // a namespace per size: run each size once per test bed
	}
	metrics.set(errorsIn(ns), 0.001)
	d := testbed.Deployment(ns, "checkout", "checkout:v1", 1)
	g.Expect(bed.Client.Create(ctx, d)).To(Succeed())
	g.Eventually(func() error {
		var cur appsv1.Deployment
		_ = bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur)
		return testbed.RolledOut(&cur, "checkout:v1")
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func() error {
		var cur appsv1.Deployment
		if err := bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		cur.Labels = map[string]string{deployv1alpha1.GatedLabel: deployv1alpha1.GatedByUser}
		return bed.Client.Update(ctx, &cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	began := time.Now()
	restored := rolledBack(b, ns)
	metrics.set(errorsIn(ns), 0.001)
	otherReplicaSets(b, ns, replicaSets)
	finishedChecklists(b, ns, checklists)
	g.Eventually(func(g Gomega) {
		var rss appsv1.ReplicaSetList
		g.Expect(cached.List(ctx, &rss, client.InNamespace(ns))).To(Succeed())
		g.Expect(len(rss.Items)).To(BeNumerically(">=", replicaSets+2))
		var cls deployv1alpha1.DeploymentChecklistList
		g.Expect(cached.List(ctx, &cls, client.InNamespace(ns))).To(Succeed())
		g.Expect(len(cls.Items)).To(BeNumerically(">=", checklists+1))
	}, 5*time.Minute, 200*time.Millisecond).Should(Succeed())
	b.Logf("namespace %s: %d finished checklists, %d other ReplicaSets, set up in %s", ns, checklists, replicaSets,
		time.Since(began).Round(time.Second))

	api := &countingReader{Reader: fresh}
	h := &webhook.DeploymentGate{Reader: cached, Fresh: api, Decoder: admission.NewDecoder(bed.Client.Scheme())}
	selfHeal := restored.DeepCopy()
	selfHeal.Spec.Template.Spec.Containers[0].Image = "checkout:v2"
	req := updateRequest(b, restored, selfHeal)
	times := make([]time.Duration, 0, b.N)
	api.reset()
	writes := 0
	for b.Loop() {
		start := time.Now()
		resp := h.Handle(ctx, req)
		times = append(times, time.Since(start))
		writes++
		if resp.Allowed {
			b.Fatalf("the rolled-back template was admitted")
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(api.requests.Load())/float64(writes), "requests/write")
	b.ReportMetric(float64(api.objects.Load())/float64(writes), "objects/write")
	b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
}
