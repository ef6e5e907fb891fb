// Package netguard decides which addresses tminus may connect to for Prometheus queries
// and HTTP checks. A checklist is written by whoever may create one in a namespace; the
// guard keeps it from turning the operator into a proxy towards cloud metadata or
// link-local services. It is enforced at dial time, on the IP actually connected to,
// so a hostname that resolves somewhere unexpected is refused too.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// alwaysDenied are refused unless an allowed CIDR explicitly covers them: the addresses
// a checklist could use to make the operator reach what only the operator's own node or
// pod should (cloud metadata, the node's or the manager's own loopback services).
var alwaysDenied = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata at 169.254.169.254)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata (AWS, IPv6)"},
	{netip.MustParsePrefix("100.100.100.200/32"), "cloud metadata (Alibaba Cloud)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this host)"},
	{netip.MustParsePrefix("::/128"), "unspecified (this host)"},
	// NAT64 embeds an IPv4 address: 64:ff9b::a9fe:a9fe is 169.254.169.254.
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (an IPv4 address behind it may be any of the above)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
}

// Guard holds the allowed hosts and networks. The zero value (New(nil)) allows every
// address but the always-denied ones. A nil *Guard checks nothing: it is for tests that
// run Prometheus and services on loopback, never for the manager.
type Guard struct {
	hosts    []string
	prefixes []netip.Prefix
}

// New parses a list of allowed entries: host names (exact, or "*.example.com"), IPs and
// CIDRs. An empty list allows every host but the always-denied networks.
func New(entries []string) (*Guard, error) {
	g := &Guard{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allowed host %q: %w", e, err)
			}
			g.prefixes = append(g.prefixes, p.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				g.prefixes = append(g.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
				continue
			}
			g.hosts = append(g.hosts, strings.ToLower(e))
		}
	}
	return g, nil
}

func (g *Guard) restricted() bool { return g != nil && (len(g.hosts) > 0 || len(g.prefixes) > 0) }

// hostAllowed says whether a host name passes the name list: with a list, it must be on
// it (or be an IP, which the dial-time check judges).
func (g *Guard) hostAllowed(host string) bool {
	if !g.restricted() {
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range g.hosts {
		if h == host || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:])) {
			return true
		}
	}
	return false
}

// ipAllowed judges the address actually dialed. named says the host name was allowed
// by name, which admits any IP but the always-denied ones.
func (g *Guard) ipAllowed(ip netip.Addr, named bool) error {
	if g == nil {
		return nil
	}
	ip = ip.Unmap()
	for _, p := range g.prefixes {
		if p.Contains(ip) {
			return nil
		}
	}
	for _, d := range alwaysDenied {
		if d.prefix.Contains(ip) {
			return fmt.Errorf("address guard: %s is %s; list it (as a CIDR) in --allowed-hosts to allow it", ip, d.what)
		}
	}
	if g.restricted() && !named {
		return fmt.Errorf("address guard: %s is not in --allowed-hosts", ip)
	}
	return nil
}

// DialContext connects like net.Dialer, refusing what the guard does not allow.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if !g.hostAllowed(host) {
		return nil, fmt.Errorf("address guard: host %q is not in --allowed-hosts", host)
	}
	_, notIP := netip.ParseAddr(host)
	named := g.restricted() && notIP != nil
	d := &net.Dialer{
		Timeout: 30 * time.Second,
		Control: func(_, addr string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return fmt.Errorf("address guard: cannot parse %q: %w", addr, err)
			}
			return g.ipAllowed(ap.Addr(), named)
		},
	}
	return d.DialContext(ctx, network, address)
}
