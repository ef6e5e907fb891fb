// Package prometheus measures a checklist's metrics with instant PromQL queries and
// turns every answer into exactly one of: a value, no data, or an error.
//
// Credentials come from Secrets in the checklist's own namespace, read directly from
// the API server (no cluster-wide Secret cache or watch), and never appear in messages.
// Identical queries to the same Prometheus at the same evaluation second are sent once
// and shared; at most MaxInFlight queries per address are in flight.
package prometheus

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/breaker"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/metrics"
	"github.com/tminus-dev/tminus/internal/netguard"
	"github.com/tminus-dev/tminus/internal/secretref"
)

// maxMessage bounds error messages kept in status and events.
const maxMessage = 300

// DefaultMaxInFlight is how many queries may be in flight to one Prometheus address.
const DefaultMaxInFlight = 10

// Querier is the one method of the Prometheus API this package uses, so tests fake one
// method rather than the whole API.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// Request is one measurement.
type Request struct {
	// Namespace of the checklist: Secrets are read there.
	Namespace string
	Spec      *deployv1alpha1.PrometheusSpec
	// Query is the PromQL, variables resolved.
	Query string
	// At is the evaluation time; it is truncated to the second, so checklists that
	// evaluate the same query at the same time share one request (the reconciler
	// evaluates at the interval's tick: checklist.EvaluationTime).
	At time.Time
	// Interval is the checklist's evaluation interval: an unset timeout is never longer.
	Interval time.Duration
}

// Provider measures metrics against the Prometheus a checklist names.
type Provider struct {
	// Secrets reads credentials; it should be an uncached reader (the manager's
	// APIReader), so tminus never lists or watches Secrets. A Secret read is used for
	// the requesting checklist's interval (the checklists sharing it cost one Get per
	// interval), so a rotated credential is used from the next interval on.
	Secrets client.Reader
	// Guard decides which addresses may be dialed (netguard); nil checks nothing (tests).
	Guard *netguard.Guard
	// MaxInFlight bounds concurrent queries per address (DefaultMaxInFlight if 0).
	MaxInFlight int
	// NewQuerier builds the querier for an address; tests replace it.
	NewQuerier func(address string, c *http.Client) (Querier, error)
	// Breakers open a circuit per address that stops answering (no answer, refused,
	// a server error; not a query Prometheus itself timed out or refused), so
	// measurements against a dead Prometheus fail at once instead of each waiting its
	// timeout. Nil: a set with the breaker package's defaults.
	Breakers *breaker.Set

	sent atomic.Int64

	secretsOnce sync.Once
	secrets     *secretref.Cache

	mu         sync.Mutex
	sems       map[string]*semaphore
	transports map[string]*transport
	calls      map[string]*call
	lastSweep  time.Time
	// now is the clock; time.Now if nil.
	now func() time.Time
}

// semaphore bounds the queries in flight to one address; it is forgotten when nobody
// uses it, so addresses that came and went leave nothing behind.
type semaphore struct {
	slots chan struct{}
	users int
}

// transport is shared by the requests with the same TLS settings; it is closed and
// forgotten once unused for transportIdle.
type transport struct {
	tr   *http.Transport
	used time.Time
}

// transportIdle is how long a transport nobody used is kept.
const transportIdle = 10 * time.Minute

type call struct {
	done chan struct{}
	m    checklist.Measurement
}

// Sent is how many queries reached Prometheus (shared ones count once).
func (p *Provider) Sent() int64 { return p.sent.Load() }

// Measure runs one query. It never panics and never returns a value it did not get
// from Prometheus.
func (p *Provider) Measure(ctx context.Context, req Request) checklist.Measurement {
	if req.Spec == nil {
		return errorf(req.Query, "spec.prometheus is not set")
	}
	creds, err := p.credentials(ctx, req.Namespace, req.Spec, secretMaxAge(req.Interval))
	if err != nil {
		return errorf(req.Query, "prometheus %s: %v", req.Spec.Address, err)
	}
	at := req.At.Truncate(time.Second)
	key := strings.Join([]string{req.Spec.Address, creds.fingerprint(), req.Spec.Timeout, req.Query, at.Format(time.RFC3339)}, "\x00")

	p.mu.Lock()
	if p.calls == nil {
		p.calls = map[string]*call{}
	}
	if c, ok := p.calls[key]; ok {
		p.mu.Unlock()
		select {
		case <-c.done:
			return c.m
		default:
		}
		// In flight: unless it is the probe of an open circuit, which may take the
		// whole timeout and which nobody else waits for.
		if err := p.breakers().Refusal(req.Spec.Address); err != nil {
			metrics.QueryFailed(req.Spec.Address)
			return errorf(req.Query, "prometheus %s: %v", req.Spec.Address, err)
		}
		select {
		case <-c.done:
			return c.m
		case <-ctx.Done():
			return errorf(req.Query, "prometheus %s: %v", req.Spec.Address, ctx.Err())
		}
	}
	c := &call{done: make(chan struct{})}
	p.calls[key] = c
	p.mu.Unlock()

	c.m = p.query(ctx, req, creds, at)
	close(c.done)
	// Keep the answer while reconciles of the same round may still ask for this
	// evaluation time (checklist.EvaluationTime).
	time.AfterFunc(time.Until(at.Add(max(2*time.Second, checklist.EvaluationSlack(req.Interval)))), func() {
		p.mu.Lock()
		delete(p.calls, key)
		p.mu.Unlock()
	})
	return c.m
}

func (p *Provider) query(ctx context.Context, req Request, creds *credentials, at time.Time) checklist.Measurement {
	timeout := Timeout(req.Spec, req.Interval)
	done, err := p.breakers().Allow(req.Spec.Address)
	if err != nil {
		metrics.QueryFailed(req.Spec.Address)
		return errorf(req.Query, "prometheus %s: %v", req.Spec.Address, err)
	}
	// Prometheus is asked to give up at timeout; the client waits a little longer, so
	// a live Prometheus answers "query timed out" (the query's fault) and only a dead
	// one leaves the client waiting (the address's fault, for the breaker).
	ctx, cancel := context.WithTimeout(ctx, timeout+clientGrace(timeout))
	defer cancel()
	reported := false
	report := func(ok bool, why string) error {
		reported = true
		return done(ok, why)
	}
	// Whatever ends the attempt early (no free slot, no client) counts as no answer.
	defer func() {
		if !reported {
			_ = done(false, "")
		}
	}()

	sem := p.semaphore(req.Spec.Address)
	defer p.unuse(req.Spec.Address, sem)
	select {
	case sem.slots <- struct{}{}:
		defer func() { <-sem.slots }()
	case <-ctx.Done():
		return errorf(req.Query, "prometheus %s: no free query slot within %s", req.Spec.Address, timeout)
	}

	httpClient, err := p.httpClient(req.Spec, creds)
	if err != nil {
		return errorf(req.Query, "prometheus %s: %v", req.Spec.Address, err)
	}
	newQuerier := p.NewQuerier
	if newQuerier == nil {
		newQuerier = defaultQuerier
	}
	q, err := newQuerier(req.Spec.Address, httpClient)
	if err != nil {
		return errorf(req.Query, "prometheus %s: %v", req.Spec.Address, err)
	}
	p.sent.Add(1)
	began := time.Now()
	v, _, _, err := q.Query(ctx, req.Query, at, promv1.WithTimeout(timeout))
	metrics.QueryTook(req.Spec.Address, time.Since(began).Seconds())
	m := Classify(req.Query, v)
	answered := err == nil || answeredAnyway(err)
	if err != nil {
		why := describeError(err, timeout)
		if open := report(answered, why); open != nil {
			// Left open: say what every refused measurement says.
			why = open.Error()
		}
		m = errorf(req.Query, "prometheus %s: %s", req.Spec.Address, why)
	} else {
		_ = report(true, "")
	}
	if m.Kind == checklist.ResultError {
		metrics.QueryFailed(req.Spec.Address)
	}
	return m
}

// Timeout is how long a query may take: spec.timeout, or else 10s or the interval,
// whichever is shorter.
func Timeout(spec *deployv1alpha1.PrometheusSpec, interval time.Duration) time.Duration {
	if spec.Timeout != "" {
		if d, err := time.ParseDuration(spec.Timeout); err == nil && d > 0 {
			return d
		}
	}
	if interval > 0 && interval < checklist.DefaultPrometheusTimeout {
		return interval
	}
	return checklist.DefaultPrometheusTimeout
}

// clientGrace is how much longer than Prometheus's own query timeout the client waits.
func clientGrace(timeout time.Duration) time.Duration { return min(time.Second, timeout/2) }

// answeredAnyway says whether an error came from a Prometheus that answered: it refused
// or gave up on this query (bad PromQL, its own timeout, too many samples). Only
// silence, refused connections and server errors count against the address.
func answeredAnyway(err error) bool {
	apiErr, ok := errors.AsType[*promv1.Error](err)
	if !ok {
		return false
	}
	switch apiErr.Type {
	case promv1.ErrBadData, promv1.ErrExec, promv1.ErrTimeout, promv1.ErrCanceled:
		return true
	}
	return false
}

func (p *Provider) breakers() *breaker.Set {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Breakers == nil {
		p.Breakers = &breaker.Set{OnChange: metrics.CircuitChanged}
	}
	return p.Breakers
}

// describeError says what went wrong without echoing a response body.
func describeError(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	if apiErr, ok := errors.AsType[*promv1.Error](err); ok {
		msg := string(apiErr.Type) + ": " + apiErr.Msg
		if strings.Contains(apiErr.Msg, "401") || strings.Contains(apiErr.Msg, "403") {
			msg += " (check the credentials)"
		}
		return msg
	}
	return err.Error()
}

func defaultQuerier(address string, c *http.Client) (Querier, error) {
	ac, err := api.NewClient(api.Config{Address: address, Client: c})
	if err != nil {
		return nil, err
	}
	return promv1.NewAPI(ac), nil
}

// semaphore is address's semaphore, counted as used until unuse.
func (p *Provider) semaphore(address string) *semaphore {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sems == nil {
		p.sems = map[string]*semaphore{}
	}
	s, ok := p.sems[address]
	if !ok {
		n := p.MaxInFlight
		if n <= 0 {
			n = DefaultMaxInFlight
		}
		s = &semaphore{slots: make(chan struct{}, n)}
		p.sems[address] = s
	}
	s.users++
	return s
}

func (p *Provider) unuse(address string, s *semaphore) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.users--; s.users == 0 && p.sems[address] == s {
		delete(p.sems, address)
	}
}

// httpClient sends requests through a transport shared by every checklist with the same
// TLS settings, adds the credentials, and never follows redirects.
func (p *Provider) httpClient(spec *deployv1alpha1.PrometheusSpec, creds *credentials) (*http.Client, error) {
	tlsKey := sha256.New()
	tlsKey.Write(creds.ca)
	if spec.TLS != nil {
		_, _ = fmt.Fprintf(tlsKey, "\x00%s\x00%t", spec.TLS.ServerName, spec.TLS.InsecureSkipVerify)
	}
	key := hex.EncodeToString(tlsKey.Sum(nil))

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.transports == nil {
		p.transports = map[string]*transport{}
	}
	now := p.clock()
	p.sweepTransports(now)
	t, ok := p.transports[key]
	if !ok {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if spec.TLS != nil {
			cfg.ServerName = spec.TLS.ServerName
			cfg.InsecureSkipVerify = spec.TLS.InsecureSkipVerify //nolint:gosec // explicit opt-in in the spec
		}
		if len(creds.ca) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(creds.ca) {
				return nil, fmt.Errorf("the CA bundle in spec.prometheus.tls.caSecretRef holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		t = &transport{tr: &http.Transport{
			DialContext:         p.Guard.DialContext,
			TLSClientConfig:     cfg,
			MaxIdleConnsPerHost: DefaultMaxInFlight,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		}}
		p.transports[key] = t
	}
	t.used = now
	return &http.Client{
		Transport:     &authTransport{next: t.tr, creds: creds},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// sweepTransports closes and forgets, at most once per transportIdle, the transports
// nobody used for transportIdle (the TLS settings of checklists that ended). Called
// with p.mu held.
func (p *Provider) sweepTransports(now time.Time) {
	if now.Sub(p.lastSweep) < transportIdle {
		return
	}
	p.lastSweep = now
	for k, t := range p.transports {
		if now.Sub(t.used) >= transportIdle {
			t.tr.CloseIdleConnections()
			delete(p.transports, k)
		}
	}
}

func (p *Provider) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// credentials read from Secrets for one request.
type credentials struct {
	bearer             string
	username, password string
	headers            http.Header
	ca                 []byte
}

// fingerprint identifies the credentials without revealing them, so only requests with
// the same identity share an answer.
func (c *credentials) fingerprint() string {
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "%s\x00%s\x00%s\x00", c.bearer, c.username, c.password)
	for _, k := range sortedHeaderKeys(c.headers) {
		_, _ = fmt.Fprintf(h, "%s=%s\x00", k, strings.Join(c.headers[k], ","))
	}
	h.Write(c.ca)
	return hex.EncodeToString(h.Sum(nil))
}

// secretMaxAge is how long a Secret read serves a checklist measuring every interval.
func secretMaxAge(interval time.Duration) time.Duration {
	if interval <= 0 {
		return checklist.DefaultInterval
	}
	return interval
}

func (p *Provider) secretCache() *secretref.Cache {
	p.secretsOnce.Do(func() { p.secrets = &secretref.Cache{Reader: p.Secrets, Now: p.now} })
	return p.secrets
}

func (p *Provider) credentials(ctx context.Context, ns string, spec *deployv1alpha1.PrometheusSpec, maxAge time.Duration) (*credentials, error) {
	c := &credentials{headers: http.Header{}}
	secrets := p.secretCache()
	var err error
	if spec.BearerTokenSecretRef != nil {
		if c.bearer, err = secrets.Value(ctx, ns, spec.BearerTokenSecretRef, "spec.prometheus.bearerTokenSecretRef", maxAge); err != nil {
			return nil, err
		}
	}
	if spec.BasicAuth != nil {
		if c.username, err = secrets.Value(ctx, ns, &spec.BasicAuth.Username, "spec.prometheus.basicAuth.username", maxAge); err != nil {
			return nil, err
		}
		if c.password, err = secrets.Value(ctx, ns, &spec.BasicAuth.Password, "spec.prometheus.basicAuth.password", maxAge); err != nil {
			return nil, err
		}
	}
	for i, h := range spec.Headers {
		v := h.Value
		if h.SecretKeyRef != nil {
			if v, err = secrets.Value(ctx, ns, h.SecretKeyRef, fmt.Sprintf("spec.prometheus.headers[%d].secretKeyRef", i), maxAge); err != nil {
				return nil, err
			}
		}
		c.headers.Set(h.Name, v)
	}
	if spec.TLS != nil && spec.TLS.CASecretRef != nil {
		ca, err := secrets.Value(ctx, ns, spec.TLS.CASecretRef, "spec.prometheus.tls.caSecretRef", maxAge)
		if err != nil {
			return nil, err
		}
		c.ca = []byte(ca)
	}
	return c, nil
}

type authTransport struct {
	next  http.RoundTripper
	creds *credentials
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	maps.Copy(r.Header, t.creds.headers)
	switch {
	case t.creds.bearer != "":
		r.Header.Set("Authorization", "Bearer "+t.creds.bearer)
	case t.creds.username != "" || t.creds.password != "":
		r.SetBasicAuth(t.creds.username, t.creds.password)
	}
	return t.next.RoundTrip(r)
}

func sortedHeaderKeys(h http.Header) []string {
	return slices.Sorted(maps.Keys(h))
}

// Classify turns a query result into a measurement: a scalar or a vector of exactly one
// sample is a value; an empty vector, NaN or ±Inf is no data; several series, a matrix
// or a string are errors.
func Classify(query string, v model.Value) checklist.Measurement {
	switch r := v.(type) {
	case *model.Scalar:
		return sample(query, float64(r.Value))
	case model.Vector:
		switch len(r) {
		case 0:
			return checklist.Measurement{Kind: checklist.ResultNoData, Query: query, Message: "empty result"}
		case 1:
			return sample(query, float64(r[0].Value))
		default:
			return errorf(query, "expected 1 series, got %d: %s", len(r), r[0].Metric.String())
		}
	case nil:
		return errorf(query, "empty answer")
	default:
		return errorf(query, "expected a scalar or a vector, got a %s", v.Type())
	}
}

func sample(query string, f float64) checklist.Measurement {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		s := strconv.FormatFloat(f, 'g', -1, 64)
		if math.IsInf(f, 1) {
			s = "+Inf"
		}
		return checklist.Measurement{Kind: checklist.ResultNoData, Query: query, Display: s, Message: "the query returned " + s}
	}
	return checklist.Measurement{Kind: checklist.ResultValue, Query: query, Value: f, Display: strconv.FormatFloat(f, 'g', 6, 64)}
}

func errorf(query, format string, args ...any) checklist.Measurement {
	msg := fmt.Sprintf(format, args...)
	msg = strings.ReplaceAll(msg, "\n", " ")
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	return checklist.Measurement{Kind: checklist.ResultError, Query: query, Message: msg}
}
