package secretref

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deployv1alpha1 "github.com/tminus-dev/tminus/api/v1alpha1"
)

// secrets is a client.Reader of Secrets the test sets, counting Gets; release, when set,
// holds every Get until it is closed.
type secrets struct {
	mu      sync.Mutex
	data    map[string]map[string][]byte
	err     error
	gets    atomic.Int32
	release chan struct{}
}

func (s *secrets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s.gets.Add(1)
	if s.release != nil {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	d, ok := s.data[key.String()]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
	}
	obj.(*corev1.Secret).Data = d
	return nil
}

func (s *secrets) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("tminus never lists Secrets")
}

// set makes Secret name in the namespace shop.
func (s *secrets) set(name, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		s.data = map[string]map[string][]byte{}
	}
	s.data["shop/"+name] = map[string][]byte{key: []byte(value)}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var token = &deployv1alpha1.SecretKeyRef{Name: "prom", Key: "token"}

const field = "spec.prometheus.bearerTokenSecretRef"

func TestChecklistsSharingASecretCostOneGetPerInterval(t *testing.T) {
	g := NewWithT(t)
	api := &secrets{}
	api.set("prom", "token", " s3cret\n")
	clk := &clock{t: time.Unix(1000, 0)}
	c := &Cache{Reader: api, Now: clk.now}

	for range 5 {
		v, err := c.Value(context.Background(), "shop", token, field, 30*time.Second)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(v).To(Equal("s3cret"), "trimmed of surrounding space")
	}
	g.Expect(api.gets.Load()).To(BeEquivalentTo(1))

	// The Secret is rotated: the cache sees it once its answer is an interval old.
	api.set("prom", "token", "rotated")
	clk.t = clk.t.Add(29 * time.Second)
	v, _ := c.Value(context.Background(), "shop", token, field, 30*time.Second)
	g.Expect(v).To(Equal("s3cret"))
	clk.t = clk.t.Add(time.Second)
	v, _ = c.Value(context.Background(), "shop", token, field, 30*time.Second)
	g.Expect(v).To(Equal("rotated"))
	g.Expect(api.gets.Load()).To(BeEquivalentTo(2))

	// A reader with a shorter interval reads again sooner; another namespace is another Secret.
	clk.t = clk.t.Add(5 * time.Second)
	_, _ = c.Value(context.Background(), "shop", token, field, 5*time.Second)
	_, err := c.Value(context.Background(), "other", token, field, 30*time.Second)
	g.Expect(err).To(MatchError("spec.prometheus.bearerTokenSecretRef: Secret other/prom not found"))
	g.Expect(api.gets.Load()).To(BeEquivalentTo(4))
}

func TestReadersAskingAtOnceShareOneGet(t *testing.T) {
	g := NewWithT(t)
	api := &secrets{release: make(chan struct{})}
	api.set("prom", "token", "s3cret")
	c := &Cache{Reader: api}

	var wg sync.WaitGroup
	values := make([]string, 8)
	for i := range values {
		wg.Go(func() {
			values[i], _ = c.Value(context.Background(), "shop", token, field, time.Minute)
		})
	}
	g.Eventually(api.gets.Load).Should(BeEquivalentTo(1))
	close(api.release)
	wg.Wait()
	g.Expect(values).To(HaveEach("s3cret"))
	g.Expect(api.gets.Load()).To(BeEquivalentTo(1))
}

func TestAnAnswerIsKeptForAnIntervalAndAFailedRequestIsNot(t *testing.T) {
	g := NewWithT(t)
	api := &secrets{}
	clk := &clock{t: time.Unix(1000, 0)}
	c := &Cache{Reader: api, Now: clk.now}
	get := func() error {
		_, err := c.Value(context.Background(), "shop", token, field, 30*time.Second)
		return err
	}

	// Not found is the API server's answer: kept for the interval, like the Secret would be.
	g.Expect(get()).To(MatchError("spec.prometheus.bearerTokenSecretRef: Secret shop/prom not found"))
	api.set("prom", "token", "s3cret")
	g.Expect(get()).To(HaveOccurred())
	g.Expect(api.gets.Load()).To(BeEquivalentTo(1))
	clk.t = clk.t.Add(30 * time.Second)
	g.Expect(get()).To(Succeed(), "the Secret created meanwhile is read an interval later")

	// A request that failed (the API server unreachable) is asked again at once.
	clk.t = clk.t.Add(time.Minute)
	api.err = errors.New("connection refused")
	g.Expect(get()).To(MatchError(ContainSubstring("reading Secret shop/prom: connection refused")))
	api.err = nil
	g.Expect(get()).To(Succeed())
	g.Expect(api.gets.Load()).To(BeEquivalentTo(4))

	// Forbidden names the Secret, never a value.
	clk.t = clk.t.Add(time.Minute)
	api.err = apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "prom", errors.New("no"))
	g.Expect(get()).To(MatchError("spec.prometheus.bearerTokenSecretRef: reading Secret shop/prom is forbidden"))
}

func TestAKeyTheSecretLacksIsNamed(t *testing.T) {
	g := NewWithT(t)
	api := &secrets{}
	api.set("prom", "password", "x")
	c := &Cache{Reader: api}
	_, err := c.Value(context.Background(), "shop", token, field, time.Minute)
	g.Expect(err).To(MatchError(`spec.prometheus.bearerTokenSecretRef: Secret shop/prom has no key "token"`))
}

func TestSecretsNotAskedForAreForgottenAfterTheLongestInterval(t *testing.T) {
	g := NewWithT(t)
	api := &secrets{}
	api.set("prom", "token", "s3cret")
	api.set("other", "token", "x")
	clk := &clock{t: time.Unix(1000, 0)}
	c := &Cache{Reader: api, Now: clk.now}
	_, _ = c.Value(context.Background(), "shop", token, field, 30*time.Second)
	g.Expect(c.entries).To(HaveLen(1))

	clk.t = clk.t.Add(31 * time.Second)
	_, _ = c.Value(context.Background(), "shop", &deployv1alpha1.SecretKeyRef{Name: "other", Key: "token"}, field, 30*time.Second)
	g.Expect(c.entries).To(HaveLen(1), "the first Secret, not asked for an interval, is forgotten")
	g.Expect(c.entries).To(HaveKey(HaveField("Name", "other")))
}

func TestWithoutAReaderEveryValueSaysSo(t *testing.T) {
	g := NewWithT(t)
	var c *Cache
	_, err := c.Value(context.Background(), "shop", token, field, time.Minute)
	g.Expect(err).To(MatchError(field + ": no Secret reader configured"))
	_, err = Value(context.Background(), nil, "shop", token, field)
	g.Expect(err).To(MatchError(field + ": no Secret reader configured"))
}
