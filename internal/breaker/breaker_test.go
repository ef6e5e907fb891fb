package breaker

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func call(s *Set, ok bool) error {
	done, err := s.Allow("http://prom:9090")
	if err != nil {
		return err
	}
	_ = done(ok, "no answer within 2s")
	return nil
}

func TestACircuitOpensAfterConsecutiveFailuresAndRefusesAtOnce(t *testing.T) {
	g := NewWithT(t)
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	var changes []State
	s := &Set{Threshold: 3, Cooldown: 30 * time.Second, Now: c.now, OnChange: func(_ string, st State) { changes = append(changes, st) }}

	g.Expect(call(s, false)).To(Succeed())
	g.Expect(call(s, true)).To(Succeed(), "an answer resets the count")
	for range 3 {
		g.Expect(call(s, false)).To(Succeed())
	}
	g.Expect(s.State("http://prom:9090")).To(Equal(Open))
	err := call(s, true)
	var open *OpenError
	g.Expect(errors.As(err, &open)).To(BeTrue())
	g.Expect(err.Error()).To(Equal("circuit open for http://prom:9090 since 2026-11-27T12:00:00Z after 3 consecutive " +
		"failures (last: no answer within 2s); probed every 30s"))
	g.Expect(changes).To(Equal([]State{Open}))
}

func TestAfterTheCooldownOneProbeDecides(t *testing.T) {
	g := NewWithT(t)
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	s := &Set{Threshold: 1, Cooldown: 10 * time.Second, Now: c.now}
	g.Expect(call(s, false)).To(Succeed())
	c.t = c.t.Add(10 * time.Second)

	// One probe goes through; a second call meanwhile is refused.
	done, err := s.Allow("http://prom:9090")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.State("http://prom:9090")).To(Equal(HalfOpen))
	_, err = s.Allow("http://prom:9090")
	g.Expect(err).To(HaveOccurred())

	// The probe fails: open again for a whole cooldown, saying the same as before (a
	// checklist reporting it has nothing new to write).
	before := err
	g.Expect(done(false, "connection refused")).To(MatchError(before.Error()), "the failed probe tells the same story")
	g.Expect(s.State("http://prom:9090")).To(Equal(Open))
	c.t = c.t.Add(9 * time.Second)
	after := call(s, true)
	g.Expect(after).To(HaveOccurred())
	g.Expect(after.Error()).To(Equal(before.Error()))

	// The next probe answers: closed.
	c.t = c.t.Add(time.Second)
	g.Expect(call(s, true)).To(Succeed())
	g.Expect(s.State("http://prom:9090")).To(Equal(Closed))
	g.Expect(call(s, true)).To(Succeed())
}

func TestCircuitsAreKeptPerEndpoint(t *testing.T) {
	g := NewWithT(t)
	s := &Set{Threshold: 1}
	done, _ := s.Allow("http://dead:9090")
	_ = done(false, "refused")
	_, err := s.Allow("http://dead:9090")
	g.Expect(err).To(HaveOccurred())
	_, err = s.Allow("http://alive:9090")
	g.Expect(err).NotTo(HaveOccurred())
}

// TestEndpointsThatCameAndWentLeaveNoCircuitBehind: checklists name their own
// endpoints; 10,000 of them answered once or failed a few times and were never asked
// about again. The set keeps nothing for those that answered, and forgets the others
// (open ones included, telling the metric they are closed) once idle.
func TestEndpointsThatCameAndWentLeaveNoCircuitBehind(t *testing.T) {
	g := NewWithT(t)
	c := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	open := map[string]bool{}
	s := &Set{Threshold: 2, Cooldown: 30 * time.Second, Now: c.now, OnChange: func(e string, st State) { open[e] = st != Closed }}
	ask := func(endpoint string, ok bool) {
		if done, err := s.Allow(endpoint); err == nil {
			_ = done(ok, "refused")
		}
	}
	for i := range 10000 {
		endpoint := fmt.Sprintf("http://prom-%d:9090", i)
		switch i % 3 {
		case 0:
			ask(endpoint, true)
		case 1:
			ask(endpoint, false)
		default:
			ask(endpoint, false)
			ask(endpoint, false)
		}
	}
	g.Expect(s.Len()).To(BeNumerically("<=", 6667), "those that answered left nothing")
	c.t = c.t.Add(DefaultIdle)
	ask("http://prom-live:9090", true)
	g.Expect(s.Len()).To(BeZero())
	g.Expect(slices.Collect(maps.Values(open))).NotTo(ContainElement(true), "every forgotten open circuit was reported closed")
}
