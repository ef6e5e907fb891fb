package testbed

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Main runs a package's tests on one test bed: it starts the bed, hands it to setup
// (which keeps it, and may add to it), runs the tests and stops the bed, keeping its
// directory and saying where when a test failed. It returns the exit code:
//
//	func TestMain(m *testing.M) {
//		os.Exit(testbed.Main(m, testbed.Options{Cluster: true}, func(b *testbed.Bed) error { bed = b; return nil }))
//	}
func Main(m *testing.M, opts Options, setup func(*Bed) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	b, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := setup(b); err != nil {
		fmt.Fprintln(os.Stderr, err)
		b.StopKeepingLogs()
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "test bed logs: %s\n", b.Dir)
		b.StopKeepingLogs()
		return code
	}
	b.Stop()
	return code
}

// RolledOut says what d still lacks to have rolled out image: nil once its template
// runs image, it is not paused, the Deployment controller has seen its generation, and
// every replica is updated and available with no old pod left.
func RolledOut(d *appsv1.Deployment, image string) error {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case len(d.Spec.Template.Spec.Containers) == 0 || d.Spec.Template.Spec.Containers[0].Image != image:
		return fmt.Errorf("deployment %s does not run %s in its template", d.Name, image)
	case d.Spec.Paused:
		return fmt.Errorf("deployment %s is paused", d.Name)
	case st.ObservedGeneration != d.Generation:
		return fmt.Errorf("deployment %s: generation %d not observed yet (%d)", d.Name, d.Generation, st.ObservedGeneration)
	case st.UpdatedReplicas != want || st.AvailableReplicas != want || st.Replicas != want:
		return fmt.Errorf("deployment %s: %d updated, %d available, %d in all, of %d", d.Name,
			st.UpdatedReplicas, st.AvailableReplicas, st.Replicas, want)
	}
	return nil
}

// appName is the label that selects a workload's pods and its container's name;
// appsV1 is the workloads' API version.
const (
	appName = "app"
	appsV1  = "apps/v1"
)

// Deployment is a Deployment of replicas pods running image in one container "app",
// selected by the label app=name; TypeMeta is set, so it can be server-side applied.
func Deployment(ns, name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{appName: name}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsV1, Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: appName, Image: image}}},
			},
		},
	}
}
