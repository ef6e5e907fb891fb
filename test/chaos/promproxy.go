package chaos

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// PromFault is how the Prometheus the managers ask misbehaves while Prometheus itself
// runs: what a proxy, a load balancer or Prometheus's own trouble does to answers.
type PromFault int

const (
	// Prom5xx answers every query 503.
	Prom5xx PromFault = iota
	// PromSlow answers every query after 3 s (the checklists' timeout is 1 s).
	PromSlow
	// PromNaN answers every sample as NaN.
	PromNaN
	// PromTwoSeries answers every vector with a second series beside the first.
	PromTwoSeries
	promFaults
)

var promFaultNames = [promFaults]string{"5xx", "slow", "NaN", "two-series"}

func (f PromFault) String() string { return promFaultNames[f] }

// promSlowness is how late PromSlow answers.
const promSlowness = 3 * time.Second

// promProxy stands between the managers and the real Prometheus: it passes every
// request on, unless a fault is on, and then answers as the fault says.
type promProxy struct {
	server *httptest.Server
	proxy  *httputil.ReverseProxy

	mu sync.Mutex
	// on counts the runs that turned each fault on.
	on [promFaults]int
}

func startPromProxy(prometheus string) (*promProxy, error) {
	target, err := url.Parse(prometheus)
	if err != nil {
		return nil, err
	}
	p := &promProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	p.proxy.ModifyResponse = p.rewrite
	// Prometheus stopped (PrometheusDown) is a 502, as a proxy answers: not worth a line.
	p.proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	p.server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p, nil
}

// URL is the address checklists give as their Prometheus.
func (p *promProxy) URL() string { return p.server.URL }

func (p *promProxy) close() { p.server.Close() }

// set turns a fault on (or off: each on is matched by one off).
func (p *promProxy) set(f PromFault, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.on[f]++
	} else {
		p.on[f]--
	}
}

func (p *promProxy) active(f PromFault) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.on[f] > 0
}

func (p *promProxy) serve(w http.ResponseWriter, req *http.Request) {
	if p.active(Prom5xx) {
		http.Error(w, "chaos: Prometheus answers 503", http.StatusServiceUnavailable)
		return
	}
	if p.active(PromSlow) {
		select {
		case <-time.After(promSlowness):
		case <-req.Context().Done():
			return
		}
	}
	// Answers read as sent: the rewrites need them uncompressed.
	req.Header.Del("Accept-Encoding")
	p.proxy.ServeHTTP(w, req)
}

// promAnswer is the part of a query's answer the faults rewrite.
type promAnswer struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

// rewrite applies NaN and two-series to a vector answer.
func (p *promProxy) rewrite(resp *http.Response) error {
	nan, two := p.active(PromNaN), p.active(PromTwoSeries)
	if (!nan && !two) || resp.StatusCode != http.StatusOK {
		return nil
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	out := raw
	var a promAnswer
	if json.Unmarshal(raw, &a) == nil && a.Data.ResultType == "vector" {
		for i, r := range a.Data.Result {
			var s struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			}
			if json.Unmarshal(r, &s) != nil || len(s.Value) != 2 {
				continue
			}
			if nan {
				s.Value[1] = "NaN"
			}
			a.Data.Result[i], _ = json.Marshal(s)
			if two && i == 0 {
				if s.Metric == nil {
					s.Metric = map[string]string{}
				}
				s.Metric["chaos"] = "second"
				second, _ := json.Marshal(s)
				a.Data.Result = append(a.Data.Result, second)
			}
		}
		if b, err := json.Marshal(a); err == nil {
			out = b
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}
