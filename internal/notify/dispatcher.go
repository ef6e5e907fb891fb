package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/templates"
)

// CondNotified says whether every message a checklist owes was sent (True), one is
// being retried or one was given up on (False, naming the receiver and its error).
const CondNotified = "Notified"

// Reasons of the Notified condition and of the events that go with it.
const (
	ReasonNotificationsSent    = "NotificationsSent"
	ReasonNotificationRetrying = "NotificationRetrying"
	ReasonNotificationFailed   = "NotificationFailed"
	ReasonNotified             = "Notified"
)

// Retry defaults: an attempt that fails is tried again after 5 s, doubling to 5 min
// between attempts, 12 attempts in all (about half an hour), then given up.
const (
	DefaultBackoff     = 5 * time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultMaxAttempts = 12
)

// EventRecorder is the part of the events API the dispatcher uses.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Dispatcher sends the messages checklists' statuses hold as pending, one checklist at
// a time each, outside the reconcile: a receiver that hangs or fails never delays a
// measurement or a rollback. It reads the checklist from the API server before
// sending and records each result in status with an optimistic lock, so a message is
// sent once however many times it is queued, and a restarted manager or another
// replica sends what is still pending. Only a manager stopped between a receiver's
// answer and the status write sends that message again; the webhook's
// X-Tminus-Delivery lets a receiver drop it.
type Dispatcher struct {
	// Client writes the checklists' status and reads policies (the manager's client).
	Client client.Client
	// Fresh reads checklists from the API server (the manager's APIReader).
	Fresh    client.Reader
	Sender   *Sender
	Recorder EventRecorder
	Clock    clock.PassiveClock
	// Begin, when set, says whether this replica holds a checklist's shard (by the
	// target's namespace and name; others' checklists are theirs to notify), and
	// counts the sending as work of the shard in flight until done: a shard is not
	// handed back while a message of it is being sent and its result written, so the
	// next holder never sends it again (shard.Set's Begin).
	Begin func(namespace, name string) (done func(), ok bool)
	// Workers send for this many checklists at once (4).
	Workers     int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	MaxAttempts int32

	queue     workqueue.TypedDelayingInterface[types.NamespacedName]
	queueOnce sync.Once
	// unrecorded holds results sent but not yet written to status.
	mu         sync.Mutex
	unrecorded map[types.NamespacedName][]outcome
}

// ensureQueue makes d's queue the first time it is needed (Notify may come before Start).
func (d *Dispatcher) ensureQueue() {
	d.queueOnce.Do(func() {
		d.queue = workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[types.NamespacedName]{
			Name: "notifications"})
	})
}

// Notify queues a checklist that holds pending messages.
func (d *Dispatcher) Notify(key types.NamespacedName) {
	d.ensureQueue()
	d.queue.Add(key)
}

// Start runs the workers until ctx ends (a manager Runnable; with leader election,
// only the leader's runs).
func (d *Dispatcher) Start(ctx context.Context) error {
	d.ensureQueue()
	if d.Clock == nil {
		d.Clock = clock.RealClock{}
	}
	workers := d.Workers
	if workers <= 0 {
		workers = 4
	}
	for range workers {
		go func() {
			for d.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	d.queue.ShutDown()
	return nil
}

func (d *Dispatcher) next(ctx context.Context) bool {
	key, quit := d.queue.Get()
	if quit {
		return false
	}
	defer d.queue.Done(key)
	after, err := d.process(ctx, key)
	if err != nil {
		logf.FromContext(ctx).Error(err, "notifying", "checklist", key)
		after = max(after, time.Second)
	}
	if after > 0 {
		d.queue.AddAfter(key, after)
	}
	return true
}

// outcome is one attempt's result for one message.
type outcome struct {
	key, receiver, kind string
	err                 error
	at                  time.Time
}

// process sends the checklist's messages that are due and records the results. It
// returns when to look again (0: nothing pending).
func (d *Dispatcher) process(ctx context.Context, key types.NamespacedName) (time.Duration, error) {
	var dcl deployv1alpha1.DeploymentChecklist
	if err := d.Fresh.Get(ctx, key, &dcl); err != nil {
		return 0, client.IgnoreNotFound(err)
	}
	if d.Begin != nil {
		done, ok := d.Begin(dcl.Namespace, dcl.Spec.ShardTarget())
		if !ok {
			return 0, nil
		}
		defer done()
		// Read again now that the shard is held: what was read before may predate
		// the results its previous holder wrote before handing it over.
		dcl = deployv1alpha1.DeploymentChecklist{}
		if err := d.Fresh.Get(ctx, key, &dcl); err != nil {
			return 0, client.IgnoreNotFound(err)
		}
	}
	// Results of an earlier round that could not be written go first, unsent again.
	if earlier := d.takeUnrecorded(key); len(earlier) > 0 {
		if err := d.record(ctx, &dcl, earlier); err != nil {
			return 0, err
		}
		dcl = deployv1alpha1.DeploymentChecklist{}
		if err := d.Fresh.Get(ctx, key, &dcl); err != nil {
			return 0, client.IgnoreNotFound(err)
		}
	}
	now := d.Clock.Now()
	eff, err := templates.Effective(&dcl)
	if err != nil {
		eff = &dcl
	}
	var results []outcome
	for i := range dcl.Status.Notifications {
		n := &dcl.Status.Notifications[i]
		if n.State != deployv1alpha1.NotificationPending || d.nextAttempt(n).After(now) {
			continue
		}
		if !d.held(&dcl) {
			// The shard is being handed back: what was sent is written, the rest
			// is for the next holder. The hand-back waits for one send, not all.
			break
		}
		kind, err := d.send(ctx, eff, n)
		results = append(results, outcome{key: n.Key, receiver: n.Receiver, kind: kind, err: err, at: d.Clock.Now()})
	}
	if len(results) > 0 {
		if err := d.record(ctx, &dcl, results); err != nil {
			return 0, err
		}
	}
	return d.wait(&dcl.Status), nil
}

// held says whether this replica still holds dcl's shard.
func (d *Dispatcher) held(dcl *deployv1alpha1.DeploymentChecklist) bool {
	if d.Begin == nil {
		return true
	}
	done, ok := d.Begin(dcl.Namespace, dcl.Spec.ShardTarget())
	if ok {
		done()
	}
	return ok
}

// send makes one attempt of message n; it returns the receiver's kind.
func (d *Dispatcher) send(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist,
	n *deployv1alpha1.NotificationStatus) (string, error) {
	policy, receiver, found := strings.Cut(n.Receiver, "/")
	if !found {
		return "", PermanentError{fmt.Errorf("receiver %q is not <policy>/<receiver>", n.Receiver)}
	}
	var p deployv1alpha1.NotificationPolicy
	if err := d.Client.Get(ctx, types.NamespacedName{Namespace: dcl.Namespace, Name: policy}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return "", PermanentError{fmt.Errorf("NotificationPolicy %s was deleted", policy)}
		}
		return "", err
	}
	for i := range p.Spec.Receivers {
		if r := &p.Spec.Receivers[i]; r.Name == receiver {
			return Kind(r), d.Sender.Send(ctx, dcl.Namespace, r, NewMessage(dcl, n))
		}
	}
	return "", PermanentError{fmt.Errorf("NotificationPolicy %s has no receiver %s any more", policy, receiver)}
}

// record writes the results into the checklist's status, reading it again and
// applying them again if someone wrote it meanwhile. Results it could not write are
// kept, and written before anything is sent again: a message is never sent twice
// because its record failed.
func (d *Dispatcher) record(ctx context.Context, dcl *deployv1alpha1.DeploymentChecklist, results []outcome) error {
	key := client.ObjectKeyFromObject(dcl)
	for attempt := 1; ; attempt++ {
		before := dcl.DeepCopy()
		gaveUp := d.apply(&dcl.Status, results)
		setNotified(dcl)
		err := d.Client.Status().Patch(ctx, dcl, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			d.report(dcl, results, gaveUp)
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == recordAttempts {
			d.keepUnrecorded(key, results)
			return fmt.Errorf("recording notifications (attempt %d): %w", attempt, err)
		}
		fresh := &deployv1alpha1.DeploymentChecklist{}
		if err := d.Fresh.Get(ctx, key, fresh); err != nil {
			if !apierrors.IsNotFound(err) {
				d.keepUnrecorded(key, results)
			}
			return client.IgnoreNotFound(err)
		}
		dcl = fresh
	}
}

// recordAttempts bounds the writes of one round of results before they are kept for
// the next round.
const recordAttempts = 8

func (d *Dispatcher) keepUnrecorded(key types.NamespacedName, results []outcome) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unrecorded == nil {
		d.unrecorded = map[types.NamespacedName][]outcome{}
	}
	d.unrecorded[key] = append(d.unrecorded[key], results...)
}

func (d *Dispatcher) takeUnrecorded(key types.NamespacedName) []outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.unrecorded[key]
	delete(d.unrecorded, key)
	return out
}

// report counts the results and tells them in events.
func (d *Dispatcher) report(dcl *deployv1alpha1.DeploymentChecklist, results []outcome,
	gaveUp []deployv1alpha1.NotificationStatus) {
	for _, r := range results {
		kind := cmp.Or(r.kind, "unknown")
		switch {
		case r.err == nil:
			// No event per message sent: events share one budget per checklist, and
			// those of the release itself must not be crowded out. Status says it.
			metrics.Notifications.WithLabelValues(kind, "sent").Inc()
		case slices.ContainsFunc(gaveUp, func(n deployv1alpha1.NotificationStatus) bool {
			return n.Key == r.key && n.Receiver == r.receiver
		}):
			metrics.Notifications.WithLabelValues(kind, "failed").Inc()
		default:
			metrics.Notifications.WithLabelValues(kind, "retry").Inc()
		}
	}
	for _, n := range gaveUp {
		d.Recorder.Eventf(dcl, nil, corev1.EventTypeWarning, ReasonNotificationFailed, "Notify",
			"gave up on the %s message to %s after %d attempts: %s", n.Event, n.Receiver, n.Attempts, n.Error)
	}
}

// apply records results on st's entries; it returns the entries given up on.
func (d *Dispatcher) apply(st *deployv1alpha1.DeploymentChecklistStatus, results []outcome) []deployv1alpha1.NotificationStatus {
	maxAttempts := d.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	var gaveUp []deployv1alpha1.NotificationStatus
	for _, r := range results {
		i := slices.IndexFunc(st.Notifications, func(n deployv1alpha1.NotificationStatus) bool {
			return n.Key == r.key && n.Receiver == r.receiver
		})
		if i < 0 {
			// Its entry was dropped meanwhile (more than MaxEntries at once): a
			// message sent is remembered all the same, never to be sent again.
			if r.err == nil {
				rememberResult(st, r.key, r.receiver, true)
			}
			continue
		}
		n := &st.Notifications[i]
		if n.State != deployv1alpha1.NotificationPending {
			continue
		}
		at := metav1.NewTime(r.at.Truncate(time.Second))
		n.Attempts++
		n.LastAttempt = &at
		if r.err == nil {
			n.State, n.SentAt, n.Error = deployv1alpha1.NotificationSent, &at, ""
			remember(st, n)
			continue
		}
		n.Error = checklist.Truncate(r.err.Error(), 1024)
		if _, permanent := errors.AsType[PermanentError](r.err); permanent || n.Attempts >= maxAttempts {
			n.State = deployv1alpha1.NotificationFailed
			remember(st, n)
			gaveUp = append(gaveUp, *n)
		}
	}
	return gaveUp
}

// setNotified sets the Notified condition from the entries and what notified keeps:
// a message given up on outweighs one being retried, which outweighs all sent.
func setNotified(dcl *deployv1alpha1.DeploymentChecklist) {
	st := &dcl.Status
	if len(st.Notifications) == 0 && st.Notified == nil {
		return
	}
	cond := metav1.Condition{Type: CondNotified, Status: metav1.ConditionTrue, Reason: ReasonNotificationsSent,
		ObservedGeneration: dcl.Generation}
	sent, pending := 0, 0
	if st.Notified != nil {
		for _, tr := range st.Notified.Transitions {
			sent += len(tr.Sent)
			// One given up on whose entry is gone is still said, without its error.
			for _, i := range tr.Failed {
				if int(i) < len(st.Notified.Receivers) && cond.Reason != ReasonNotificationFailed {
					cond.Status, cond.Reason = metav1.ConditionFalse, ReasonNotificationFailed
					cond.Message = fmt.Sprintf("gave up on the %s message to %s", tr.Key, st.Notified.Receivers[i])
				}
			}
		}
	}
	for _, n := range st.Notifications {
		switch n.State {
		case deployv1alpha1.NotificationFailed:
			cond.Status, cond.Reason = metav1.ConditionFalse, ReasonNotificationFailed
			cond.Message = fmt.Sprintf("gave up on the %s message to %s after %d attempts: %s", n.Event, n.Receiver,
				n.Attempts, n.Error)
		case deployv1alpha1.NotificationPending:
			pending++
			if n.Attempts > 0 && cond.Reason != ReasonNotificationFailed {
				cond.Status, cond.Reason = metav1.ConditionFalse, ReasonNotificationRetrying
				cond.Message = fmt.Sprintf("retrying the %s message to %s (%d attempts so far): %s", n.Event, n.Receiver,
					n.Attempts, n.Error)
			}
		}
	}
	if cond.Status == metav1.ConditionTrue {
		cond.Message = fmt.Sprintf("%d messages sent", sent)
		if pending > 0 {
			cond.Message += fmt.Sprintf(", %d to send", pending)
		}
	}
	meta.SetStatusCondition(&dcl.Status.Conditions, cond)
}

// nextAttempt is when pending message n may be tried: at once the first time, then
// after a backoff doubling from Backoff to MaxBackoff.
func (d *Dispatcher) nextAttempt(n *deployv1alpha1.NotificationStatus) time.Time {
	if n.Attempts == 0 || n.LastAttempt == nil {
		return time.Time{}
	}
	base, most := d.Backoff, d.MaxBackoff
	if base <= 0 {
		base = DefaultBackoff
	}
	if most <= 0 {
		most = DefaultMaxBackoff
	}
	wait := base
	for i := int32(1); i < n.Attempts && wait < most; i++ {
		wait *= 2
	}
	return n.LastAttempt.Add(min(wait, most))
}

// wait is how long until the earliest pending message of st is due; 0 when none is
// pending.
func (d *Dispatcher) wait(st *deployv1alpha1.DeploymentChecklistStatus) time.Duration {
	var next time.Time
	pending := false
	for i := range st.Notifications {
		n := &st.Notifications[i]
		if n.State != deployv1alpha1.NotificationPending {
			continue
		}
		if t := d.nextAttempt(n); !pending || t.Before(next) {
			next, pending = t, true
		}
	}
	if !pending {
		return 0
	}
	return max(next.Sub(d.Clock.Now()), time.Millisecond)
}
