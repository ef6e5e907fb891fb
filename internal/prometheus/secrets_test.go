package prometheus_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/prometheus"
)

// secretGets is a direct client to the test API server that counts the Secret GETs
// it sends.
func secretGets(t *testing.T) (client.Reader, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	cfg := rest.CopyConfig(bed.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/secrets/") {
				n.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	c, err := client.New(cfg, client.Options{Scheme: bed.Client.Scheme()})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return c, &n
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestChecklistsSharingOneTokenSecretReadItOncePerInterval: 200 checklists of a
// namespace measure through one Prometheus with one bearer token Secret, each its own
// query, all at the same tick, round after round within their interval: the Secret is
// read once, not once per measurement. Rotated, the new token is used from a later
// interval on.
func TestChecklistsSharingOneTokenSecretReadItOncePerInterval(t *testing.T) {
	g := NewWithT(t)
	token := atomic.Value{}
	token.Store("tok-shared")
	proxy := newSlowProxy(t, prom.URL, 0, func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer "+token.Load().(string)
	})
	secret(t, "prom-shared-token", map[string]string{"token": "tok-shared"})
	reader, gets := secretGets(t)
	p := &prometheus.Provider{Secrets: reader}
	s := spec(proxy.URL)
	s.BearerTokenSecretRef = &deployv1alpha1.SecretKeyRef{Name: "prom-shared-token", Key: "token"}

	round := func(at time.Time, interval time.Duration) {
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				m := p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: s, Query: fmt.Sprintf("vector(%d)", i),
					At: at, Interval: interval})
				g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)
			})
		}
		wg.Wait()
	}
	at := time.Now()
	round(at, time.Hour)
	round(at.Add(time.Second), time.Hour)
	t.Logf("Secret GETs for 2 rounds of 200 measurements: %d", gets.Load())
	g.Expect(gets.Load()).To(BeEquivalentTo(1), "one Secret, one read per interval")

	// Rotated: checklists measuring every second use the new token within a few.
	NewWithT(t).Eventually(func() error {
		var cur corev1.Secret
		if err := bed.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "prom-shared-token"}, &cur); err != nil {
			return err
		}
		cur.StringData = map[string]string{"token": "tok-rotated"}
		return bed.Client.Update(context.Background(), &cur)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	token.Store("tok-rotated")
	g.Eventually(func() checklist.Measurement {
		return p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: s, Query: "vector(1)", At: time.Now(), Interval: time.Second})
	}, 45*time.Second, 250*time.Millisecond).Should(HaveField("Kind", checklist.ResultValue))
}
