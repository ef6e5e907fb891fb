// Package certs gives the manager's webhook server a certificate without cert-manager:
// it keeps a CA and a serving certificate in a Secret of the manager's namespace,
// creating them when absent and renewing each when a third of its life is left, serves
// the current pair from memory (so a renewal takes effect on every replica at its next
// check, without a volume mount or a restart), and writes the CA bundle into tminus's
// webhook configurations. Replicas share the Secret: whoever writes first wins and the
// others take what it wrote.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Keys of the Secret.
const (
	CAKey   = "ca.crt" // the CA bundle: the current CA, then the one before while it is valid
	CAKeyPK = "ca.key"
	CertKey = corev1.TLSCertKey
	KeyKey  = corev1.TLSPrivateKeyKey
)

// Defaults.
const (
	DefaultValidity   = 365 * 24 * time.Hour
	DefaultCheckEvery = time.Minute
	// caFactor: the CA lives this many times as long as the serving certificate.
	caFactor = 10
)

// Manager keeps the webhook server's certificate. It is a manager.Runnable that runs on
// every replica (no leader election: every replica serves webhooks).
type Manager struct {
	// Client writes the Secret and the webhook configurations.
	Client client.Client
	// Reader reads them from the API server (get only: tminus never lists or watches
	// Secrets).
	Reader client.Reader
	// Secret holds the CA and the serving certificate.
	Secret types.NamespacedName
	// DNSNames the serving certificate is valid for: the webhook Service's names.
	DNSNames []string
	// Webhooks are the MutatingWebhookConfigurations whose CA bundle it keeps.
	Webhooks []string
	// Validity of the serving certificate (DefaultValidity); the CA lives ten times
	// longer. Each is renewed when a third of its life is left.
	Validity time.Duration
	// CheckEvery is how often the Secret and the configurations are checked.
	CheckEvery time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log logr.Logger

	cert      atomic.Pointer[tls.Certificate]
	installed atomic.Bool
}

// NeedLeaderElection: every replica serves webhooks, so every replica keeps its
// certificate current.
func (m *Manager) NeedLeaderElection() bool { return false }

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("the webhook serving certificate is not ready yet")
}

// Installed says whether, at the last check, every webhook configuration existed and
// carried the CA bundle: the API server can call the webhooks.
func (m *Manager) Installed() bool { return m.installed.Load() }

// Start checks at once, then every CheckEvery, until ctx ends. A failed check is
// logged and tried again at the next one.
func (m *Manager) Start(ctx context.Context) error {
	return repeat(ctx, m.CheckEvery, func() {
		if err := m.Check(ctx); err != nil && ctx.Err() == nil {
			m.Log.Error(err, "checking the webhook certificate")
		}
	})
}

// repeat runs f at once and then every period (DefaultCheckEvery when not positive)
// until ctx ends.
func repeat(ctx context.Context, period time.Duration, f func()) error {
	if period <= 0 {
		period = DefaultCheckEvery
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check makes the Secret hold a valid CA and serving certificate, serves the latter and
// puts the CA bundle into the webhook configurations.
func (m *Manager) Check(ctx context.Context) error {
	sec, err := m.ensureSecret(ctx)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(sec.Data[CertKey], sec.Data[KeyKey])
	if err != nil {
		return fmt.Errorf("loading the serving certificate from Secret %s: %w", m.Secret, err)
	}
	if old := m.cert.Load(); old == nil || !bytes.Equal(old.Certificate[0], pair.Certificate[0]) {
		m.Log.Info("serving a new webhook certificate", "secret", m.Secret, "notAfter", leafNotAfter(&pair))
	}
	m.cert.Store(&pair)
	installed, err := m.inject(ctx, sec.Data[CAKey])
	m.installed.Store(installed && err == nil)
	return err
}

func leafNotAfter(c *tls.Certificate) time.Time {
	if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) validity() time.Duration {
	if m.Validity > 0 {
		return m.Validity
	}
	return DefaultValidity
}

// ensureSecret reads the Secret, creates or renews what it holds, and returns what is
// stored now (another replica's write when it won the race).
func (m *Manager) ensureSecret(ctx context.Context) (*corev1.Secret, error) {
	for range 3 {
		var sec corev1.Secret
		err := m.Reader.Get(ctx, m.Secret, &sec)
		switch {
		case apierrors.IsNotFound(err):
			data, err := m.renew(nil)
			if err != nil {
				return nil, err
			}
			sec = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: m.Secret.Name, Namespace: m.Secret.Namespace,
					Labels: map[string]string{"app.kubernetes.io/name": "tminus", "app.kubernetes.io/component": "webhook-certificate"}},
				Type: corev1.SecretTypeTLS,
				Data: data,
			}
			if err := m.Client.Create(ctx, &sec); err != nil {
				if apierrors.IsAlreadyExists(err) {
					continue
				}
				return nil, fmt.Errorf("creating Secret %s: %w", m.Secret, err)
			}
			m.Log.Info("created the webhook certificate", "secret", m.Secret)
			return &sec, nil
		case err != nil:
			return nil, fmt.Errorf("reading Secret %s: %w", m.Secret, err)
		}
		data, err := m.renew(sec.Data)
		if err != nil {
			return nil, err
		}
		if data == nil {
			return &sec, nil
		}
		sec.Data = data
		if err := m.Client.Update(ctx, &sec); err != nil {
			if apierrors.IsConflict(err) {
				continue
			}
			return nil, fmt.Errorf("updating Secret %s: %w", m.Secret, err)
		}
		m.Log.Info("renewed the webhook certificate", "secret", m.Secret)
		return &sec, nil
	}
	return nil, fmt.Errorf("secret %s kept changing under the renewal", m.Secret)
}

// renew returns the Secret's new data, or nil when what it holds is good for now.
func (m *Manager) renew(data map[string][]byte) (map[string][]byte, error) {
	now := m.now()
	caValidity := caFactor * m.validity()
	ca, caKey := parseCA(data)
	prevCA := ca
	bundle := data[CAKey]
	newCA := ca == nil || due(ca, caValidity, now)
	if newCA {
		prev := ca
		var err error
		if ca, caKey, err = m.newCA(now, caValidity); err != nil {
			return nil, err
		}
		bundle = pemCert(ca.Raw)
		// The CA before stays in the bundle while it is valid, so a certificate it
		// signed, still served by a replica that has not checked yet, is trusted.
		if prev != nil && prev.NotAfter.After(now) {
			bundle = append(bundle, pemCert(prev.Raw)...)
		}
	}
	leaf := parseLeaf(data)
	if leaf != nil && !due(leaf, m.validity(), now) && slices.Equal(leaf.DNSNames, m.DNSNames) {
		switch {
		case !newCA && leaf.CheckSignatureFrom(ca) == nil:
			return nil, nil
		case newCA && prevCA != nil && leaf.CheckSignatureFrom(prevCA) == nil:
			// A new CA is published first, beside the old one, while the certificate
			// the old one signed is still served; the next check (a CheckEvery later)
			// issues one from the new CA, by when the API server trusts it.
			return secretData(bundle, caKey, data[CertKey], data[KeyKey])
		}
	}
	certPEM, keyPEM, err := m.newLeaf(ca, caKey, now)
	if err != nil {
		return nil, err
	}
	return secretData(bundle, caKey, certPEM, keyPEM)
}

func secretData(bundle []byte, caKey *ecdsa.PrivateKey, certPEM, keyPEM []byte) (map[string][]byte, error) {
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		CAKey:   bundle,
		CAKeyPK: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKeyDER}),
		CertKey: certPEM,
		KeyKey:  keyPEM,
	}, nil
}

// due says whether a certificate has a third of its life or less left.
func due(c *x509.Certificate, validity time.Duration, now time.Time) bool {
	return !now.Before(c.NotAfter.Add(-validity / 3))
}

// parseCA reads the current CA (the bundle's first certificate) and its key; nil when
// they are missing, unreadable or do not match.
func parseCA(data map[string][]byte) (*x509.Certificate, *ecdsa.PrivateKey) {
	cb, _ := pem.Decode(data[CAKey])
	kb, _ := pem.Decode(data[CAKeyPK])
	if cb == nil || kb == nil {
		return nil, nil
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil || !key.PublicKey.Equal(ca.PublicKey) {
		return nil, nil
	}
	return ca, key
}

func parseLeaf(data map[string][]byte) *x509.Certificate {
	pair, err := tls.X509KeyPair(data[CertKey], data[KeyKey])
	if err != nil {
		return nil
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

func serial() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) }

func (m *Manager) newCA(now time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "tminus webhook CA", Organization: []string{"tminus"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func (m *Manager) newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	cn := "tminus-webhook"
	if len(m.DNSNames) > 0 {
		cn = m.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     m.DNSNames,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(m.validity()),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// inject writes the CA bundle into every webhook of the configurations, and reports
// whether all of them exist.
func (m *Manager) inject(ctx context.Context, bundle []byte) (bool, error) {
	all := true
	for _, name := range m.Webhooks {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		if err := m.Reader.Get(ctx, types.NamespacedName{Name: name}, &cfg); err != nil {
			if apierrors.IsNotFound(err) {
				all = false
				continue
			}
			return false, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
		}
		before := cfg.DeepCopy()
		for i := range cfg.Webhooks {
			cfg.Webhooks[i].ClientConfig.CABundle = bundle
		}
		patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
		if raw, err := patch.Data(&cfg); err == nil && bytes.Contains(raw, []byte("caBundle")) {
			if err := m.Client.Patch(ctx, &cfg, patch); err != nil {
				return false, fmt.Errorf("writing the CA bundle into MutatingWebhookConfiguration %s: %w", name, err)
			}
			m.Log.Info("wrote the CA bundle", "webhookConfiguration", name)
		}
	}
	return all, nil
}

// Probe reports whether tminus's webhook configurations are installed with a CA bundle,
// for a manager whose certificate comes from elsewhere (cert-manager). It checks at
// once and then every CheckEvery.
type Probe struct {
	Reader     client.Reader
	Webhooks   []string
	CheckEvery time.Duration
	Log        logr.Logger

	installed atomic.Bool
}

// NeedLeaderElection: every replica reports on its own.
func (p *Probe) NeedLeaderElection() bool { return false }

// Installed says whether every configuration existed with a CA bundle at the last check.
func (p *Probe) Installed() bool { return p.installed.Load() }

// Start checks until ctx ends.
func (p *Probe) Start(ctx context.Context) error {
	return repeat(ctx, p.CheckEvery, func() {
		ok, err := installed(ctx, p.Reader, p.Webhooks)
		if err != nil && ctx.Err() == nil {
			p.Log.Error(err, "checking the webhook configurations")
		}
		p.installed.Store(ok)
	})
}

func installed(ctx context.Context, r client.Reader, names []string) (bool, error) {
	for _, name := range names {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		if err := r.Get(ctx, types.NamespacedName{Name: name}, &cfg); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, w := range cfg.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 && w.ClientConfig.URL == nil {
				return false, nil
			}
		}
	}
	return true, nil
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;patch,resourceNames=tminus-admission
