package prometheus

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

// FuzzResponse feeds arbitrary bodies and status codes, as a Prometheus server would send
// them, through the real client and Classify: every answer ends in exactly one of value,
// no data or error; a value is finite; a message is bounded; nothing panics.
func FuzzResponse(f *testing.F) {
	f.Add(200, []byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.01"]}]}}`))
	f.Add(200, []byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	f.Add(200, []byte(`{"status":"success","data":{"resultType":"scalar","result":[1700000000,"NaN"]}}`))
	f.Add(200, []byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}`))
	f.Add(200, []byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	f.Add(200, []byte(`{"status":"success","data":{"resultType":"string","result":[1,"x"]}}`))
	f.Add(400, []byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
	f.Add(503, []byte(`<html>overloaded</html>`))
	f.Add(200, []byte(`{"status":"succ`))
	f.Add(500, []byte{})

	var status atomic.Int64
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	p := &Provider{}
	spec := &deployv1alpha1.PrometheusSpec{Address: srv.URL, Timeout: "2s"}
	var round atomic.Int64

	f.Fuzz(func(t *testing.T, code int, b []byte) {
		if code < 200 || code > 599 {
			code = 200 + (abs(code) % 400)
		}
		status.Store(int64(code))
		body.Store(b)
		// A new evaluation second each time, so no answer is shared between inputs.
		at := time.Unix(1_700_000_000+round.Add(1), 0)
		m := p.Measure(context.Background(), Request{Spec: spec, Query: "q", At: at})
		switch m.Kind {
		case checklist.ResultValue:
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				t.Fatalf("a non-finite value passed as a value: %v", m.Value)
			}
		case checklist.ResultNoData, checklist.ResultError:
		default:
			t.Fatalf("unknown kind %q", m.Kind)
		}
		if len(m.Message) > maxMessage {
			t.Fatalf("message of %d bytes", len(m.Message))
		}
		if code >= 300 && m.Kind == checklist.ResultValue {
			t.Fatalf("HTTP %d measured as a value", code)
		}
	})
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}
