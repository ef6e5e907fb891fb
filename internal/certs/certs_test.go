package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

var t0 = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)

func certs(g Gomega, data map[string][]byte, key string) []*x509.Certificate {
	var out []*x509.Certificate
	rest := data[key]
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		g.Expect(err).NotTo(HaveOccurred())
		out = append(out, c)
	}
}

// verify checks that the serving certificate is trusted by the CA bundle for name at now.
func verify(data map[string][]byte, name string, now time.Time) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(data[CAKey])
	pair, err := tls.X509KeyPair(data[CertKey], data[KeyKey])
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func TestCertificatesAreMadeFromNothingAndRenewedWithAThirdOfTheirLifeLeft(t *testing.T) {
	g := NewWithT(t)
	now := t0
	m := &Manager{DNSNames: []string{"tminus-webhook-service.tminus-system.svc"}, Validity: 30 * time.Hour,
		Now: func() time.Time { return now }}

	data, err := m.renew(nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(verify(data, "tminus-webhook-service.tminus-system.svc", now)).To(Succeed())
	g.Expect(verify(data, "elsewhere.example", now)).NotTo(Succeed())
	leaf := certs(g, data, CertKey)[0]
	g.Expect(leaf.NotAfter).To(Equal(t0.Add(30 * time.Hour).Truncate(time.Second)))

	// With more than a third left, nothing changes.
	now = t0.Add(19 * time.Hour)
	again, err := m.renew(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeNil())

	// With a third left, the serving certificate is renewed by the same CA.
	now = t0.Add(20 * time.Hour)
	renewed, err := m.renew(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(certs(g, renewed, CertKey)[0].SerialNumber).NotTo(Equal(leaf.SerialNumber))
	g.Expect(renewed[CAKey]).To(Equal(data[CAKey]))
	g.Expect(verify(renewed, "tminus-webhook-service.tminus-system.svc", now)).To(Succeed())

	// New DNS names: a new serving certificate at once.
	m.DNSNames = append(m.DNSNames, "localhost")
	named, err := m.renew(renewed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(verify(named, "localhost", now)).To(Succeed())
}

func TestARenewedCAKeepsTheOldOneInTheBundleSoEveryReplicaStaysTrusted(t *testing.T) {
	g := NewWithT(t)
	now := t0
	m := &Manager{DNSNames: []string{"svc"}, Validity: time.Hour, Now: func() time.Time { return now }}
	data, err := m.renew(nil)
	g.Expect(err).NotTo(HaveOccurred())
	oldCA := certs(g, data, CAKey)[0]

	// The CA lives 10h; with a third left it is renewed.
	now = t0.Add(7 * time.Hour)
	rotated, err := m.renew(data)
	g.Expect(err).NotTo(HaveOccurred())
	bundle := certs(g, rotated, CAKey)
	g.Expect(bundle).To(HaveLen(2))
	g.Expect(bundle[0].SerialNumber).NotTo(Equal(oldCA.SerialNumber))
	g.Expect(bundle[1].SerialNumber).To(Equal(oldCA.SerialNumber))
	g.Expect(verify(rotated, "svc", now)).To(Succeed())
	// A replica that still serves the certificate the old CA signed is trusted too.
	stale := map[string][]byte{CAKey: rotated[CAKey], CertKey: data[CertKey], KeyKey: data[KeyKey]}
	g.Expect(verify(stale, "svc", t0.Add(30*time.Minute))).To(Succeed())
}

func TestAnUnreadableSecretIsRemadeNotTrusted(t *testing.T) {
	g := NewWithT(t)
	m := &Manager{DNSNames: []string{"svc"}, Now: func() time.Time { return t0 }}
	data, err := m.renew(map[string][]byte{CAKey: []byte("garbage"), CertKey: []byte("x"), KeyKey: []byte("y")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(verify(data, "svc", t0)).To(Succeed())
}

func TestANewCAIsPublishedBeforeACertificateItSignedIsServed(t *testing.T) {
	g := NewWithT(t)
	now := t0
	m := &Manager{DNSNames: []string{"svc"}, Validity: time.Hour, Now: func() time.Time { return now }}
	data, err := m.renew(nil)
	g.Expect(err).NotTo(HaveOccurred())
	now = t0.Add(6*time.Hour + 30*time.Minute) // the serving certificate is renewed, same CA
	data, err = m.renew(data)
	g.Expect(err).NotTo(HaveOccurred())
	served := certs(g, data, CertKey)[0]

	now = t0.Add(6*time.Hour + 45*time.Minute) // the CA is due, the serving certificate is not
	rotated, err := m.renew(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(certs(g, rotated, CAKey)).To(HaveLen(2))
	g.Expect(certs(g, rotated, CertKey)[0].SerialNumber).To(Equal(served.SerialNumber), "still the one the old CA signed")
	g.Expect(verify(rotated, "svc", now)).To(Succeed())

	now = t0.Add(7*time.Hour + 10*time.Minute) // its renewal comes from the new CA
	renewed, err := m.renew(rotated)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(certs(g, renewed, CertKey)[0].CheckSignatureFrom(certs(g, rotated, CAKey)[0])).To(Succeed())
	g.Expect(verify(renewed, "svc", now)).To(Succeed())
}
