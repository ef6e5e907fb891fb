package testbed

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// StatefulSet is a StatefulSet of replicas pods running image in one container "app",
// selected by the label app=name, with the RollingUpdate strategy and pods started in
// parallel; TypeMeta is set, so it can be server-side applied.
func StatefulSet(ns, name, image string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{appName: name}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsV1, Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: appName, Image: image}}},
			},
		},
	}
}

// StatefulSetRolledOut says what s still lacks to have rolled out image: nil once its
// template runs image, the StatefulSet controller has seen its generation, and every
// replica runs the update revision, available.
func StatefulSetRolledOut(s *appsv1.StatefulSet, image string) error {
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	st := s.Status
	switch {
	case len(s.Spec.Template.Spec.Containers) == 0 || s.Spec.Template.Spec.Containers[0].Image != image:
		return fmt.Errorf("statefulset %s does not run %s in its template", s.Name, image)
	case st.ObservedGeneration != s.Generation:
		return fmt.Errorf("statefulset %s: generation %d not observed yet (%d)", s.Name, s.Generation, st.ObservedGeneration)
	case st.CurrentRevision != st.UpdateRevision:
		return fmt.Errorf("statefulset %s: pods on revision %s, not all on %s yet", s.Name,
			st.CurrentRevision, st.UpdateRevision)
	case st.UpdatedReplicas != want || st.AvailableReplicas != want || st.Replicas != want:
		return fmt.Errorf("statefulset %s: %d updated, %d available, %d in all, of %d", s.Name,
			st.UpdatedReplicas, st.AvailableReplicas, st.Replicas, want)
	}
	return nil
}

// DaemonSet is a DaemonSet running image in one container "app", selected by the label
// app=name, tolerating DaemonSetNodeTaint so it runs on DaemonSetNodes nodes, with the
// RollingUpdate strategy (maxUnavailable 1); TypeMeta is set.
func DaemonSet(ns, name, image string) *appsv1.DaemonSet {
	labels := map[string]string{appName: name}
	one := intstr.FromInt32(1)
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsV1, Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: appName, Image: image}},
					Tolerations: []corev1.Toleration{{Key: DaemonSetNodeTaint, Operator: corev1.TolerationOpExists,
						Effect: corev1.TaintEffectNoSchedule}},
				},
			},
		},
	}
}

// DaemonSetRolledOut says what ds still lacks to have rolled out image on every node it
// runs on (DaemonSetNodes of them).
func DaemonSetRolledOut(ds *appsv1.DaemonSet, image string) error {
	st := ds.Status
	switch {
	case len(ds.Spec.Template.Spec.Containers) == 0 || ds.Spec.Template.Spec.Containers[0].Image != image:
		return fmt.Errorf("daemonset %s does not run %s in its template", ds.Name, image)
	case st.ObservedGeneration != ds.Generation:
		return fmt.Errorf("daemonset %s: generation %d not observed yet (%d)", ds.Name, ds.Generation, st.ObservedGeneration)
	case st.DesiredNumberScheduled != DaemonSetNodes || st.UpdatedNumberScheduled != DaemonSetNodes ||
		st.NumberAvailable != DaemonSetNodes || st.CurrentNumberScheduled != DaemonSetNodes:
		return fmt.Errorf("daemonset %s: %d updated, %d available, %d scheduled, of %d desired (want %d)", ds.Name,
			st.UpdatedNumberScheduled, st.NumberAvailable, st.CurrentNumberScheduled, st.DesiredNumberScheduled, DaemonSetNodes)
	}
	return nil
}
