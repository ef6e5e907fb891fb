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

func TestTheDefaultGuardRefusesMetadataLinkLocalLoopbackAndNAT64InBothFamilies(t *testing.T) {
	open, err := New(nil)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	denied := []struct{ addr, what string }{
		{"169.254.169.254", "link-local"},
		{"169.254.0.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fd00:ec2::254", "cloud metadata (AWS, IPv6)"},
		{"100.100.100.200", "cloud metadata (Alibaba Cloud)"},
		{"127.0.0.1", "loopback"},
		{"127.1.2.3", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"}, // IPv4-mapped IPv6
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"64:ff9b::a9fe:a9fe", "NAT64"}, // 169.254.169.254 behind NAT64
		{"64:ff9b:1::1", "NAT64"},
	}
	for _, d := range denied {
		t.Run(d.addr, func(t *testing.T) {
			err := open.ipAllowed(netip.MustParseAddr(d.addr), false)
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(d.what)))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring("--allowed-hosts")))
		})
	}
	for _, addr := range []string{"10.96.0.10", "192.168.1.5", "2001:db8::1", "100.100.100.201", "fd00:ec2::253"} {
		NewWithT(t).Expect(open.ipAllowed(netip.MustParseAddr(addr), false)).To(Succeed(), addr)
	}
	// Refused at dial time, on the address actually dialed.
	NewWithT(t).Expect(dial(open, listen(t))).To(MatchError(ContainSubstring("127.0.0.1 is loopback")))
}

func TestADeniedNetworkIsReachableOnlyWhenACIDRNamesIt(t *testing.T) {
	g := NewWithT(t)
	allowed, err := New([]string{"169.254.169.254/32", "127.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(allowed.ipAllowed(netip.MustParseAddr("169.254.169.254"), false)).To(Succeed())
	g.Expect(allowed.ipAllowed(netip.MustParseAddr("169.254.0.1"), false)).To(HaveOccurred())
	g.Expect(dial(allowed, listen(t))).To(Succeed())

	// A host name allowed by name does not open a denied network.
	byName, err := New([]string{"metadata.google.internal"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(byName.ipAllowed(netip.MustParseAddr("169.254.169.254"), true)).To(HaveOccurred())

	// No guard at all (tests only) checks nothing.
	var none *Guard
	g.Expect(dial(none, listen(t))).To(Succeed())
}

func TestAnAllowListAdmitsOnlyItsHostsAndNetworks(t *testing.T) {
	g := NewWithT(t)
	addr := listen(t)
	_, port, _ := net.SplitHostPort(addr)

	byCIDR, err := New([]string{"127.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(byCIDR, addr)).To(Succeed())

	// Loopback is denied by default: a name alone does not open it...
	byName, err := New([]string{"localhost"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(byName, net.JoinHostPort("localhost", port))).To(MatchError(ContainSubstring("is loopback")))
	// ...a name and the network do; an IP outside the list is refused.
	byNameAndNet, err := New([]string{"localhost", "127.0.0.1/32"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(byNameAndNet, net.JoinHostPort("localhost", port))).To(Succeed())
	onlyOther, err := New([]string{"10.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(onlyOther.ipAllowed(netip.MustParseAddr("10.1.2.3"), false)).To(Succeed())
	g.Expect(onlyOther.ipAllowed(netip.MustParseAddr("192.168.1.1"), false)).To(MatchError(ContainSubstring("is not in --allowed-hosts")),
		"an IP not covered by an allowed network is refused")

	other, err := New([]string{"prometheus.monitoring.svc", "*.example.com", "10.0.0.0/8"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dial(other, net.JoinHostPort("localhost", port))).To(MatchError(ContainSubstring(`host "localhost" is not in --allowed-hosts`)))
	g.Expect(other.hostAllowed("thanos.example.com")).To(BeTrue())
	g.Expect(other.hostAllowed("example.com.evil.io")).To(BeFalse())

	_, err = New([]string{"10.0.0.0/33"})
	g.Expect(err).To(HaveOccurred())
}
