// Package app is an instrumented service for tests and the demo: it serves /metrics and
// /health and generates its own synthetic traffic, recording http_requests_total{code}
// and the http_request_duration_seconds histogram with the error rate and latency the
// caller sets, like a real service instrumented with client_golang.
package app

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// App is a running instrumented service.
type App struct {
	// Addr is host:port of its HTTP server.
	Addr string

	requests *prometheus.CounterVec
	latency  prometheus.Histogram
	srv      *http.Server
	stop     chan struct{}
	wg       sync.WaitGroup

	mu        sync.Mutex
	errorRate float64
	delay     time.Duration
	traffic   bool
	healthy   bool
	owed      float64
}

// Start serves on 127.0.0.1 and generates requestsPerSecond synthetic requests.
func Start(requestsPerSecond int) (*App, error) {
	reg := prometheus.NewRegistry()
	a := &App{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests served, by status code.",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10},
		}),
		stop:    make(chan struct{}),
		traffic: true,
		healthy: true,
		delay:   100 * time.Millisecond,
	}
	reg.MustRegister(a.requests, a.latency)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		ok := a.healthy
		a.mu.Unlock()
		if !ok {
			http.Error(w, `{"status":"failing"}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a.Addr = l.Addr().String()
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		_ = a.srv.Serve(l)
	}()
	go func() {
		defer a.wg.Done()
		a.generate(requestsPerSecond)
	}()
	return a, nil
}

// Set changes the share of requests that fail with 500 and the latency of every request.
func (a *App) Set(errorRate float64, latency time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errorRate, a.delay = errorRate, latency
}

// SetTraffic starts or stops the synthetic traffic (without traffic, rates are 0/0).
func (a *App) SetTraffic(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.traffic = on
}

// SetHealthy makes /health answer 200 or 503.
func (a *App) SetHealthy(ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.healthy = ok
}

// generate records requests every 10ms. Errors are spread evenly, not drawn at random,
// so the measured error rate is the one set.
func (a *App) generate(perSecond int) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := float64(perSecond) / 100
	var due float64
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
		}
		a.mu.Lock()
		if !a.traffic {
			a.mu.Unlock()
			continue
		}
		due += perTick
		for ; due >= 1; due-- {
			a.owed += a.errorRate
			code := "200"
			if a.owed >= 1 {
				a.owed--
				code = "500"
			}
			a.requests.WithLabelValues(code).Inc()
			a.latency.Observe(a.delay.Seconds())
		}
		a.mu.Unlock()
	}
}

// Close stops the traffic and the server.
func (a *App) Close() {
	close(a.stop)
	_ = a.srv.Close()
	a.wg.Wait()
}
