package testbed_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tminus-dev/tminus/test/testbed"
)

func TestDeploymentRollsOutPausesResumesAndUndoesOnTheTestBed(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Cluster: true})
	ctx := context.Background()
	g := NewWithT(t)

	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "checkout"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "checkout:v1"}}},
			},
		},
	}
	g.Expect(bed.Client.Create(ctx, deploy)).To(Succeed())
	waitRolledOut(t, bed, deploy, "checkout:v1")

	// Paused, a new image is recorded in the template but nothing rolls.
	_, err := bed.Kubectl(ctx, "rollout", "pause", "deployment/checkout")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = bed.Kubectl(ctx, "set", "image", "deployment/checkout", "app=checkout:v2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		var d appsv1.Deployment
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(deploy), &d)).To(Succeed())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation), "controller has seen the new image")
		g.Expect(progressingReason(&d)).To(Equal("DeploymentPaused"))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Expect(runningImages(t, bed)).To(ConsistOf("checkout:v1", "checkout:v1", "checkout:v1"),
		"a paused Deployment must keep its old pods")

	// Resumed, it rolls out the new image through the ReplicaSet controller and kwok.
	_, err = bed.Kubectl(ctx, "rollout", "resume", "deployment/checkout")
	g.Expect(err).NotTo(HaveOccurred())
	waitRolledOut(t, bed, deploy, "checkout:v2")
	out, err := bed.Kubectl(ctx, "rollout", "status", "deployment/checkout", "--timeout=60s")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("successfully rolled out"))

	// kubectl rollout undo goes back to the previous template.
	_, err = bed.Kubectl(ctx, "rollout", "undo", "deployment/checkout")
	g.Expect(err).NotTo(HaveOccurred())
	waitRolledOut(t, bed, deploy, "checkout:v1")
}

func TestJobsCompleteOrFailOnTheTestBed(t *testing.T) {
	bed := testbed.New(t, testbed.Options{Cluster: true})
	ctx := context.Background()

	job := func(name string, labels map[string]string) *batchv1.Job {
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: batchv1.JobSpec{
				BackoffLimit: new(int32(0)),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers:    []corev1.Container{{Name: "backup", Image: "db-backup:1"}},
					},
				},
			},
		}
	}
	ok := job("backup-ok", nil)
	bad := job("backup-bad", map[string]string{testbed.FailLabel: "true"})
	g := NewWithT(t)
	g.Expect(bed.Client.Create(ctx, ok)).To(Succeed())
	g.Expect(bed.Client.Create(ctx, bad)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(jobCondition(ctx, g, bed, ok)).To(Equal(batchv1.JobComplete))
		g.Expect(jobCondition(ctx, g, bed, bad)).To(Equal(batchv1.JobFailed))
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
}

func TestPrometheusScrapesAnInstrumentedProcess(t *testing.T) {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "Requests served, by status code.",
	}, []string{"code"})
	reg.MustRegister(requests)
	requests.WithLabelValues("200").Add(41)
	app := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer app.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prom, err := testbed.StartPrometheus(ctx, testbed.PrometheusOptions{
		Targets: []string{strings.TrimPrefix(app.URL, "http://")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Close()

	g := NewWithT(t)
	g.Eventually(func() (string, error) {
		return prom.Query(context.Background(), `http_requests_total{job="app",code="200"}`)
	}, 30*time.Second, 250*time.Millisecond).Should(Equal("41"))

	// A later scrape sees the process's new value: the samples are real, not a fixture.
	requests.WithLabelValues("200").Inc()
	g.Eventually(func() (string, error) {
		return prom.Query(context.Background(), `http_requests_total{job="app",code="200"}`)
	}, 30*time.Second, 250*time.Millisecond).Should(Equal("42"))

	// Stopped, it refuses connections; restarted on the same port, it keeps its data.
	prom.Stop()
	_, err = prom.Query(context.Background(), "up")
	g.Expect(err).To(HaveOccurred())
	g.Expect(prom.Restart(ctx)).To(Succeed())
	g.Eventually(func() (string, error) {
		return prom.Query(context.Background(), `up{job="app"}`)
	}, 30*time.Second, 250*time.Millisecond).Should(Equal("1"))
}

// waitRolledOut waits until every replica runs image and is Ready, and no old pod is left.
func waitRolledOut(t *testing.T, bed *testbed.Bed, d *appsv1.Deployment, image string) {
	t.Helper()
	ctx := context.Background()
	NewWithT(t).Eventually(func(g Gomega) {
		var cur appsv1.Deployment
		g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(d), &cur)).To(Succeed())
		g.Expect(testbed.RolledOut(&cur, image)).To(Succeed())
		want := make([]string, *cur.Spec.Replicas)
		for i := range want {
			want[i] = image
		}
		g.Expect(runningImages(t, bed)).To(ConsistOf(want))
	}, 2*time.Minute, 200*time.Millisecond).Should(Succeed())
}

// runningImages lists the image of every Ready, not-terminating pod in default.
func runningImages(t *testing.T, bed *testbed.Bed) []string {
	t.Helper()
	var pods corev1.PodList
	if err := bed.Client.List(context.Background(), &pods, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	var images []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != testbed.NodeName {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				images = append(images, p.Spec.Containers[0].Image)
			}
		}
	}
	return images
}

func progressingReason(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			return c.Reason
		}
	}
	return ""
}

func jobCondition(ctx context.Context, g Gomega, bed *testbed.Bed, j *batchv1.Job) batchv1.JobConditionType {
	var cur batchv1.Job
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(j), &cur)).To(Succeed())
	for _, c := range cur.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}
