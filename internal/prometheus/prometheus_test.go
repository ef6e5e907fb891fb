package prometheus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
	"github.com/tminus-dev/tminus/internal/breaker"
	"github.com/tminus-dev/tminus/internal/checklist"
	"github.com/tminus-dev/tminus/internal/prometheus"
	"github.com/tminus-dev/tminus/test/app"
	"github.com/tminus-dev/tminus/test/testbed"
)

const ns = "shop"

var (
	bed  *testbed.Bed
	svc  *app.App
	prom *testbed.Prometheus
)

// TestMain starts an API server (for Secrets), the instrumented app and a Prometheus
// scraping it every second, labelled as the sample checklist expects.
func TestMain(m *testing.M) {
	flag.Parse()
	if fuzzing() {
		// Fuzz workers are restarted at will and killed without cleanup: they get no
		// API server or Prometheus (FuzzResponse brings its own server).
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if bed, err = testbed.Start(ctx, testbed.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer bed.Stop()
		if err := bed.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if svc, err = app.Start(200); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer svc.Close()
		if prom, err = testbed.StartPrometheus(ctx, testbed.PrometheusOptions{ScrapeConfigs: scrapeConfig(svc.Addr)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer prom.Close()
		return m.Run()
	}()
	os.Exit(code)
}

func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

func scrapeConfig(addr string) string {
	return fmt.Sprintf(`- job_name: checkout
  static_configs:
  - targets: [%q]
    labels: {namespace: %s, app: checkout}
`, addr, ns)
}

func provider() *prometheus.Provider { return &prometheus.Provider{Secrets: bed.Client} }

func measure(p *prometheus.Provider, spec *deployv1alpha1.PrometheusSpec, query string) checklist.Measurement {
	return p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: spec, Query: query, At: time.Now()})
}

func spec(address string) *deployv1alpha1.PrometheusSpec {
	return &deployv1alpha1.PrometheusSpec{Address: address, Timeout: "5s"}
}

// sampleQueries are the seed checklist's metric queries, resolved for target checkout in
// namespace shop, with their windows shortened from 5m to 5s to fit a test.
func sampleQueries(t *testing.T) map[string]string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "config", "samples", "deploy_v1alpha1_deploymentchecklist.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c deployv1alpha1.DeploymentChecklist
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c.Namespace = ns
	out := map[string]string{}
	for _, m := range c.Spec.Metrics {
		out[m.Name] = strings.ReplaceAll(checklist.ResolveQuery(&c, m.Query), "[5m]", "[5s]")
	}
	return out
}

// eventually polls a measurement until it satisfies match.
func eventually(t *testing.T, get func() checklist.Measurement, match func(Gomega, checklist.Measurement)) checklist.Measurement {
	t.Helper()
	var last checklist.Measurement
	NewWithT(t).Eventually(func(g Gomega) {
		last = get()
		match(g, last)
	}, 45*time.Second, 250*time.Millisecond).Should(Succeed())
	return last
}

func TestTheSampleQueriesMeasureARealServiceThroughPrometheus(t *testing.T) {
	q := sampleQueries(t)
	p := provider()
	svc.SetTraffic(true)
	svc.Set(0.002, 150*time.Millisecond)

	m := eventually(t, func() checklist.Measurement { return measure(p, spec(prom.URL), q["error-rate"]) },
		func(g Gomega, m checklist.Measurement) {
			g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)
			g.Expect(m.Value).To(BeNumerically("~", 0.002, 0.0015))
		})
	NewWithT(t).Expect(m.Query).To(ContainSubstring(`namespace="shop",app="checkout"`), "the resolved query is recorded")
	eventually(t, func() checklist.Measurement { return measure(p, spec(prom.URL), q["p95-latency"]) },
		func(g Gomega, m checklist.Measurement) {
			g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)
			g.Expect(m.Value).To(BeNumerically(">", 0.1))
			g.Expect(m.Value).To(BeNumerically("<", 0.25))
		})
	// The service never had a database error: the sample counts that as 0, not no data.
	eventually(t, func() checklist.Measurement { return measure(p, spec(prom.URL), q["db-connection-errors"]) },
		func(g Gomega, m checklist.Measurement) { g.Expect(m.Kind).To(Equal(checklist.ResultNoData)) })
}

func TestAHighErrorRateAndASlowP95AreMeasuredAsValues(t *testing.T) {
	q := sampleQueries(t)
	p := provider()
	svc.SetTraffic(true)
	svc.Set(0.1, 3*time.Second)
	defer svc.Set(0, 100*time.Millisecond)
	eventually(t, func() checklist.Measurement { return measure(p, spec(prom.URL), q["error-rate"]) },
		func(g Gomega, m checklist.Measurement) {
			g.Expect(m.Kind).To(Equal(checklist.ResultValue))
			g.Expect(m.Value).To(BeNumerically(">", 0.05), "breaches the sample's 5 % trigger")
		})
	eventually(t, func() checklist.Measurement { return measure(p, spec(prom.URL), q["p95-latency"]) },
		func(g Gomega, m checklist.Measurement) {
			g.Expect(m.Kind).To(Equal(checklist.ResultValue))
			g.Expect(m.Value).To(BeNumerically(">", 2), "fails the sample's p95 < 2s")
		})
}

func TestNoTrafficGivesNaNWhichIsNoData(t *testing.T) {
	q := sampleQueries(t)
	p := provider()
	svc.SetTraffic(false)
	defer svc.SetTraffic(true)
	m := eventually(t, func() checklist.Measurement { return measure(p, spec(prom.URL), q["error-rate"]) },
		func(g Gomega, m checklist.Measurement) { g.Expect(m.Kind).To(Equal(checklist.ResultNoData)) })
	NewWithT(t).Expect(m.Display).To(Equal("NaN"), "0/0: no requests in the window")
}

func TestAnAbsentSeriesIsNoDataAndTwoSeriesAreAnError(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	m := measure(p, spec(prom.URL), `http_requests_total{app="no-such-app"}`)
	g.Expect(m.Kind).To(Equal(checklist.ResultNoData))

	svc.SetTraffic(true)
	svc.Set(0.2, 100*time.Millisecond)
	defer svc.Set(0, 100*time.Millisecond)
	eventually(t, func() checklist.Measurement {
		return measure(p, spec(prom.URL), `sum by (code) (rate(http_requests_total{app="checkout"}[5s]))`)
	}, func(g Gomega, m checklist.Measurement) {
		g.Expect(m.Kind).To(Equal(checklist.ResultError))
		g.Expect(m.Message).To(ContainSubstring("expected 1 series, got 2"))
	})
}

func TestAPrometheusThatStopsIsAnErrorAndComesBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	own, err := testbed.StartPrometheus(ctx, testbed.PrometheusOptions{ScrapeConfigs: scrapeConfig(svc.Addr)})
	g.Expect(err).NotTo(HaveOccurred())
	defer own.Close()
	p := provider()
	eventually(t, func() checklist.Measurement { return measure(p, spec(own.URL), `up{job="checkout"}`) },
		func(g Gomega, m checklist.Measurement) { g.Expect(m.Kind).To(Equal(checklist.ResultValue)) })

	own.Stop()
	// A later evaluation round: the answer shared within the last one is not reused.
	later := time.Now().Add(2 * time.Second)
	m := p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: spec(own.URL), Query: `up{job="checkout"}`, At: later})
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(m.Message).To(ContainSubstring("connection refused"))

	g.Expect(own.Restart(ctx)).To(Succeed())
	eventually(t, func() checklist.Measurement { return measure(p, spec(own.URL), `up{job="checkout"}`) },
		func(g Gomega, m checklist.Measurement) { g.Expect(m.Kind).To(Equal(checklist.ResultValue)) })
}

// slowProxy answers after delay, in front of the real Prometheus, and counts how many
// requests it holds at once.
type slowProxy struct {
	*httptest.Server
	inFlight, maxInFlight, total atomic.Int64
}

func newSlowProxy(t *testing.T, target string, delay time.Duration, check func(*http.Request) bool) *slowProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	sp := &slowProxy{}
	sp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sp.total.Add(1)
		n := sp.inFlight.Add(1)
		defer sp.inFlight.Add(-1)
		for {
			m := sp.maxInFlight.Load()
			if n <= m || sp.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		if check != nil && !check(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(sp.Close)
	return sp
}

func TestAPrometheusTooSlowTimesOutAsAnError(t *testing.T) {
	g := NewWithT(t)
	slow := newSlowProxy(t, prom.URL, 3*time.Second, nil)
	s := spec(slow.URL)
	s.Timeout = "300ms"
	m := measure(provider(), s, `up`)
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(m.Message).To(ContainSubstring("no answer within 300ms"))
}

func TestQueriesInFlightPerAddressAreBounded(t *testing.T) {
	g := NewWithT(t)
	slow := newSlowProxy(t, prom.URL, 300*time.Millisecond, nil)
	p := &prometheus.Provider{Secrets: bed.Client, MaxInFlight: 2}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			m := measure(p, spec(slow.URL), fmt.Sprintf("vector(%d)", i))
			g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)
		})
	}
	wg.Wait()
	g.Expect(slow.total.Load()).To(BeEquivalentTo(6))
	g.Expect(slow.maxInFlight.Load()).To(BeEquivalentTo(2))
}

func TestIdenticalQueriesAtTheSameEvaluationTimeAreSentOnce(t *testing.T) {
	g := NewWithT(t)
	slow := newSlowProxy(t, prom.URL, 200*time.Millisecond, nil)
	p := provider()
	at := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			m := p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: spec(slow.URL), Query: "vector(1)", At: at})
			g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)
		})
	}
	wg.Wait()
	g.Expect(p.Sent()).To(BeEquivalentTo(1))
	g.Expect(slow.total.Load()).To(BeEquivalentTo(1))

	// Another query, or another evaluation second, is its own request.
	measure(p, spec(slow.URL), "vector(2)")
	p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: spec(slow.URL), Query: "vector(1)", At: at.Add(time.Minute)})
	g.Expect(p.Sent()).To(BeEquivalentTo(3))
}

func secret(t *testing.T, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	NewWithT(t).Expect(bed.Client.Create(context.Background(), s)).To(Succeed())
}

func TestBasicAuthAgainstPrometheusWebConfig(t *testing.T) {
	g := NewWithT(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pw"), bcrypt.MinCost)
	g.Expect(err).NotTo(HaveOccurred())
	secured, err := testbed.StartPrometheus(context.Background(), testbed.PrometheusOptions{
		ScrapeConfigs: scrapeConfig(svc.Addr),
		WebConfig:     fmt.Sprintf("basic_auth_users:\n  tminus: %q\n", hash),
		BasicAuth:     [2]string{"tminus", "s3cret-pw"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer secured.Close()
	secret(t, "prom-basic", map[string]string{"username": "tminus", "password": "s3cret-pw", "wrong": "guess"})

	s := spec(secured.URL)
	s.BasicAuth = &deployv1alpha1.BasicAuth{
		Username: deployv1alpha1.SecretKeyRef{Name: "prom-basic", Key: "username"},
		Password: deployv1alpha1.SecretKeyRef{Name: "prom-basic", Key: "password"},
	}
	m := measure(provider(), s, "vector(1)")
	g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)

	s.BasicAuth.Password.Key = "wrong"
	m = measure(provider(), s, "vector(1)")
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(m.Message).To(ContainSubstring("401"))
	g.Expect(m.Message).NotTo(ContainSubstring("guess"), "credentials never appear in messages")
	g.Expect(m.Message).NotTo(ContainSubstring("s3cret-pw"))
}

func TestBearerTokenThroughAnAuthenticatingProxy(t *testing.T) {
	g := NewWithT(t)
	proxy := newSlowProxy(t, prom.URL, 0, func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer tok-123" && r.Header.Get("X-Scope-OrgID") == "shop"
	})
	secret(t, "prom-token", map[string]string{"token": "tok-123", "stale": "tok-old"})
	s := spec(proxy.URL)
	s.BearerTokenSecretRef = &deployv1alpha1.SecretKeyRef{Name: "prom-token", Key: "token"}
	s.Headers = []deployv1alpha1.HTTPHeader{{Name: "X-Scope-OrgID", Value: "shop"}}
	m := measure(provider(), s, "vector(1)")
	g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)

	s.BearerTokenSecretRef.Key = "stale"
	m = measure(provider(), s, "vector(1)")
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(m.Message).To(ContainSubstring("401"))
	g.Expect(m.Message).NotTo(ContainSubstring("tok-old"))
}

func TestAMissingSecretIsAClearError(t *testing.T) {
	g := NewWithT(t)
	s := spec(prom.URL)
	s.BearerTokenSecretRef = &deployv1alpha1.SecretKeyRef{Name: "not-there", Key: "token"}
	m := measure(provider(), s, "vector(1)")
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(m.Message).To(ContainSubstring("spec.prometheus.bearerTokenSecretRef: Secret shop/not-there not found"))

	secret(t, "no-key", map[string]string{"other": "x"})
	s.BearerTokenSecretRef = &deployv1alpha1.SecretKeyRef{Name: "no-key", Key: "token"}
	m = measure(provider(), s, "vector(1)")
	g.Expect(m.Message).To(ContainSubstring(`Secret shop/no-key has no key "token"`))
}

func TestTLSWithACABundleFromASecret(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	caPEM := selfSignedCert(t, dir)
	secured, err := testbed.StartPrometheus(context.Background(), testbed.PrometheusOptions{
		ScrapeConfigs: scrapeConfig(svc.Addr),
		TLS:           true,
		WebConfig: fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n",
			filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")),
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer secured.Close()

	// Without the CA, the self-signed certificate is refused.
	m := measure(provider(), spec(secured.URL), "vector(1)")
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(m.Message).To(ContainSubstring("certificate"))

	secret(t, "prom-ca", map[string]string{"ca.crt": string(caPEM)})
	s := spec(secured.URL)
	s.TLS = &deployv1alpha1.TLSConfig{CASecretRef: &deployv1alpha1.SecretKeyRef{Name: "prom-ca", Key: "ca.crt"}}
	m = measure(provider(), s, "vector(1)")
	g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message)
}

// selfSignedCert writes tls.crt and tls.key for 127.0.0.1 into dir and returns the
// certificate, which is its own CA.
func selfSignedCert(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "prometheus.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM
}

// BenchmarkSharedQueries reports how many queries reach Prometheus when 100 checklists
// evaluate the same query in the same round.
func BenchmarkSharedQueries(b *testing.B) {
	const checklists = 100
	p := provider()
	var rounds int
	start := time.Now().Truncate(time.Second)
	for b.Loop() {
		at := start.Add(time.Duration(rounds) * time.Minute)
		rounds++
		var wg sync.WaitGroup
		for range checklists {
			wg.Go(func() {
				p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: spec(prom.URL), Query: "vector(1)", At: at})
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(checklists), "checklists/round")
	b.ReportMetric(float64(p.Sent())/float64(rounds), "queries-sent/round")
}

// blackhole accepts connections and never answers, and counts them.
func blackhole(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	b, err := testbed.StartBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.URL, &b.Accepted
}

func TestADeadPrometheusOpensItsCircuitAndNoMeasurementWaitsForIt(t *testing.T) {
	g := NewWithT(t)
	addr, accepted := blackhole(t)
	p := &prometheus.Provider{Secrets: bed.Client, Breakers: &breaker.Set{Threshold: 2, Cooldown: time.Hour}}
	s := spec(addr)
	s.Timeout = "200ms"
	for i := range 2 {
		m := measure(p, s, fmt.Sprintf("vector(%d)", i))
		g.Expect(m.Kind).To(Equal(checklist.ResultError))
		g.Expect(m.Message).To(ContainSubstring("no answer within 200ms"))
	}
	// Open: every checklist using it gets an error at once, naming the circuit, and
	// nothing more is sent.
	for i := range 5 {
		m := measure(p, s, fmt.Sprintf("vector(%d)", 10+i))
		g.Expect(m.Kind).To(Equal(checklist.ResultError))
		g.Expect(m.Message).To(ContainSubstring("circuit open for " + addr + " "))
		g.Expect(m.Message).To(ContainSubstring("after 2 consecutive failures (last: no answer within 200ms)"))
	}
	g.Expect(accepted.Load()).To(BeEquivalentTo(2))
	g.Expect(p.Breakers.State(addr)).To(Equal(breaker.Open))

	// Another Prometheus is not affected.
	g.Expect(measure(p, spec(prom.URL), `vector(1)`).Kind).To(Equal(checklist.ResultValue))
}

func TestAHalfOpenCircuitClosesWhenPrometheusAnswersAgain(t *testing.T) {
	g := NewWithT(t)
	slow := newSlowProxy(t, prom.URL, 0, nil)
	var down atomic.Bool
	down.Store(true)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		slow.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)
	p := &prometheus.Provider{Secrets: bed.Client, Breakers: &breaker.Set{Threshold: 1, Cooldown: 300 * time.Millisecond}}
	g.Expect(measure(p, spec(gate.URL), `vector(1)`).Message).To(ContainSubstring("server error: 502"))
	g.Expect(measure(p, spec(gate.URL), `vector(2)`).Message).To(ContainSubstring("circuit open"))
	down.Store(false)
	eventually(t, func() checklist.Measurement { return measure(p, spec(gate.URL), `vector(3)`) },
		func(g Gomega, m checklist.Measurement) { g.Expect(m.Kind).To(Equal(checklist.ResultValue), m.Message) })
	g.Expect(p.Breakers.State(gate.URL)).To(Equal(breaker.Closed))
}

func TestNobodyWaitsForTheProbeOfAnOpenCircuit(t *testing.T) {
	g := NewWithT(t)
	addr, _ := blackhole(t)
	p := &prometheus.Provider{Secrets: bed.Client, Breakers: &breaker.Set{Threshold: 1, Cooldown: 100 * time.Millisecond}}
	s := spec(addr)
	s.Timeout = "500ms"
	at := time.Now()
	ask := func() checklist.Measurement {
		return p.Measure(context.Background(), prometheus.Request{Namespace: ns, Spec: s, Query: "vector(1)", At: at})
	}
	// Open, then its cooldown passes: the next measurement is the probe, and it waits
	// for the dead Prometheus.
	g.Expect(measure(p, s, "vector(0)").Kind).To(Equal(checklist.ResultError))
	time.Sleep(150 * time.Millisecond)
	probe := make(chan checklist.Measurement, 1)
	go func() { probe <- ask() }()
	g.Eventually(func() breaker.State { return p.Breakers.State(addr) }, 5*time.Second, 5*time.Millisecond).
		Should(Equal(breaker.HalfOpen))

	// Every other checklist asking the same question at the same time would share the
	// probe's answer: it is refused at once instead, while the probe is still out.
	m := ask()
	g.Expect(m.Kind).To(Equal(checklist.ResultError))
	g.Expect(m.Message).To(ContainSubstring("circuit open for " + addr))
	g.Expect(probe).NotTo(Receive(), "the probe is still waiting")
	g.Expect((<-probe).Message).To(Equal(m.Message), "the failed probe tells the same story")
}
