package egresstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// Names Start puts in its Resolver, and the addresses they resolve to.
const (
	// NameOK resolves to PublicAddr; the HTTPS certificate covers it.
	NameOK = "ok.test"
	// NameWildSub is a subdomain of wild.test; resolves to PublicAddr,
	// covered by the certificate's *.wild.test.
	NameWildSub = "a.wild.test"
	// NameWildApex is wild.test itself, which *.wild.test does not match;
	// resolves to PublicAddr.
	NameWildApex = "wild.test"
	// NameOther resolves to PublicAddr too: the name a domain-fronting job
	// puts in its SNI or Host header. The certificate covers it.
	NameOther = "other.test"
	// NamePrivate resolves to PrivateAddr, a private address on which the
	// servers answer too. The certificate covers it.
	NamePrivate = "private.test"
	// NameHost resolves to HostAddr, an address of the host itself.
	NameHost = "hostaddr.test"
	// NameLoop resolves to 127.0.0.1.
	NameLoop = "loop.test"
	// NameV6 resolves to IPv6Addr only.
	NameV6 = "v6.test"
)

// Resolver is a fixed map from names to addresses that satisfies the
// egress proxy's resolver (LookupNetIP, as net.Resolver has it). It counts
// every lookup by name, so that a test can show a name was never resolved.
// Safe for concurrent use.
type Resolver struct {
	mu      sync.Mutex
	names   map[string][]netip.Addr
	lookups map[string]int
}

// NewResolver returns an empty Resolver.
func NewResolver() *Resolver {
	return &Resolver{names: map[string][]netip.Addr{}, lookups: map[string]int{}}
}

// Set makes name resolve to addrs (replacing what it resolved to);
// without addrs, name no longer resolves.
func (r *Resolver) Set(name string, addrs ...netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name = canonical(name)
	if len(addrs) == 0 {
		delete(r.names, name)
		return
	}
	r.names[name] = append([]netip.Addr(nil), addrs...)
}

// LookupNetIP returns host's addresses of network's family: "ip" for all,
// "ip4" or "ip6" for one. A name it does not hold, or one without an
// address of that family, is a *net.DNSError with IsNotFound set.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host, IsTimeout: true}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	name := canonical(host)
	r.lookups[name]++
	var out []netip.Addr
	for _, a := range r.names[name] {
		if network == "ip" || (network == "ip4") == a.Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// Lookups reports how many times name was looked up.
func (r *Resolver) Lookups(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[canonical(name)]
}

func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
