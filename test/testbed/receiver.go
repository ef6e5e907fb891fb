package testbed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Received is one request a Receiver took.
type Received struct {
	// Path is the request's path: one Receiver serves several receivers, one per path.
	Path   string
	Header http.Header
	Body   []byte
	// Signed says the request carried a signature; SignatureOK that it matched the
	// Receiver's key over the timestamp header and the body.
	Signed, SignatureOK bool
	// Answered is the status the Receiver answered with; 0 when the sender had gone.
	Answered int
}

// Decode reads the body as JSON into v.
func (r Received) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Receiver is a real HTTP server on loopback that takes notifications: Slack, Teams or
// the signed webhook, on any path. It records every request, checks webhook
// signatures itself (HMAC-SHA256 of "<X-Tminus-Timestamp>.<body>"), and answers with
// the status set for the path (200 by default), or hangs.
type Receiver struct {
	URL    string
	server *httptest.Server
	key    []byte

	mu       sync.Mutex
	received []Received
	status   map[string]int
	hang     map[string]time.Duration
	held     map[string]*hold
}

// hold keeps the requests to a path waiting until it is released.
type hold struct {
	arrived, released chan struct{}
	once, releaseOnce sync.Once
}

func (h *hold) release() { h.releaseOnce.Do(func() { close(h.released) }) }

// NewReceiver starts a Receiver checking signatures with key (none when nil).
func NewReceiver(key []byte) *Receiver {
	r := &Receiver{key: key, status: map[string]int{}, hang: map[string]time.Duration{}}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.server.URL
	return r
}

// Close releases every held request (the server's Close waits for the requests in
// flight) and stops the server.
func (r *Receiver) Close() {
	r.mu.Lock()
	for _, h := range r.held {
		h.release()
	}
	r.mu.Unlock()
	r.server.Close()
}

// Answer makes requests to path answer with status.
func (r *Receiver) Answer(path string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[path] = status
}

// Hang makes requests to path wait d before answering.
func (r *Receiver) Hang(path string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hang[path] = d
}

// Hold makes requests to path wait, once they arrive, until release is called (or
// the sender gives up): a test can act while a message is in flight. arrived is
// closed when the first request arrives. Calling release again does nothing.
func (r *Receiver) Hold(path string) (arrived <-chan struct{}, release func()) {
	h := &hold{arrived: make(chan struct{}), released: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held = map[string]*hold{}
	}
	r.held[path] = h
	return h.arrived, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.held[path] == h {
			delete(r.held, path)
		}
		h.release()
	}
}

// Received returns the requests taken on path so far, answered with a 2xx or not.
func (r *Receiver) Received(path string) []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Received
	for _, rec := range r.received {
		if rec.Path == path {
			out = append(out, rec)
		}
	}
	return out
}

// Accepted returns the requests to path it answered with a 2xx.
func (r *Receiver) Accepted(path string) []Received {
	var out []Received
	for _, rec := range r.Received(path) {
		if rec.Answered/100 == 2 {
			out = append(out, rec)
		}
	}
	return out
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	rec := Received{Path: req.URL.Path, Header: req.Header.Clone(), Body: body}
	if sig := req.Header.Get("X-Tminus-Signature"); sig != "" {
		rec.Signed = true
		mac := hmac.New(sha256.New, r.key)
		mac.Write([]byte(req.Header.Get("X-Tminus-Timestamp") + "."))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		rec.SignatureOK = r.key != nil && hmac.Equal([]byte(sig), []byte(want)) && strings.HasPrefix(sig, "sha256=")
	}
	r.mu.Lock()
	status, hang, held := r.status[req.URL.Path], r.hang[req.URL.Path], r.held[req.URL.Path]
	r.mu.Unlock()
	if held != nil {
		held.once.Do(func() { close(held.arrived) })
		select {
		case <-held.released:
		case <-req.Context().Done():
		}
	}
	if hang > 0 {
		select {
		case <-time.After(hang):
		case <-req.Context().Done():
		}
	}
	if status == 0 {
		status = http.StatusOK
	}
	rec.Answered = status
	if req.Context().Err() != nil {
		rec.Answered = 0 // the sender gave up waiting: nothing was accepted
	}
	r.mu.Lock()
	r.received = append(r.received, rec)
	r.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write([]byte("ok"))
}
