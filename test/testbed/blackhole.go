package testbed

import (
	"net"
	"sync"
	"sync/atomic"
)

// Blackhole accepts TCP connections and never answers: a hung Prometheus, or a network
// that drops its replies. Accepted counts the connections.
type Blackhole struct {
	// URL is http://host:port.
	URL      string
	Accepted atomic.Int64

	l    net.Listener
	mu   sync.Mutex
	held []net.Conn
}

// StartBlackhole listens on 127.0.0.1.
func StartBlackhole() (*Blackhole, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Blackhole{URL: "http://" + l.Addr().String(), l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.Accepted.Add(1)
			b.mu.Lock()
			b.held = append(b.held, c)
			b.mu.Unlock()
		}
	}()
	return b, nil
}

// Close stops listening and drops every connection held.
func (b *Blackhole) Close() {
	_ = b.l.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.held {
		_ = c.Close()
	}
	b.held = nil
}
