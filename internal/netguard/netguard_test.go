package netguard

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func listen(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return l.Addr().String()
}

func dial(g *Guard, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := g.DialContext(ctx, "tcp", addr)
	if err == nil {
		_ = c.Close()
	}
	return err
}

func TestTheGuardRefusesMetadataAndLinkLocalUnlessExplicitlyAllowed(t *testing.T) {
	g := NewWithT(t)
	open, err := New(nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(open, listen(t))).To(Succeed(), "loopback is allowed without a list")
	err = dial(open, "169.254.169.254:80")
	g.Expect(err).To(MatchError(ContainSubstring("link-local or cloud metadata")))
	err = dial(open, "[fd00:ec2::254]:80")
	g.Expect(err).To(MatchError(ContainSubstring("link-local or cloud metadata")))

	// Judged without dialing: tests only ever connect to loopback.
	allowed, err := New([]string{"169.254.169.254/32"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(allowed.ipAllowed(netip.MustParseAddr("169.254.169.254"), false)).To(Succeed())
	g.Expect(allowed.ipAllowed(netip.MustParseAddr("169.254.0.1"), false)).To(HaveOccurred())
}

func TestAnAllowListAdmitsOnlyItsHostsAndNetworks(t *testing.T) {
	g := NewWithT(t)
	addr := listen(t)
	_, port, _ := net.SplitHostPort(addr)

	byCIDR, err := New([]string{"127.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(byCIDR, addr)).To(Succeed())

	byName, err := New([]string{"localhost"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(byName, net.JoinHostPort("localhost", port))).To(Succeed())
	g.Expect(dial(byName, addr)).To(MatchError(ContainSubstring("127.0.0.1 is not in --allowed-hosts")),
		"an IP not covered by an allowed network is refused")

	other, err := New([]string{"prometheus.monitoring.svc", "*.example.com", "10.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(other, net.JoinHostPort("localhost", port))).To(MatchError(ContainSubstring(`host "localhost" is not in --allowed-hosts`)))
	g.Expect(other.hostAllowed("thanos.example.com")).To(BeTrue())
	g.Expect(other.hostAllowed("example.com.evil.io")).To(BeFalse())

	_, err = New([]string{"10.0.0.0/33"})
	g.Expect(err).To(HaveOccurred())
}
