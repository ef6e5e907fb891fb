// Package retention deletes release records older than --record-retention, and only
// those this manager created. A record's name and labels are there for anyone who may
// create ConfigMaps in its namespace to copy, so neither says who made it: the UID the
// API server gave the record when tminus created it does. The manager keeps those UIDs
// in a ledger of its own namespace (Ledger), which only it and cluster administrators
// write, and deletes a record only if it is still the object of the kept UID and still
// carries the record's label (Reaper). A record whose UID was never kept (written while
// retention was off, or when the ledger's write failed for good) is never deleted.
package retention

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/record"
)

// The manager reads records by name and deletes them (in every namespace), and keeps
// its ledger in its own namespace.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;delete

// LedgerKind is record.KindLabel's value on the ledger's ConfigMaps.
const LedgerKind = "release-record-ledger"

// ledgerPrefix names a day's ledger: tminus-record-ledger-<YYYYMMDD>.
const ledgerPrefix = "tminus-record-ledger-"

// LedgerName is the name of the ledger of the records created on t's UTC day.
func LedgerName(t time.Time) string { return ledgerPrefix + t.UTC().Format("20060102") }

// entryKey is a record's key in the ledger: "<namespace>.<name>" (a namespace holds no
// dot, so the first one splits them).
func entryKey(namespace, name string) string { return namespace + "." + name }

func splitKey(k string) (namespace, name string, ok bool) { return strings.Cut(k, ".") }

// Ledger keeps the UIDs of the records this manager created: one ConfigMap per UTC day
// of creation in Namespace, each entry "<namespace>.<name>": "<uid>". A day's ledger
// holds a day of a cluster's releases (about 100 bytes each: ten thousand a day fit).
type Ledger struct {
	// Client writes (the manager's: its rate limiter paces the writes).
	Client client.Writer
	// Namespace is the manager's own.
	Namespace string
}

// Keep notes that this manager created the record namespace/name, which the API server
// gave uid and created at created.
func (l *Ledger) Keep(ctx context.Context, namespace, name string, uid types.UID, created time.Time) error {
	key := entryKey(namespace, name)
	name = LedgerName(created)
	patch, err := json.Marshal(map[string]any{"data": map[string]string{key: string(uid)}})
	if err != nil {
		return err
	}
	ledger := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: name}}
	for range 3 {
		err = l.Client.Patch(ctx, ledger, client.RawPatch(types.MergePatchType, patch))
		if !apierrors.IsNotFound(err) {
			break
		}
		ledger = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: name, Labels: map[string]string{record.KindLabel: LedgerKind}},
			Data:       map[string]string{key: string(uid)},
		}
		if err = l.Client.Create(ctx, ledger); !apierrors.IsAlreadyExists(err) {
			break
		}
		ledger = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: name}}
	}
	if err != nil {
		return fmt.Errorf("keeping the uid of release record %s in ledger %s/%s: %w", key, l.Namespace, name, err)
	}
	return nil
}

// Reaper deletes the records older than Retention that the ledger says this manager
// created, every Every.
type Reaper struct {
	// Reader reads the ledger and the records from the API server (ConfigMaps are not
	// cached: a cluster's ConfigMaps are many, and big).
	Reader client.Reader
	// Writer deletes: the manager's client, whose rate limiter (--kube-api-qps) paces
	// the deletion of a year of records at once.
	Writer client.Writer
	// Namespace holds the ledger.
	Namespace string
	// Retention is --record-retention: records older than it are deleted.
	Retention time.Duration
	// Every is how often it looks (DefaultEvery when zero).
	Every time.Duration
	// Clock; the real one when nil.
	Clock clock.PassiveClock
}

// DefaultEvery is how often the Reaper looks by default.
const DefaultEvery = time.Hour

// NeedLeaderElection: one replica deletes (two would only find the records gone).
func (r *Reaper) NeedLeaderElection() bool { return true }

// Start sweeps at once, then every Every, until ctx ends. A sweep that fails is logged
// and tried again at the next.
func (r *Reaper) Start(ctx context.Context) error {
	every := r.Every
	if every <= 0 {
		every = DefaultEvery
	}
	log := logf.FromContext(ctx).WithName("record-retention")
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := r.Sweep(ctx); err != nil {
			log.Error(err, "deleting release records past their retention", "deleted", n)
		} else if n > 0 {
			log.Info("deleted release records past their retention", "deleted", n, "retention", r.Retention)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep deletes, once, the records the ledger keeps whose retention is over, and says
// how many it deleted. Each is read first: only a ConfigMap that is still the one of
// the kept UID, still labelled a record, and older than Retention is deleted, by a
// delete conditional on that UID and resourceVersion. Entries of records gone (or
// unlabelled, kept on purpose) leave the ledger; a day's ledger left empty goes.
func (r *Reaper) Sweep(ctx context.Context) (int, error) {
	if r.Retention <= 0 {
		return 0, nil
	}
	clk := r.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	now := clk.Now()
	cutoff := now.Add(-r.Retention)
	var ledgers corev1.ConfigMapList
	if err := r.Reader.List(ctx, &ledgers, client.InNamespace(r.Namespace),
		client.MatchingLabels{record.KindLabel: LedgerKind}); err != nil {
		return 0, fmt.Errorf("listing the release records' ledger in %s: %w", r.Namespace, err)
	}
	deleted := 0
	for i := range ledgers.Items {
		ledger := &ledgers.Items[i]
		day, err := time.Parse("20060102", strings.TrimPrefix(ledger.Name, ledgerPrefix))
		if err != nil || !day.Before(cutoff) {
			continue // no record of that day is old enough yet
		}
		n, err := r.sweepLedger(ctx, ledger, cutoff, day.Add(24*time.Hour).Before(now))
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

func (r *Reaper) sweepLedger(ctx context.Context, ledger *corev1.ConfigMap, cutoff time.Time, dayOver bool) (int, error) {
	log := logf.FromContext(ctx)
	deleted := 0
	var done []string
	for _, key := range slices.Sorted(maps.Keys(ledger.Data)) {
		uid := types.UID(ledger.Data[key])
		ns, name, ok := splitKey(key)
		if !ok {
			done = append(done, key)
			continue
		}
		var cm corev1.ConfigMap
		err := r.Reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &cm)
		switch {
		case apierrors.IsNotFound(err):
			done = append(done, key)
			continue
		case err != nil:
			return deleted, fmt.Errorf("reading release record %s/%s: %w", ns, name, err)
		case cm.UID != uid || cm.Labels[record.KindLabel] != record.KindValue:
			// Ours is gone (another ConfigMap took the name), or someone took the label
			// off ours to keep it: not ours to delete.
			done = append(done, key)
			continue
		case !cm.CreationTimestamp.Time.Before(cutoff):
			continue
		}
		rv := cm.ResourceVersion
		err = r.Writer.Delete(ctx, &cm, client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			deleted++
			metrics.RecordsDeleted.Inc()
			log.Info("deleted a release record past its retention", "record", key, "created", cm.CreationTimestamp.Time)
			done = append(done, key)
		case apierrors.IsNotFound(err):
			done = append(done, key)
		case apierrors.IsConflict(err):
			// Changed since it was read (its label, perhaps): judged again next time.
		default:
			return deleted, fmt.Errorf("deleting release record %s/%s: %w", ns, name, err)
		}
	}
	if len(done) == 0 {
		return deleted, nil
	}
	if len(done) == len(ledger.Data) && dayOver {
		// No record of that day is left to delete, and no new one can come.
		rv := ledger.ResourceVersion
		if err := r.Writer.Delete(ctx, ledger, client.Preconditions{ResourceVersion: &rv}); client.IgnoreNotFound(err) != nil &&
			!apierrors.IsConflict(err) {
			return deleted, fmt.Errorf("deleting the emptied ledger %s/%s: %w", ledger.Namespace, ledger.Name, err)
		}
		return deleted, nil
	}
	drop := map[string]any{}
	for _, k := range done {
		drop[k] = nil
	}
	patch, err := json.Marshal(map[string]any{"data": drop})
	if err != nil {
		return deleted, err
	}
	if err := r.Writer.Patch(ctx, ledger, client.RawPatch(types.MergePatchType, patch)); client.IgnoreNotFound(err) != nil {
		return deleted, fmt.Errorf("updating the ledger %s/%s: %w", ledger.Namespace, ledger.Name, err)
	}
	return deleted, nil
}
