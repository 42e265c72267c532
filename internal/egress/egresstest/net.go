package egresstest

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Net is one test's outside world: a network namespace joined to the host
// by a veth pair, and the servers listening inside it.
type Net struct {
	// Namespace is the namespace's name (`ip netns`); HostLink the host's
	// end of the veth pair.
	Namespace, HostLink string
	// PublicAddr is the namespace's address on the link,
	// 198.18.K.2 (a benchmarking range, not public). Every server answers
	// on it.
	PublicAddr netip.Addr
	// PublicPrefix is PublicAddr alone (a /32), to put in
	// allow.Policy.TestPublic: the one address a proxy under test may
	// count as public. HostAddr, PrivateAddr and IPv6Addr stay outside it.
	PublicPrefix netip.Prefix
	// PrivateAddr, 10.213.K.2, is a second address of the namespace, a
	// private one routed from the host through the link. Every server
	// answers on it.
	PrivateAddr netip.Addr
	// HostAddr, 198.18.K.1, is the host's end of the link: an address of
	// the host itself.
	HostAddr netip.Addr
	// IPv6Addr, fd42:213:K::2, is the namespace's IPv6 address on the
	// link. Every server answers on it.
	IPv6Addr netip.Addr
	// CAPEM is the certificate, in PEM, of the CA that signed the HTTPS
	// server's certificate (ok.test, *.wild.test, other.test,
	// private.test).
	CAPEM []byte
	// Resolver maps the Name constants to the addresses above; tests may
	// Set more.
	Resolver *Resolver

	hits hits
	srv  servers
}

// setupBudget bounds the ip commands of one Start or cleanup.
const setupBudget = 30 * time.Second

// seq makes the first index each Start of this process tries different.
var seq atomic.Uint32

// Start makes a namespace and its servers, and removes them when t ends.
// It fails t when it cannot (it needs root and iproute2's ip).
func Start(t testing.TB) *Net {
	t.Helper()
	n, err := start(t)
	if err != nil {
		t.Fatalf("egresstest: %v", err)
	}
	return n
}

func start(t testing.TB) (*Net, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupBudget)
	defer cancel()
	k, err := claim(ctx)
	if err != nil {
		return nil, err
	}
	n := &Net{
		Namespace:   fmt.Sprintf("brig-etest-%d", k),
		HostLink:    fmt.Sprintf("brig-et%d", k),
		PublicAddr:  netip.AddrFrom4([4]byte{198, 18, byte(k), 2}),
		PrivateAddr: netip.AddrFrom4([4]byte{10, 213, byte(k), 2}),
		HostAddr:    netip.AddrFrom4([4]byte{198, 18, byte(k), 1}),
		IPv6Addr:    netip.MustParseAddr(fmt.Sprintf("fd42:213:%x::2", k)),
	}
	n.PublicPrefix = netip.PrefixFrom(n.PublicAddr, 32)
	t.Cleanup(n.remove)
	if err := n.link(ctx, k); err != nil {
		return nil, err
	}
	caPEM, cert, err := newCA()
	if err != nil {
		return nil, err
	}
	n.CAPEM = caPEM
	if err := inNamespace(n.Namespace, n.srv.listen); err != nil {
		return nil, err
	}
	n.srv.serve(&n.hits, cert)
	n.Resolver = n.names()
	return n, nil
}

// claim creates a namespace brig-etest-K for a K in 0..255 that no other
// test on this machine holds, and returns K: the namespace's name is the
// lock, so parallel tests and packages never share addresses.
func claim(ctx context.Context) (int, error) {
	if os.Geteuid() != 0 {
		return 0, fmt.Errorf("network namespaces need root (euid %d)", os.Geteuid())
	}
	first := (os.Getpid()*7 + int(seq.Add(1))*37) % 256
	for i := range 256 {
		k := (first + i) % 256
		out, err := ip(ctx, "netns", "add", fmt.Sprintf("brig-etest-%d", k))
		switch {
		case err == nil:
			return k, nil
		case !strings.Contains(out, "exists"):
			return 0, err
		}
	}
	return 0, fmt.Errorf("every namespace brig-etest-0..255 is taken (leftovers? ip netns list)")
}

// link joins the namespace to the host with a veth pair and gives both
// ends their addresses. The namespace gets no default route: it reaches
// the host's end of the link and nothing else.
func (n *Net) link(ctx context.Context, k int) error {
	ns := n.Namespace
	steps := [][]string{
		{"link", "add", n.HostLink, "type", "veth", "peer", "name", "veth0", "netns", ns},
		{"addr", "add", n.HostAddr.String() + "/30", "dev", n.HostLink},
		{"-6", "addr", "add", fmt.Sprintf("fd42:213:%x::1/64", k), "dev", n.HostLink, "nodad"},
		{"link", "set", n.HostLink, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", n.PublicAddr.String() + "/30", "dev", "veth0"},
		{"-n", ns, "addr", "add", n.PrivateAddr.String() + "/32", "dev", "veth0"},
		{"-n", ns, "-6", "addr", "add", n.IPv6Addr.String() + "/64", "dev", "veth0", "nodad"},
		{"-n", ns, "link", "set", "veth0", "up"},
		{"route", "add", n.PrivateAddr.String() + "/32", "via", n.PublicAddr.String(), "dev", n.HostLink},
	}
	for _, args := range steps {
		if _, err := ip(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// names is the Resolver of the Name constants.
func (n *Net) names() *Resolver {
	r := NewResolver()
	for _, name := range []string{NameOK, NameWildSub, NameWildApex, NameOther} {
		r.Set(name, n.PublicAddr)
	}
	r.Set(NamePrivate, n.PrivateAddr)
	r.Set(NameHost, n.HostAddr)
	r.Set(NameLoop, netip.MustParseAddr("127.0.0.1"))
	r.Set(NameV6, n.IPv6Addr)
	return r
}

// remove stops the servers and deletes the namespace, which deletes the
// veth pair and the host's route with it.
func (n *Net) remove() {
	n.srv.stop()
	ctx, cancel := context.WithTimeout(context.Background(), setupBudget)
	defer cancel()
	_, _ = ip(ctx, "netns", "del", n.Namespace)
	_, _ = ip(ctx, "link", "del", n.HostLink) // gone already, unless the namespace was not
}

// Hits reports what has reached the servers so far.
func (n *Net) Hits() Hits { return n.hits.snapshot() }

// RootCAs is a pool holding CAPEM, for host-side clients.
func (n *Net) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(n.CAPEM)
	return p
}

// ip runs iproute2's ip and returns its combined output.
func ip(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
