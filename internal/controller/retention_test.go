package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	tminusmetrics "github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/record"
	"github.com/tminus-dev/tminus/internal/retention"
)

// TestRecordsPastTheirRetentionAreDeletedOnlyIfTminusMadeThem: two releases of
// checkout end (a sign-off that never came) and tminus records each; a ConfigMap
// labelled a release record, which tminus did not make, is older than both. With a
// retention of an hour, at the moment the first record is past it and the second not
// yet: the first is deleted and counted, the second and the look-alike are kept.
func TestRecordsPastTheirRetentionAreDeletedOnlyIfTminusMadeThem(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	deployment(t, ns, "checkout:v1")
	lookAlike := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tminus-record-look-alike", Labels: map[string]string{
			record.KindLabel: record.KindValue, record.ChecklistLabel: "checkout-v1", record.ResultLabel: "Succeeded"}},
		Data: map[string]string{record.DataKey: "{}"},
	}
	g.Expect(bed.Client.Create(ctx, lookAlike)).To(Succeed())
	startManagerIn(t, ns, healthyMetrics(), nil, func(r *DeploymentChecklistReconciler) {
		r.Ledger = &retention.Ledger{Client: r.Client, Namespace: ns}
	})
	ended := func(name string) *corev1.ConfigMap {
		c := newChecklist(ns)
		c.Name = name
		c.Spec.Phases[0].Timeout = "1s"
		create(t, c)
		waitPhase(t, c, deployv1alpha1.PhaseFailed)
		var cm corev1.ConfigMap
		g.Eventually(func(g Gomega) {
			done := getChecklist(g, c)
			g.Expect(done.Status.Record).NotTo(BeEmpty())
			g.Expect(bed.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: done.Status.Record}, &cm)).To(Succeed())
		}, time.Minute, 100*time.Millisecond).Should(Succeed())
		return &cm
	}
	old := ended("checkout-v2")
	young := ended("checkout-v3")
	g.Expect(young.CreationTimestamp.After(old.CreationTimestamp.Time)).To(BeTrue(), "one second apart at least")

	before := testutil.ToFloat64(tminusmetrics.RecordsDeleted)
	reaper := &retention.Reaper{Reader: bed.Client, Writer: bed.Client, Namespace: ns, Retention: time.Hour,
		Clock: clocktesting.NewFakePassiveClock(young.CreationTimestamp.Add(time.Hour - time.Millisecond))}
	deleted, err := reaper.Sweep(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(deleted).To(Equal(1))
	g.Expect(testutil.ToFloat64(tminusmetrics.RecordsDeleted)).To(Equal(before + 1))

	var cm corev1.ConfigMap
	g.Expect(apierrors.IsNotFound(bed.Client.Get(ctx, client.ObjectKeyFromObject(old), &cm))).To(BeTrue(), "the old record is gone")
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(young), &cm)).To(Succeed(), "the young record is kept")
	g.Expect(cm.UID).To(Equal(young.UID))
	g.Expect(bed.Client.Get(ctx, client.ObjectKeyFromObject(lookAlike), &cm)).To(Succeed(), "the look-alike is not tminus's")
}
