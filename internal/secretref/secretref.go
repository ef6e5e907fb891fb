// Package secretref reads one key of a Secret that a user's object names, with errors
// that name the field and the Secret and never the value.
package secretref

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// Value reads ref's key of a Secret in ns through r (an uncached reader: tminus never
// lists or watches Secrets), trimmed of surrounding space. field names the referring
// field in errors.
func Value(ctx context.Context, r client.Reader, ns string, ref *deployv1alpha1.SecretKeyRef, field string) (string, error) {
	if r == nil {
		return "", fmt.Errorf("%s: no Secret reader configured", field)
	}
	data, err := read(ctx, r, types.NamespacedName{Namespace: ns, Name: ref.Name})
	return value(data, err, ns, ref, field)
}

func read(ctx context.Context, r client.Reader, key types.NamespacedName) (map[string][]byte, error) {
	var s corev1.Secret
	if err := r.Get(ctx, key, &s); err != nil {
		return nil, err
	}
	return s.Data, nil
}

func value(data map[string][]byte, err error, ns string, ref *deployv1alpha1.SecretKeyRef, field string) (string, error) {
	if err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("%s: Secret %s/%s not found", field, ns, ref.Name)
		}
		if apierrors.IsForbidden(err) {
			return "", fmt.Errorf("%s: reading Secret %s/%s is forbidden", field, ns, ref.Name)
		}
		return "", fmt.Errorf("%s: reading Secret %s/%s: %v", field, ns, ref.Name, err)
	}
	v, ok := data[ref.Key]
	if !ok {
		return "", fmt.Errorf("%s: Secret %s/%s has no key %q", field, ns, ref.Name, ref.Key)
	}
	return strings.TrimSpace(string(v)), nil
}

// Cache reads Secrets with Gets through Reader (uncached: tminus never lists or watches
// Secrets) and keeps what it read for a while, so the checklists of a namespace sharing
// one Secret cost one Get per Secret per evaluation interval, not one each. Readers
// asking for the same Secret at once share one Get. An answer of the API server (the
// Secret, not found, forbidden) is kept; a failed request is not.
type Cache struct {
	Reader client.Reader
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	mu        sync.Mutex
	entries   map[types.NamespacedName]*entry
	longest   time.Duration
	lastSweep time.Time
}

type entry struct {
	done chan struct{}
	at   time.Time
	data map[string][]byte
	err  error
}

// Value is the package's Value read through the cache: a Secret read less than maxAge
// ago is not read again.
func (c *Cache) Value(ctx context.Context, ns string, ref *deployv1alpha1.SecretKeyRef, field string, maxAge time.Duration) (string, error) {
	if c == nil || c.Reader == nil {
		return "", fmt.Errorf("%s: no Secret reader configured", field)
	}
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	for {
		c.mu.Lock()
		now := c.now()
		c.sweep(now, maxAge)
		e, ok := c.entries[key]
		if ok {
			select {
			case <-e.done:
				if now.Sub(e.at) < maxAge {
					c.mu.Unlock()
					return value(e.data, e.err, ns, ref, field)
				}
				// Too old for this reader: read again.
			default:
				c.mu.Unlock()
				select {
				case <-e.done:
					continue
				case <-ctx.Done():
					return value(nil, ctx.Err(), ns, ref, field)
				}
			}
		}
		e = &entry{done: make(chan struct{}), at: now}
		c.entries[key] = e
		c.mu.Unlock()

		e.data, e.err = read(ctx, c.Reader, key)
		c.mu.Lock()
		if e.err != nil && !apierrors.IsNotFound(e.err) && !apierrors.IsForbidden(e.err) && c.entries[key] == e {
			delete(c.entries, key)
		}
		close(e.done)
		c.mu.Unlock()
		return value(e.data, e.err, ns, ref, field)
	}
}

// sweep forgets, once per longest age asked, the Secrets read longer ago than that.
func (c *Cache) sweep(now time.Time, maxAge time.Duration) {
	if c.entries == nil {
		c.entries = map[types.NamespacedName]*entry{}
	}
	c.longest = max(c.longest, maxAge)
	if now.Sub(c.lastSweep) < c.longest {
		return
	}
	c.lastSweep = now
	for k, e := range c.entries {
		select {
		case <-e.done:
			if now.Sub(e.at) >= c.longest {
				delete(c.entries, k)
			}
		default:
		}
	}
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
