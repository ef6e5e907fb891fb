package controller

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	tminusmetrics "github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/notify"
	"github.com/tminus-dev/tminus/test/testbed"
)

// withNotifications has the reconciler plan messages and a dispatcher, started beside
// the manager, send them with short retries.
func withNotifications(t *testing.T) func(*DeploymentChecklistReconciler) {
	return func(r *DeploymentChecklistReconciler) {
		d := &notify.Dispatcher{Client: r.Client, Fresh: r.APIReader, Recorder: r.Recorder, Clock: r.Clock,
			Sender:  &notify.Sender{HTTP: &http.Client{}, Secrets: r.APIReader, Timeout: 2 * time.Second},
			Backoff: 200 * time.Millisecond, MaxBackoff: time.Second, MaxAttempts: 1000}
		r.Notifier = d
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = d.Start(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
}

func secret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	NewWithT(t).Expect(bed.Client.Create(context.Background(), s)).To(Succeed())
}

func notificationsOf(g Gomega, c *deployv1alpha1.DeploymentChecklist, event deployv1alpha1.NotificationEvent) []deployv1alpha1.NotificationStatus {
	var out []deployv1alpha1.NotificationStatus
	for _, n := range getChecklist(g, c).Status.Notifications {
		if n.Event == event {
			out = append(out, n)
		}
	}
	return out
}

func TestAReceiverThatFailsIsRetriedAndReportedWhileTheRollbackGoesAhead(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	key := []byte("s3cret-signing-key")
	rcv := testbed.NewReceiver(key)
	defer rcv.Close()
	secret(t, ns, "receivers", map[string]string{"teams": rcv.URL + "/teams", "hook": rcv.URL + "/hook",
		"signing": string(key)})
	policy := &deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments"},
		Spec: deployv1alpha1.NotificationPolicySpec{Receivers: []deployv1alpha1.NotificationReceiver{
			{Name: "channel", Teams: &deployv1alpha1.TeamsReceiver{
				URLSecretRef: deployv1alpha1.SecretKeyRef{Name: "receivers", Key: "teams"}}},
			{Name: "audit", Webhook: &deployv1alpha1.WebhookReceiver{
				URLSecretRef:     &deployv1alpha1.SecretKeyRef{Name: "receivers", Key: "hook"},
				SigningSecretRef: &deployv1alpha1.SecretKeyRef{Name: "receivers", Key: "signing"}}},
		}},
	}
	g.Expect(bed.Client.Create(ctx, policy)).To(Succeed())
	// Teams is down (503) and the webhook hangs past the send timeout.
	rcv.Answer("/teams", http.StatusServiceUnavailable)
	rcv.Hang("/hook", time.Minute)
	retriesBefore := testutil.ToFloat64(tminusmetrics.Notifications.WithLabelValues("teams", "retry"))

	d := deployment(t, ns, "checkout:v1")
	metrics := healthyMetrics()
	startManagerIn(t, ns, metrics, nil, withNotifications(t))
	c := newChecklist(ns, withLongVerification)
	releaseV2(t, ns, d, c)

	// The messages owed are retried, and the checklist says so.
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		cond := meta.FindStatusCondition(cur.Status.Conditions, notify.CondNotified)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(cond.Reason).To(Equal(notify.ReasonNotificationRetrying))
		g.Expect(cond.Message).To(Or(ContainSubstring("HTTP 503"), ContainSubstring("no answer")))
		released := notificationsOf(g, c, deployv1alpha1.NotifyReleased)
		g.Expect(released).To(HaveLen(2))
		for _, n := range released {
			g.Expect(n.State).To(Equal(deployv1alpha1.NotificationPending))
			g.Expect(n.Attempts).To(BeNumerically(">=", 2))
		}
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
	g.Expect(testutil.ToFloat64(tminusmetrics.Notifications.WithLabelValues("teams", "retry"))).
		To(BeNumerically(">=", retriesBefore+2))

	// A breach rolls back at once: nothing waits for the receivers.
	metrics.set(errorQuery, 0.07)
	waitPhase(t, c, deployv1alpha1.PhaseRolledBack)
	waitRunning(t, d, "checkout:v1")
	g.Expect(rcv.Accepted("/teams")).To(BeEmpty(), "rolled back while no message had got through")

	// The receivers come back: each transition reaches each of them once.
	rcv.Answer("/teams", http.StatusOK)
	rcv.Hang("/hook", 0)
	g.Eventually(func(g Gomega) {
		cur := getChecklist(g, c)
		for _, n := range cur.Status.Notifications {
			g.Expect(n.State).To(Equal(deployv1alpha1.NotificationSent), "%s to %s", n.Key, n.Receiver)
		}
		g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, notify.CondNotified)).To(BeTrue())
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
	// Every message owed went out once, signed, and nothing more follows.
	g.Consistently(func(g Gomega) {
		byKey := map[string]int{}
		for _, r := range rcv.Accepted("/hook") {
			var body struct {
				Key string `json:"key"`
			}
			g.Expect(r.Decode(&body)).To(Succeed())
			g.Expect(r.SignatureOK).To(BeTrue(), "signed with the key from the Secret")
			byKey[body.Key]++
		}
		g.Expect(byKey).To(HaveKeyWithValue("Released", 1))
		g.Expect(byKey).To(HaveKeyWithValue("RolledBack", 1))
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	sent := getChecklist(g, c).Status.Notifications
	g.Expect(rcv.Accepted("/teams")).To(HaveLen(countFor(sent, "payments/channel")))
	g.Expect(rcv.Accepted("/hook")).To(HaveLen(countFor(sent, "payments/audit")))

	// The rollback's message names the trigger, its value, threshold and query.
	var rolled notify.Message
	for _, r := range rcv.Accepted("/hook") {
		var m notify.Message
		g.Expect(r.Decode(&m)).To(Succeed())
		if m.Event == deployv1alpha1.NotifyRolledBack {
			rolled = m
			g.Expect(r.Header.Get(notify.HeaderDelivery)).To(Equal(m.ID))
		}
	}
	g.Expect(rolled.Trigger).To(Equal(&notify.Trigger{Name: "errors-5pct", Value: "0.07", Threshold: "> 0.05",
		Query: errorQuery}))
	g.Expect(rolled.Summary).To(ContainSubstring("rollback trigger errors-5pct fired: 0.07 > 0.05"))

	// Status says what was sent; no event per message crowds out the release's own.
	var events corev1.EventList
	g.Expect(bed.Client.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Reason).NotTo(Equal(notify.ReasonNotificationFailed), "nothing was given up on")
	}
}

// createSample creates the shipped sample config/samples/<file> in ns, as obj.
func createSample(t *testing.T, ns, file string, obj client.Object) {
	t.Helper()
	g := NewWithT(t)
	root, err := testbed.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", file))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(yaml.UnmarshalStrict(raw, obj)).To(Succeed())
	obj.SetNamespace(ns)
	g.Expect(bed.Client.Create(context.Background(), obj)).To(Succeed())
}

func countFor(ns []deployv1alpha1.NotificationStatus, receiver string) int {
	n := 0
	for _, s := range ns {
		if s.Receiver == receiver {
			n++
		}
	}
	return n
}

func TestAnInvalidNotificationPolicyIsRefusedNamingTheField(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// The shipped sample is accepted as it is.
	createSample(t, ns, "deploy_v1alpha1_notificationpolicy.yaml", &deployv1alpha1.NotificationPolicy{})

	both := &deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "both"},
		Spec: deployv1alpha1.NotificationPolicySpec{Receivers: []deployv1alpha1.NotificationReceiver{{Name: "x",
			Slack:   &deployv1alpha1.SlackReceiver{URLSecretRef: deployv1alpha1.SecretKeyRef{Name: "s", Key: "url"}},
			Webhook: &deployv1alpha1.WebhookReceiver{URL: "https://example.com/hook"}}}},
	}
	err := bed.Client.Create(context.Background(), both)
	g.Expect(err).To(MatchError(ContainSubstring("spec.receivers[0]: Invalid value")))
	g.Expect(err).To(MatchError(ContainSubstring("give exactly one of slack, teams and webhook")))

	noURL := &deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nourl"},
		Spec: deployv1alpha1.NotificationPolicySpec{Receivers: []deployv1alpha1.NotificationReceiver{{Name: "x",
			Webhook: &deployv1alpha1.WebhookReceiver{}}}},
	}
	g.Expect(bed.Client.Create(context.Background(), noURL)).To(MatchError(
		ContainSubstring("spec.receivers[0].webhook: Invalid value: give exactly one of url and urlSecretRef")))

	badEvent := &deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "badevent"},
		Spec: deployv1alpha1.NotificationPolicySpec{On: []deployv1alpha1.NotificationEvent{"Deployed"},
			Receivers: []deployv1alpha1.NotificationReceiver{{Name: "x",
				Webhook: &deployv1alpha1.WebhookReceiver{URL: "https://example.com/hook"}}}},
	}
	g.Expect(bed.Client.Create(context.Background(), badEvent)).To(MatchError(ContainSubstring("spec.on[0]: Unsupported value: \"Deployed\"")))
}
