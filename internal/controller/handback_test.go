package controller

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/notify"
	"github.com/tminus-dev/tminus/internal/shard"
	"github.com/tminus-dev/tminus/test/testbed"
)

type noEvents struct{}

func (noEvents) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}

// shardReplica is one replica's shard set and dispatcher, on Leases in ns.
type shardReplica struct {
	set        *shard.Set
	dispatcher *notify.Dispatcher
}

func startShardReplica(t *testing.T, ns, identity string, onAcquire func(*notify.Dispatcher)) *shardReplica {
	t.Helper()
	cs, err := kubernetes.NewForConfig(bed.Config)
	if err != nil {
		t.Fatal(err)
	}
	r := &shardReplica{}
	r.set = &shard.Set{Leases: cs.CoordinationV1(), Namespace: ns, Name: "tminus-shard", Shards: 2, Identity: identity,
		LeaseDuration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: 250 * time.Millisecond,
		Log: logr.Discard(), OnAcquire: func(int) { onAcquire(r.dispatcher) }}
	r.dispatcher = &notify.Dispatcher{Client: bed.Client, Fresh: bed.Client, Recorder: noEvents{}, Clock: clock.RealClock{},
		Sender: &notify.Sender{HTTP: &http.Client{}, Secrets: bed.Client, Timeout: time.Minute},
		Begin:  r.set.Begin}
	ctx, cancel := context.WithCancel(context.Background())
	setDone, dispatcherDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(setDone); _ = r.set.Start(ctx) }()
	go func() { defer close(dispatcherDone); _ = r.dispatcher.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-dispatcherDone; <-setDone })
	return r
}

func TestAMessageInFlightWhenItsShardIsHandedBackIsNotSentAgainByTheNextHolder(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	rcv := testbed.NewReceiver(nil)
	defer rcv.Close()
	secret(t, ns, "receivers", map[string]string{"hook": rcv.URL + "/hook"})
	g.Expect(bed.Client.Create(ctx, &deployv1alpha1.NotificationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"},
		Spec: deployv1alpha1.NotificationPolicySpec{Receivers: []deployv1alpha1.NotificationReceiver{{Name: "hook",
			Webhook: &deployv1alpha1.WebhookReceiver{URLSecretRef: &deployv1alpha1.SecretKeyRef{Name: "receivers", Key: "hook"}}}}},
	})).To(Succeed())
	// A checklist of shard 1 (of 2) owes its release's message to the hook.
	target := "checkout"
	for n := 0; shard.Of(ns, target, 2) != 1; n++ {
		target = fmt.Sprintf("checkout-%d", n)
	}
	c := newChecklist(ns, func(c *deployv1alpha1.DeploymentChecklist) { c.Spec.Target.Name = target })
	create(t, c)
	cur := getChecklist(g, c)
	cur.Status.Notifications = []deployv1alpha1.NotificationStatus{{Event: deployv1alpha1.NotifyReleased, Key: "Released",
		Receiver: "audit/hook", Summary: "checkout released", At: metav1.Now(), State: deployv1alpha1.NotificationPending}}
	g.Expect(bed.Client.Status().Update(ctx, cur)).To(Succeed())
	key := client.ObjectKeyFromObject(c)

	// Replica a holds both shards and sends the message; the hook takes it and has not
	// answered yet.
	arrived, answer := rcv.Hold("/hook")
	a := startShardReplica(t, ns, "replica-a", func(d *notify.Dispatcher) { d.Notify(key) })
	g.Eventually(a.set.Held, 20*time.Second, 50*time.Millisecond).Should(Equal([]int{0, 1}))
	a.dispatcher.Notify(key)
	g.Eventually(arrived, 30*time.Second).Should(BeClosed())

	// Replica b joins: a hands shard 1 back, but not while its message is in flight.
	b := startShardReplica(t, ns, "replica-b", func(d *notify.Dispatcher) { d.Notify(key) })
	g.Eventually(func() bool { return a.set.Owns(ns, target) }, 20*time.Second, 50*time.Millisecond).Should(BeFalse(),
		"a begins no more work of the shard it hands back")
	g.Consistently(func() bool { return b.set.Owns(ns, target) }, 2*time.Second, 50*time.Millisecond).Should(BeFalse(),
		"b does not hold the shard while a's message is in flight")

	// The hook answers; a writes that it was sent, then hands the shard over. b, told
	// to look at the checklist when it takes the shard, finds nothing to send.
	answer()
	g.Eventually(func() bool { return b.set.Owns(ns, target) }, 30*time.Second, 50*time.Millisecond).Should(BeTrue())
	g.Eventually(func(g Gomega) deployv1alpha1.NotificationState {
		return getChecklist(g, c).Status.Notifications[0].State
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(deployv1alpha1.NotificationSent))
	b.dispatcher.Notify(key)
	g.Consistently(func() int { return len(rcv.Received("/hook")) }, 3*time.Second, 100*time.Millisecond).Should(Equal(1))
}
