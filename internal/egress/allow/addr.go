package allow

import (
	"fmt"
	"net/netip"
)

// nonPublicV4 are the IPv4 ranges no job may reach, whatever its list:
// "this network", private (RFC 1918), shared address space (RFC 6598,
// carrier-grade NAT), loopback, link-local (cloud metadata services live
// there), IETF protocol assignments, documentation (TEST-NET-1..3),
// benchmarking, multicast and reserved, the limited broadcast
// 255.255.255.255 included. The firewall of package egress drops the same
// ranges for `network: true`: this list is the one source of both.
var nonPublicV4 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// NonPublicV4 returns the IPv4 ranges that Public refuses, in a fresh
// slice, for the firewall rules.
func NonPublicV4() []netip.Prefix {
	return append([]netip.Prefix(nil), nonPublicV4...)
}

var (
	// globalUnicastV6 is the only IPv6 space that can be public; outside
	// it lie ::/128, ::1, the v4-compatible ::/96, 100::/64 (discard),
	// fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10 (site
	// local), ff00::/8 (multicast) and the rest of the unassigned space.
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
	// nonPublicV6 are the parts of 2000::/3 that are not public either:
	// IETF protocol assignments (Teredo 2001::/32, benchmarking
	// 2001:2::/48, ORCHID among them) and documentation (RFC 3849, RFC 9637).
	nonPublicV6 = []netip.Prefix{
		netip.MustParsePrefix("2001::/23"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("3fff::/20"),
	}
	// nat64 is the well-known NAT64 prefix (RFC 6052): the last 32 bits
	// are the IPv4 address the translator connects to.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// sixToFour (RFC 3056) carries the relay's IPv4 address in bits 16-47.
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Public reports whether ip is an address on the public internet, the only
// kind a job's connections may go to (docs/design.md §12). It is false for
// an invalid address, an address with a zone, every range of NonPublicV4
// and, for IPv6, everything outside 2000::/3 and the protocol-assignment
// and documentation ranges inside it. Forms that carry an IPv4 address are
// judged by that address: v4-mapped (::ffff:a.b.c.d), NAT64
// (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::). The local-use NAT64
// prefix 64:ff9b:1::/48 (RFC 8215) is never public: where its translator
// puts the IPv4 address depends on a prefix length only the operator
// knows, so the address cannot be read reliably.
func Public(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	if ip.Is4In6() {
		return publicV4(ip.Unmap())
	}
	if ip.Is4() {
		return publicV4(ip)
	}
	if v4 := EmbeddedV4(ip); v4.IsValid() {
		return publicV4(v4)
	}
	if !globalUnicastV6.Contains(ip) {
		return false
	}
	return !containedIn(ip, nonPublicV6)
}

// EmbeddedV4 is the IPv4 address a NAT64 (64:ff9b::a.b.c.d, RFC 6052) or
// 6to4 (2002:AABB:CCDD::, RFC 3056) address carries, the one a translator
// or relay would connect to; the zero Addr for any other address.
func EmbeddedV4(ip netip.Addr) netip.Addr {
	b := ip.As16()
	switch {
	case !ip.Is6():
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16]))
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6]))
	}
	return netip.Addr{}
}

func publicV4(ip netip.Addr) bool { return !containedIn(ip, nonPublicV4) }

func containedIn(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Policy is a worker's address policy: Public, plus the prefixes its
// configuration adds. The zero Policy is Public alone.
type Policy struct {
	// Private lists non-public prefixes an admin lets this worker's jobs
	// reach (a named private range such as a company's 10.20.0.0/16).
	// Loopback, link-local (metadata), multicast, unspecified and "this
	// network" addresses stay refused even inside them; Validate rejects
	// a prefix that overlaps them.
	Private []netip.Prefix
	// TestPublic lists prefixes counted as public without exception, so
	// that tests can run their servers on this machine's own addresses.
	// Never set it in production.
	TestPublic []netip.Prefix
}

// neverPrivate are the ranges no Private prefix may open.
var neverPrivate = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/127"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// Validate reports a Private prefix that is invalid, not in its canonical
// (masked) form or overlaps a range that must stay closed.
func (p Policy) Validate() error {
	for i, pr := range p.Private {
		switch {
		case !pr.IsValid() || pr.Addr().Zone() != "" || pr.Addr().Is4In6():
			return fmt.Errorf("egress private range %d (%s): not a valid IPv4 or IPv6 prefix", i, pr)
		case pr.Masked() != pr:
			return fmt.Errorf("egress private range %d (%s): host bits set, did you mean %s?", i, pr, pr.Masked())
		}
		for _, never := range neverPrivate {
			if never.Overlaps(pr) {
				return fmt.Errorf("egress private range %d (%s): overlaps %s, which stays closed (loopback, link-local, multicast or reserved)", i, pr, never)
			}
		}
	}
	return nil
}

// Allowed reports whether a job's connection may go to ip: a public
// address, an address in a TestPublic prefix, or one in a Private prefix
// outside the ranges that always stay closed.
func (p Policy) Allowed(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap()
	switch {
	case Public(ip), containedIn(ip, p.TestPublic):
		return true
	case containedIn(ip, neverPrivate):
		return false
	}
	return containedIn(ip, p.Private)
}
