// Package shard splits tminus's work between replicas. The checklists are divided into
// N shards by a stable hash of the namespace and name of the Deployment they gate, so a
// Deployment, every checklist on it and their Jobs fall to one shard. Every replica
// runs; each holds the coordination.k8s.io Lease of some shards and reconciles only
// what its shards hold. Replicas announce themselves with a member Lease each, so that
// each takes about N/replicas shards: one below its share takes the shards nobody
// renews, one above it drains and hands back the rest.
//
// The Leases follow client-go's leader election rules: a Lease is taken over only once
// its record has not changed for its duration by the taker's own clock (so clocks need
// not agree), and a holder that has not renewed within the renew deadline, shorter than
// the duration, stops acting first. Unlike one elector per shard, one loop observes
// every Lease with one list per retry period, all the time: a shard whose holder died
// is taken over one lease duration after its last renewal, whatever the share said
// before.
package shard

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
)

// SetLabel marks the Leases (shards' and members') of a shard set; its value is the
// set's Name.
const SetLabel = "shard.tminus.dev/set"

// Of is the shard of namespace/name among n shards: FNV-1a of "namespace/name", mod n.
// It never changes for a key, whatever the replicas.
func Of(namespace, name string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write([]byte(name))
	return int(h.Sum32() % uint32(n))
}

// Set is one replica's part in the shards. It is a manager Runnable that every replica
// runs (no leader election of its own).
type Set struct {
	// Leases reads and writes the shard and member Leases.
	Leases coordinationclient.LeasesGetter
	// Namespace of the Leases.
	Namespace string
	// Name prefixes the Leases: <Name>-<i> for shard i, <Name>-member-<hash> per replica.
	Name string
	// Shards is N.
	Shards int
	// Identity of this replica (unique among replicas).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod mean what they mean to leader
	// election, for every shard's Lease and the member Lease.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnAcquire is called (in its own goroutine) when this replica starts holding
	// shard i: everything in it must be looked at again.
	OnAcquire func(i int)
	// OnChange is called with the shard and whether this replica now acts on it.
	OnChange func(i int, held bool)
	// OnLost is called when a shard's Lease is lost (see Start), before Start returns
	// the error. The manager binary exits there and then, as controller-runtime does
	// when leader election is lost: work of the shard in flight must not go on.
	OnLost func(error)
	Log    logr.Logger
	Clock  clock.PassiveClock

	mu        sync.Mutex
	cond      *sync.Cond
	held      map[int]bool      // shards this replica may act on
	inFlight  map[int]int       // work begun and not done, by shard
	leading   map[int]bool      // shards whose Lease this replica holds
	draining  map[int]bool      // shards being handed back
	renewed   map[int]time.Time // the last successful renewal, by shard
	observed  map[string]observation
	handbacks sync.WaitGroup
}

// observation is a Lease's record as last seen, and when it was first seen so.
type observation struct {
	record string
	since  time.Time
}

// Begin says whether this replica may act on what namespace/name (a Deployment's key)
// holds, and if so counts the work as in flight until done is called: a shard is never
// handed back with work of it in flight, so two replicas never act on it at once.
func (s *Set) Begin(namespace, name string) (done func(), ok bool) {
	i := Of(namespace, name, s.Shards)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.acting(i) {
		return nil, false
	}
	s.inFlight[i]++
	return func() {
		s.mu.Lock()
		s.inFlight[i]--
		s.mu.Unlock()
		s.cond.Broadcast()
	}, true
}

// Owns says whether this replica holds the shard of namespace/name.
func (s *Set) Owns(namespace, name string) bool {
	i := Of(namespace, name, s.Shards)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acting(i)
}

// acting says whether this replica may act on shard i: it holds it and renewed its
// Lease within the renew deadline, by its own clock. The renewal loop drops a shard
// it could not renew, but only once its calls return; a call that hangs must not
// keep the shard acted on past the point where another replica may take it. s.mu is
// held.
func (s *Set) acting(i int) bool {
	return s.held[i] && s.Clock.Since(s.renewed[i]) <= s.RenewDeadline
}

// Held lists the shards this replica holds.
func (s *Set) Held() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.held))
	for i, h := range s.held {
		if h {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// NeedLeaderElection: every replica runs its part.
func (s *Set) NeedLeaderElection() bool { return false }

// LeaseName is shard i's Lease.
func (s *Set) LeaseName(i int) string { return s.Name + "-" + strconv.Itoa(i) }

func (s *Set) memberName() string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s.Identity))
	return s.Name + "-member-" + strconv.FormatUint(h.Sum64(), 36)
}

func (s *Set) init() error {
	if s.Shards < 1 || s.Leases == nil || s.Namespace == "" || s.Name == "" || s.Identity == "" {
		return errors.New("shard: Shards, Leases, Namespace, Name and Identity are required")
	}
	if s.LeaseDuration <= s.RenewDeadline || s.RenewDeadline <= s.RetryPeriod || s.RetryPeriod <= 0 {
		return errors.New("shard: need LeaseDuration > RenewDeadline > RetryPeriod > 0")
	}
	if s.Clock == nil {
		s.Clock = clock.RealClock{}
	}
	s.cond = sync.NewCond(&s.mu)
	s.held, s.inFlight, s.leading, s.draining = map[int]bool{}, map[int]int{}, map[int]bool{}, map[int]bool{}
	s.renewed, s.observed = map[int]time.Time{}, map[string]observation{}
	return nil
}

// Start takes part until ctx ends, then hands every shard back (their Leases
// released once the work of them in flight is done) and withdraws the member Lease.
// It returns an error when a shard's Lease could not be renewed within the renew
// deadline or was taken by another replica: work of that shard may be in flight while
// another replica takes it over, so the replica must stop, as a leader that lost its
// lease does.
func (s *Set) Start(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	s.Log.Info("taking part in the shards", "identity", s.Identity, "shards", s.Shards,
		"namespace", s.Namespace)
	defer s.leave(context.WithoutCancel(ctx))
	tick := time.NewTicker(s.RetryPeriod)
	defer tick.Stop()
	for {
		if err := s.round(ctx); err != nil {
			if s.OnLost != nil {
				s.OnLost(err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// leave stops all work beginning, waits for the work in flight, releases every Lease
// this replica holds and deletes its member Lease.
func (s *Set) leave(ctx context.Context) {
	s.mu.Lock()
	for i := range s.Shards {
		s.setHeld(i, false)
	}
	for s.total() > 0 {
		s.cond.Wait()
	}
	var release []int
	for i, l := range s.leading {
		if l && !s.draining[i] {
			release = append(release, i)
		}
	}
	s.mu.Unlock()
	s.handbacks.Wait()
	ctx, cancel := context.WithTimeout(ctx, s.RenewDeadline)
	defer cancel()
	for _, i := range release {
		s.release(ctx, i)
	}
	_ = s.Leases.Leases(s.Namespace).Delete(ctx, s.memberName(), metav1.DeleteOptions{})
}

// round is one retry period's work: observe every Lease of the set, renew what this
// replica holds, take free shards while below its share and hand back above it. Its
// calls share one deadline, the renew deadline, as client-go's leader election bounds
// a renewal: a List or Update that hangs ends there, and the shards not renewed by
// then are lost (while it hangs, acting already refuses them).
func (s *Set) round(ctx context.Context) error {
	leases := s.Leases.Leases(s.Namespace)
	now := s.Clock.Now()
	call, cancel := context.WithTimeout(ctx, s.RenewDeadline)
	defer cancel()
	list, err := leases.List(call, metav1.ListOptions{LabelSelector: SetLabel + "=" + s.Name})
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Error(err, "listing the shard Leases")
		}
		return s.overdue()
	}
	byName := make(map[string]*coordinationv1.Lease, len(list.Items))
	members := 1 // this replica
	for i := range list.Items {
		l := &list.Items[i]
		byName[l.Name] = l
		s.observe(l, now)
		if strings.HasPrefix(l.Name, s.Name+"-member-") && l.Name != s.memberName() && !s.expired(l, now) {
			members++
		}
	}
	if err := s.renewMember(call, byName[s.memberName()], now); err != nil && ctx.Err() == nil {
		s.Log.Error(err, "renewing the member Lease")
	}
	if err := s.renew(call, byName, now); err != nil {
		return err
	}
	s.balance(ctx, call, byName, members, now)
	return nil
}

// observe notes when l's record last changed, by this replica's clock.
func (s *Set) observe(l *coordinationv1.Lease, now time.Time) {
	rec := holderOf(l) + "|" + l.ResourceVersion
	if o, ok := s.observed[l.Name]; !ok || o.record != rec {
		s.observed[l.Name] = observation{record: rec, since: now}
	}
}

// expired says whether l's record has not changed for its duration.
func (s *Set) expired(l *coordinationv1.Lease, now time.Time) bool {
	d := s.LeaseDuration
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return !now.Before(s.observed[l.Name].since.Add(d))
}

func holderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// renew writes the renewal of every shard this replica holds. A Lease another replica
// took, or one not renewed within the renew deadline, is lost.
func (s *Set) renew(ctx context.Context, byName map[string]*coordinationv1.Lease, now time.Time) error {
	s.mu.Lock()
	var mine []int
	for i, l := range s.leading {
		if l {
			mine = append(mine, i)
		}
	}
	s.mu.Unlock()
	for _, i := range mine {
		l := byName[s.LeaseName(i)]
		if h := holderOf(l); l != nil && h != s.Identity {
			return s.lose(i, fmt.Sprintf("it is held by %q", h))
		}
		if l == nil {
			return s.lose(i, "it was deleted")
		}
		rt := metav1.NewMicroTime(now)
		l.Spec.RenewTime = &rt
		if _, err := s.Leases.Leases(s.Namespace).Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			if ctx.Err() == nil {
				s.Log.Error(err, "renewing a shard's Lease", "shard", i)
			}
			continue
		}
		s.mu.Lock()
		s.renewed[i] = now
		s.mu.Unlock()
	}
	return s.overdue()
}

// overdue loses any shard not renewed within the renew deadline, by the clock now (a
// round's calls may have taken up to the deadline). A renewal counts from when its
// round began: the Lease's record cannot have changed before.
func (s *Set) overdue() error {
	now := s.Clock.Now()
	s.mu.Lock()
	late := -1
	for i, l := range s.leading {
		if l && now.Sub(s.renewed[i]) > s.RenewDeadline {
			late = i
			break
		}
	}
	s.mu.Unlock()
	if late < 0 {
		return nil
	}
	return s.lose(late, fmt.Sprintf("it was not renewed within %s", s.RenewDeadline))
}

// lose stops work of shard i beginning and says why the replica must stop.
func (s *Set) lose(i int, why string) error {
	s.mu.Lock()
	s.leading[i] = false
	s.setHeld(i, false)
	s.mu.Unlock()
	return fmt.Errorf("shard %d: lost the Lease %s/%s: %s", i, s.Namespace, s.LeaseName(i), why)
}

// total is the work in flight of every shard; s.mu is held.
func (s *Set) total() int {
	n := 0
	for _, c := range s.inFlight {
		n += c
	}
	return n
}

// share is how many shards each of members replicas should hold.
func (s *Set) share(members int) int {
	return int(math.Ceil(float64(s.Shards) / float64(max(1, members))))
}

// balance takes free shards while below the share and hands back the highest shards
// above it. Its takes are calls of the round (call); a hand-back outlives the round
// (ctx).
func (s *Set) balance(ctx, call context.Context, byName map[string]*coordinationv1.Lease, members int, now time.Time) {
	want := s.share(members)
	s.mu.Lock()
	holding := 0
	for i := range s.Shards {
		if s.leading[i] && !s.draining[i] {
			holding++
		}
	}
	for i := s.Shards - 1; i >= 0 && holding > want; i-- {
		if s.leading[i] && !s.draining[i] {
			s.draining[i] = true
			holding--
			s.handbacks.Go(func() { s.handBack(ctx, i) })
		}
	}
	var free []int
	for i := range s.Shards {
		l := byName[s.LeaseName(i)]
		if !s.leading[i] && !s.draining[i] && (l == nil || holderOf(l) == "" || s.expired(l, now)) {
			free = append(free, i)
		}
	}
	s.mu.Unlock()
	for _, i := range free {
		if holding >= want {
			return
		}
		if s.acquire(call, i, byName[s.LeaseName(i)], now) {
			holding++
		}
	}
}

// acquire takes shard i's Lease (l as observed; nil when it does not exist yet). A
// conflict means another replica was first.
func (s *Set) acquire(ctx context.Context, i int, l *coordinationv1.Lease, now time.Time) bool {
	leases := s.Leases.Leases(s.Namespace)
	t := metav1.NewMicroTime(now)
	secs := int32(s.LeaseDuration.Seconds())
	var err error
	if l == nil {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: s.LeaseName(i), Namespace: s.Namespace,
				Labels: map[string]string{SetLabel: s.Name}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &s.Identity, LeaseDurationSeconds: &secs,
				AcquireTime: &t, RenewTime: &t, LeaseTransitions: new(int32)},
		}, metav1.CreateOptions{})
	} else {
		l = l.DeepCopy()
		transitions := int32(0)
		if l.Spec.LeaseTransitions != nil {
			transitions = *l.Spec.LeaseTransitions
		}
		if holderOf(l) != s.Identity {
			transitions++
		}
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &s.Identity, &secs
		l.Spec.AcquireTime, l.Spec.RenewTime, l.Spec.LeaseTransitions = &t, &t, &transitions
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			s.Log.Error(err, "taking a shard's Lease", "shard", i)
		}
		return false
	}
	s.mu.Lock()
	s.leading[i], s.renewed[i] = true, now
	s.setHeld(i, true)
	s.mu.Unlock()
	s.Log.Info("holding a shard", "shard", i, "lease", s.LeaseName(i))
	if s.OnAcquire != nil {
		go s.OnAcquire(i)
	}
	return true
}

// handBack stops work on shard i beginning, waits for the work in flight, and releases
// the shard's Lease for a replica below its share. The Lease is renewed meanwhile.
func (s *Set) handBack(ctx context.Context, i int) {
	s.mu.Lock()
	s.setHeld(i, false)
	for s.inFlight[i] > 0 {
		s.cond.Wait()
	}
	s.mu.Unlock()
	s.Log.Info("handing a shard back", "shard", i)
	s.release(ctx, i)
}

// release gives shard i's Lease up: no holder, so the next replica to look takes it
// at once. Its calls end by the renew deadline: a Lease not released expires by
// itself.
func (s *Set) release(ctx context.Context, i int) {
	s.mu.Lock()
	s.leading[i], s.draining[i] = false, false
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.RenewDeadline)
	defer cancel()
	leases := s.Leases.Leases(s.Namespace)
	// The renewal loop may write the Lease meanwhile: read again on a conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := leases.Get(ctx, s.LeaseName(i), metav1.GetOptions{})
		if err != nil || holderOf(l) != s.Identity {
			return err
		}
		t := metav1.NewMicroTime(s.Clock.Now())
		one := int32(1)
		l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = new(""), &t, &one
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
	if err != nil && ctx.Err() == nil {
		// Not released: it expires by itself a lease duration after its last renewal.
		s.Log.Error(err, "releasing a shard's Lease", "shard", i)
	}
}

// setHeld records whether shard i may be acted on; s.mu is held.
func (s *Set) setHeld(i int, held bool) {
	if s.held[i] == held {
		return
	}
	s.held[i] = held
	if s.OnChange != nil {
		s.OnChange(i, held)
	}
	if !held {
		s.cond.Broadcast()
	}
}

// renewMember writes this replica's member Lease (l as observed; nil when missing).
func (s *Set) renewMember(ctx context.Context, l *coordinationv1.Lease, now time.Time) error {
	leases := s.Leases.Leases(s.Namespace)
	t := metav1.NewMicroTime(now)
	secs := int32(s.LeaseDuration.Seconds())
	if l == nil {
		_, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: s.memberName(), Namespace: s.Namespace,
				Labels: map[string]string{SetLabel: s.Name}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &s.Identity, LeaseDurationSeconds: &secs,
				AcquireTime: &t, RenewTime: &t},
		}, metav1.CreateOptions{})
		return err
	}
	l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &t, &secs
	_, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}
