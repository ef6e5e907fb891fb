// Package breaker keeps a dead endpoint from costing anyone a wait: after Threshold
// consecutive failures (no answer, refused, a server error) calls to it are refused at
// once for Cooldown; then one probe goes through (half-open), and its answer closes the
// circuit or opens it again. Measurements of every checklist using the endpoint fail
// fast meanwhile, and say so; nobody else waits behind them.
package breaker

import (
	"fmt"
	"sync"
	"time"
)

// State of one endpoint's circuit.
type State int

const (
	// Closed: calls go through.
	Closed State = iota
	// HalfOpen: one probe is on its way; other calls are refused until it answers.
	HalfOpen
	// Open: calls are refused until the cooldown ends.
	Open
)

func (s State) String() string {
	switch s {
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "closed"
}

// Defaults for a Set that leaves them out.
const (
	DefaultThreshold = 3
	DefaultCooldown  = 30 * time.Second
)

// OpenError is what a refused call returns. Its message stays the same while the
// circuit stays open, failed probes and all, so a checklist that reports it has nothing
// new to write every round.
type OpenError struct {
	Endpoint string
	// Failures and Last are the consecutive failures that opened the circuit and the
	// last of them; Since is when it opened; Every is the cooldown between probes.
	Failures int
	Last     string
	Since    time.Time
	Every    time.Duration
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("circuit open for %s since %s after %d consecutive failures (last: %s); probed every %s",
		e.Endpoint, e.Since.UTC().Format(time.RFC3339), e.Failures, e.Last, e.Every)
}

// Set holds one circuit per endpoint.
type Set struct {
	// Threshold is how many consecutive failures open a circuit.
	Threshold int
	// Cooldown is how long an open circuit refuses calls before a probe.
	Cooldown time.Duration
	// OnChange, if set, is told every change of state (for a metric), and Closed when
	// an open circuit is forgotten.
	OnChange func(endpoint string, s State)
	// Idle is how long a circuit nobody asked about is kept (DefaultIdle if 0, never
	// less than twice the cooldown). A closed circuit without failures is the normal
	// state and is not kept at all: the endpoints checklists choose come and go.
	Idle time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time

	mu        sync.Mutex
	circuits  map[string]*circuit
	lastSweep time.Time
}

// DefaultIdle is how long a Set keeps a circuit nobody asked about.
const DefaultIdle = 10 * time.Minute

type circuit struct {
	state    State
	failures int
	last     string
	since    time.Time // when it opened (kept across failed probes)
	until    time.Time // the next probe
	used     time.Time // when it was last asked about
}

// Allow asks to call endpoint. It returns the function to report the call's outcome
// with (true: the endpoint answered), or an *OpenError when the circuit refuses. The
// report returns the circuit's *OpenError when the failure leaves it open (the one
// that opened it, a failed probe), so that the caller can say what every refused call
// says: callers sharing one answer then all tell the same story, and a checklist has
// nothing new to write when a probe fails.
func (s *Set) Allow(endpoint string) (func(ok bool, why string) error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.circuit(endpoint)
	switch c.state {
	case Open:
		if s.now().Before(c.until) {
			return nil, s.refusal(endpoint, c)
		}
		s.set(endpoint, c, HalfOpen)
	case HalfOpen:
		return nil, s.refusal(endpoint, c)
	}
	probe := c.state == HalfOpen
	return func(ok bool, why string) error { return s.report(endpoint, probe, ok, why) }, nil
}

// Refusal is the error a call to endpoint would be refused with now: the circuit is
// open and its cooldown runs, or its probe is out. Nil when a call would go through.
// A caller about to wait for someone else's call to endpoint asks first: a probe may
// take the whole timeout, and nobody else should wait for it.
func (s *Set) Refusal(endpoint string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.circuits[endpoint]
	if ok && (c.state == HalfOpen || (c.state == Open && s.now().Before(c.until))) {
		c.used = s.now()
		return s.refusal(endpoint, c)
	}
	return nil
}

// State is endpoint's circuit state now.
func (s *Set) State(endpoint string) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.circuits[endpoint]; ok {
		return c.state
	}
	return Closed
}

// Len is how many circuits the set keeps: those with failures, open or probing.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.circuits)
}

func (s *Set) report(endpoint string, probe, ok bool, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.circuit(endpoint)
	if ok {
		if c.state != Closed {
			s.set(endpoint, c, Closed)
		}
		// Closed without failures: nothing to remember.
		delete(s.circuits, endpoint)
		return nil
	}
	switch {
	case probe:
		// Still dead: open for another cooldown, the same story.
		c.until = s.now().Add(s.cooldown())
		s.set(endpoint, c, Open)
	case c.state == Closed:
		c.failures++
		c.last = why
		if c.failures >= s.threshold() {
			c.since = s.now()
			c.until = c.since.Add(s.cooldown())
			s.set(endpoint, c, Open)
		}
	}
	if c.state == Open {
		return s.refusal(endpoint, c)
	}
	return nil
}

func (s *Set) refusal(endpoint string, c *circuit) error {
	return &OpenError{Endpoint: endpoint, Failures: c.failures, Last: c.last, Since: c.since, Every: s.cooldown()}
}

func (s *Set) set(endpoint string, c *circuit, st State) {
	c.state = st
	if s.OnChange != nil {
		s.OnChange(endpoint, st)
	}
}

// circuit is endpoint's circuit, made closed if the set keeps none. Called with s.mu
// held.
func (s *Set) circuit(endpoint string) *circuit {
	now := s.now()
	if s.circuits == nil {
		s.circuits = map[string]*circuit{}
	}
	s.sweep(now)
	c, ok := s.circuits[endpoint]
	if !ok {
		c = &circuit{}
		s.circuits[endpoint] = c
	}
	c.used = now
	return c
}

// sweep forgets, at most once per idle period, the circuits nobody asked about for
// that long: an endpoint no checklist measures any more (a closed circuit with a
// failure or two, an open one nobody probes, a probe whose answer never came).
func (s *Set) sweep(now time.Time) {
	idle := s.idle()
	if now.Sub(s.lastSweep) < idle {
		return
	}
	s.lastSweep = now
	for endpoint, c := range s.circuits {
		if now.Sub(c.used) >= idle {
			delete(s.circuits, endpoint)
			if c.state != Closed && s.OnChange != nil {
				s.OnChange(endpoint, Closed)
			}
		}
	}
}

func (s *Set) idle() time.Duration {
	idle := s.Idle
	if idle <= 0 {
		idle = DefaultIdle
	}
	return max(idle, 2*s.cooldown())
}

func (s *Set) threshold() int {
	if s.Threshold > 0 {
		return s.Threshold
	}
	return DefaultThreshold
}

func (s *Set) cooldown() time.Duration {
	if s.Cooldown > 0 {
		return s.Cooldown
	}
	return DefaultCooldown
}

func (s *Set) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
