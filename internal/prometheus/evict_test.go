package prometheus

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
)

type answers struct{}

func (answers) Query(context.Context, string, time.Time, ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	return &model.Scalar{Value: 1}, nil, nil, nil
}

// TestAddressesThatCameAndWentLeaveNoStateBehind: 10,000 checklists each measured once
// against a Prometheus of their own (a hundred TLS server names among them), then
// never again. No semaphore or circuit is kept for an address nobody queries, and the
// transports of TLS settings nobody uses are closed once idle.
func TestAddressesThatCameAndWentLeaveNoStateBehind(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := &Provider{
		NewQuerier: func(string, *http.Client) (Querier, error) { return answers{}, nil },
		now:        func() time.Time { return now },
	}
	for i := range 10000 {
		spec := &deployv1alpha1.PrometheusSpec{Address: fmt.Sprintf("https://prom-%d.team-%d.svc:9090", i, i%100),
			TLS: &deployv1alpha1.TLSConfig{ServerName: fmt.Sprintf("prom.team-%d.svc", i%100)}}
		m := p.Measure(context.Background(), Request{Namespace: "shop", Spec: spec, Query: "vector(1)", At: now})
		g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)
	}
	p.mu.Lock()
	g.Expect(p.sems).To(BeEmpty(), "no semaphore outlives its queries")
	g.Expect(len(p.transports)).To(BeNumerically("<=", 100))
	p.mu.Unlock()
	g.Expect(p.breakers().Len()).To(BeZero(), "no circuit for an address that answered")

	now = now.Add(transportIdle)
	spec := &deployv1alpha1.PrometheusSpec{Address: "http://prometheus.monitoring:9090"}
	g.Expect(p.Measure(context.Background(), Request{Namespace: "shop", Spec: spec, Query: "vector(1)", At: now}).Kind).
		To(Equal(checklist.ResultValue))
	p.mu.Lock()
	defer p.mu.Unlock()
	g.Expect(p.transports).To(HaveLen(1), "only the transport in use is left")
}
