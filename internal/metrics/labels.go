package metrics

import (
	"sync"
	"time"

	"github.com/tminus-dev/tminus/internal/breaker"
)

// Addresses and endpoints are chosen by whoever writes a checklist, so the series
// labelled by them are bounded: at most MaxEndpointLabels values at once, each dropped
// (its series deleted) after EndpointLabelIdle without use; one past the bound is
// counted under OtherEndpoint.
const (
	MaxEndpointLabels = 64
	EndpointLabelIdle = 15 * time.Minute
	// OtherEndpoint is the label value of the addresses past MaxEndpointLabels.
	OtherEndpoint = "other"
)

// boundedLabel hands out at most max values of one label and deletes the series of a
// value nobody used for idle.
type boundedLabel struct {
	max  int
	idle time.Duration
	// forget deletes the series of a value dropped.
	forget func(value string)

	mu        sync.Mutex
	used      map[string]time.Time
	lastSweep time.Time
}

// value is v if it has (or gets) a label value of its own, else OtherEndpoint.
func (b *boundedLabel) value(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := clock()
	if b.used == nil {
		b.used = map[string]time.Time{}
	}
	b.sweep(now)
	if _, ok := b.used[v]; ok || len(b.used) < b.max {
		b.used[v] = now
		return v
	}
	return OtherEndpoint
}

// drop forgets v at once (a gauge whose series says nothing once closed).
func (b *boundedLabel) drop(v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.used[v]; ok {
		delete(b.used, v)
		b.forget(v)
	}
}

// sweep drops, at most once a minute, the values idle for b.idle.
func (b *boundedLabel) sweep(now time.Time) {
	if now.Sub(b.lastSweep) < time.Minute {
		return
	}
	b.lastSweep = now
	for v, at := range b.used {
		if now.Sub(at) >= b.idle {
			delete(b.used, v)
			b.forget(v)
		}
	}
}

// clock is the time; tests replace it.
var clock = time.Now

var addresses = &boundedLabel{max: MaxEndpointLabels, idle: EndpointLabelIdle, forget: func(v string) {
	QueryDuration.DeleteLabelValues(v)
	QueryErrors.DeleteLabelValues(v)
}}

// QueryTook observes the latency of a query sent to address.
func QueryTook(address string, seconds float64) {
	QueryDuration.WithLabelValues(addresses.value(address)).Observe(seconds)
}

// QueryFailed counts a query to address that ended in an error.
func QueryFailed(address string) {
	QueryErrors.WithLabelValues(addresses.value(address)).Inc()
}

// circuitEndpoints bounds CircuitState's endpoint label for one kind.
func circuitEndpoints(kind string) *boundedLabel {
	return &boundedLabel{max: MaxEndpointLabels, idle: EndpointLabelIdle, forget: func(v string) {
		CircuitState.DeleteLabelValues(kind, v)
	}}
}

var (
	promCircuits = circuitEndpoints("prometheus")
	httpCircuits = circuitEndpoints("http")
)

// circuitChanged records an endpoint's circuit state: a series while it is not closed
// (closed is the normal state and has none), under the endpoint's own label while
// there is room; an endpoint past the bound is not shown (its measurements say that
// its circuit is open).
func circuitChanged(b *boundedLabel, kind, endpoint string, s breaker.State) {
	if s == breaker.Closed {
		b.drop(endpoint)
		return
	}
	if v := b.value(endpoint); v != OtherEndpoint {
		CircuitState.WithLabelValues(kind, v).Set(float64(s))
	}
}
