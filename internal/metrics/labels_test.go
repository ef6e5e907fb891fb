package metrics

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tminus-dev/tminus/internal/breaker"
)

// TestSeriesStayBoundedAfterTenThousandAddressesCameAndWent: every checklist names its
// own Prometheus; 10,000 addresses are queried (some fail, some open their circuit)
// and never again. The series by address never pass the bound, and are gone once idle.
func TestSeriesStayBoundedAfterTenThousandAddressesCameAndWent(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	clock = func() time.Time { return now }
	defer func() { clock = time.Now }()

	for i := range 10000 {
		address := fmt.Sprintf("http://prom-%d.team-%d.svc:9090", i, i%37)
		QueryTook(address, 0.01)
		if i%2 == 0 {
			QueryFailed(address)
		}
		if i%5 == 0 {
			CircuitChanged(address, breaker.Open)
			HTTPCircuitChanged(address+"/healthz", breaker.Open)
		}
		if i%100 == 99 {
			g.Expect(testutil.CollectAndCount(QueryDuration)).To(BeNumerically("<=", MaxEndpointLabels+1), "after %d addresses", i+1)
			g.Expect(testutil.CollectAndCount(QueryErrors)).To(BeNumerically("<=", MaxEndpointLabels+1))
			g.Expect(testutil.CollectAndCount(CircuitState)).To(BeNumerically("<=", 2*MaxEndpointLabels))
		}
	}

	// They went: a while later, one address still in use is all that is left (with
	// the series of the addresses past the bound).
	now = now.Add(EndpointLabelIdle + time.Minute)
	QueryTook("http://prometheus.monitoring:9090", 0.01)
	CircuitChanged("http://prometheus.monitoring:9090", breaker.Open)
	HTTPCircuitChanged("http://checkout.shop/healthz", breaker.Open)
	g.Expect(testutil.CollectAndCount(QueryDuration)).To(Equal(2))
	g.Expect(testutil.CollectAndCount(QueryErrors)).To(Equal(1), "only the other addresses' errors")
	g.Expect(testutil.CollectAndCount(CircuitState)).To(Equal(2))
	CircuitChanged("http://prometheus.monitoring:9090", breaker.Closed)
	HTTPCircuitChanged("http://checkout.shop/healthz", breaker.Closed)
	g.Expect(testutil.CollectAndCount(CircuitState)).To(BeZero(), "a closed circuit has no series")
}
