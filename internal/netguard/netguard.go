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

// alwaysDenied are refused unless an allowed CIDR explicitly covers them: IPv4
// link-local (cloud metadata at 169.254.169.254 among them) and AWS's IPv6 metadata.
var alwaysDenied = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// Guard holds the allowed hosts and networks. The zero value allows everything but the
// always-denied networks.
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
	ip = ip.Unmap()
	if g != nil {
		for _, p := range g.prefixes {
			if p.Contains(ip) {
				return nil
			}
		}
	}
	for _, p := range alwaysDenied {
		if p.Contains(ip) {
			return fmt.Errorf("address guard: %s is link-local or cloud metadata; list it in --allowed-hosts to allow it", ip)
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
