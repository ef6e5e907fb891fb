package faults

import (
	"context"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/notify"
	"github.com/tminus-dev/tminus/test/testbed"
)

// keysOn counts the messages a receiver accepted on the webhook path by their key.
func keysOn(g Gomega, rcv *testbed.Receiver) map[string]int {
	out := map[string]int{}
	for _, r := range rcv.Accepted("/hook") {
		var m notify.Message
		g.Expect(r.Decode(&m)).To(Succeed())
		g.Expect(r.SignatureOK).To(BeTrue(), "%s signed with the Secret's key", m.Key)
		g.Expect(r.Header.Get(notify.HeaderDelivery)).To(Equal(m.ID))
		out[m.Key]++
	}
	return out
}

func TestEachTransitionReachesEachReceiverOnceAcrossAManagerKilledMidRelease(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	bins := buildManager(t, "tminus-notify-a", "tminus-notify-b")
	args := []string{"--allowed-hosts", "127.0.0.1/32", "--webhooks=false"}

	ns := newNamespace(t, "notify")
	svc := service(t)
	key := "hmac-key-for-the-audit-log"
	rcv := testbed.NewReceiver([]byte(key))
	t.Cleanup(rcv.Close)
	g.Expect(bed.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "receivers"},
		StringData: map[string]string{"slack": rcv.URL + "/slack", "signing": key}})).To(Succeed())
	g.Expect(bed.Client.Create(ctx, &deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "release-team"},
		Spec: deployv1alpha1.NotificationPolicySpec{Receivers: []deployv1alpha1.NotificationReceiver{
			{Name: "chat", Slack: &deployv1alpha1.SlackReceiver{
				URLSecretRef: deployv1alpha1.SecretKeyRef{Name: "receivers", Key: "slack"}}},
			{Name: "audit", Webhook: &deployv1alpha1.WebhookReceiver{URL: rcv.URL + "/hook",
				SigningSecretRef: &deployv1alpha1.SecretKeyRef{Name: "receivers", Key: "signing"}}},
		}},
	})).To(Succeed())

	a := runManagerWith(t, bins[0], args...)
	g.Expect(bed.Client.Create(ctx, testbed.Deployment(ns, "checkout", "checkout:v1", 2))).To(Succeed())
	waitRolledOut(t, ns, "checkout:v1")
	g.Expect(bed.Client.Create(ctx, checklistFor(ns, svc.URL))).To(Succeed())
	g.Eventually(func(g Gomega) bool { return getDeployment(g, ns).Spec.Paused }, time.Minute, 100*time.Millisecond).Should(BeTrue())

	// The wait for sign-off is told, and recorded as told.
	g.Eventually(func(g Gomega) {
		g.Expect(keysOn(g, rcv)).To(HaveKeyWithValue("AwaitingSignOff/T-10m", 1))
		g.Expect(rcv.Accepted("/slack")).To(HaveLen(1))
		for _, n := range getChecklist(g, ns).Status.Notifications {
			g.Expect(n.State).To(Equal(deployv1alpha1.NotificationSent))
		}
	}, time.Minute, 100*time.Millisecond).Should(Succeed())

	// The manager dies without a word; another starts, and the release goes on.
	g.Expect(a.Process.Signal(syscall.SIGKILL)).To(Succeed())
	_ = a.Wait()
	pushImage(t, ns, "checkout:v2")
	runManagerWith(t, bins[1], args...)
	approve(t, ns)
	waitPhase(t, ns, deployv1alpha1.PhaseSucceeded)

	// Every transition reached each receiver once: none lost with the first manager,
	// none sent again by the second.
	want := map[string]int{"AwaitingSignOff/T-10m": 1, "Released": 1, "Succeeded": 1}
	g.Eventually(func(g Gomega) {
		g.Expect(keysOn(g, rcv)).To(Equal(want))
		g.Expect(rcv.Accepted("/slack")).To(HaveLen(3))
	}, time.Minute, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(keysOn(g, rcv)).To(Equal(want))
		g.Expect(rcv.Received("/slack")).To(HaveLen(3))
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())
	for _, r := range rcv.Accepted("/slack") {
		var m struct {
			Text string `json:"text"`
		}
		g.Expect(r.Decode(&m)).To(Succeed())
		g.Expect(m.Text).To(ContainSubstring("checkout v2"))
	}
	done := getChecklist(g, ns)
	g.Expect(done.Status.Notifications).To(HaveLen(6))
	for _, n := range done.Status.Notifications {
		g.Expect(n.State).To(Equal(deployv1alpha1.NotificationSent))
		g.Expect(n.Attempts).To(Equal(int32(1)), "%s to %s", n.Key, n.Receiver)
	}
}
