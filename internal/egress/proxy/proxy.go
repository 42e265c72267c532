package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/egress/allow"
)

// Bounds of one Listener (docs/design.md §12.1). Past a connection bound
// the new connection is closed and refused with reason limit.
const (
	// MaxTCPConns is how many TCP connections a Listener serves at once:
	// a browser opens six per host, a build a few dozen.
	MaxTCPConns = 64
	// MaxDNSConns is how many DNS connections a Listener serves at once;
	// the relay needs one or two.
	MaxDNSConns = 16
	// MaxPendingConns is how many accepted connections may be waiting for
	// their header at once.
	MaxPendingConns = 16
	// MaxNames is how many names one binding may resolve; the next name is
	// REFUSED (limit). A job names a handful of hosts; 1024 leaves room
	// for a crawler of one wildcard domain, and bounds the table.
	MaxNames = 1024
	// MaxDNSMessage bounds a DNS query: a 12-byte header, one question of
	// a name of at most 255 bytes and 4 bytes of type and class, and an
	// EDNS record with a cookie fit with room to spare.
	MaxDNSMessage = 512
	// SyntheticTTL is the TTL, in seconds, of a synthetic A record. The
	// address lasts as long as the binding; a short TTL keeps a cache in
	// the sandbox from outliving a Reset by long.
	SyntheticTTL = 30
)

// Timeouts. None bounds a spliced connection's life: the binding's Reset
// does.
const (
	// HeaderTimeout bounds the wait for a connection's wire header; the
	// relay sends it at once.
	HeaderTimeout = 5 * time.Second
	// SniffTimeout bounds the wait for a connection's first ClientHello or
	// request head (and for a CONNECT tunnel's).
	SniffTimeout = 10 * time.Second
	// DialTimeout bounds resolving a name and connecting to it, all
	// addresses tried together.
	DialTimeout = 10 * time.Second
	// DNSIdleTimeout closes a DNS connection that sent no query for so
	// long; the relay dials again.
	DNSIdleTimeout = 60 * time.Second
	// drainTimeout bounds how long a refused keep-alive request waits for
	// the upstream to finish its earlier responses before the 403 goes out
	// behind them; past it the connection closes without the 403.
	drainTimeout = 10 * time.Second
	// writeTimeout bounds writing a refusal or a DNS answer to a client
	// that does not read.
	writeTimeout = 5 * time.Second
	// localAddrsTTL is how long the default LocalAddrs keeps its list: an
	// address added to an interface counts as local within this time.
	localAddrsTTL = 5 * time.Second
)

// Resolver finds a name's addresses; *net.Resolver satisfies it. Tests
// inject a map.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Proxy.
type Config struct {
	// Resolver resolves the names jobs connect to (default
	// net.DefaultResolver, asked for the rooted name: no search domains). Its answers are filtered by Policy and
	// LocalAddrs, never trusted.
	Resolver Resolver
	// Policy says which addresses count as reachable; New validates it.
	Policy allow.Policy
	// Logger receives refusals (Debug) and failures (Warn); default
	// slog.Default().
	Logger *slog.Logger
	// LocalAddrs lists this host's own addresses, never dialled unless in
	// Policy.TestPublic (default: net.InterfaceAddrs, cached for five
	// seconds).
	LocalAddrs func() ([]netip.Addr, error)
	// Blocked lists addresses no job reaches whatever the Policy says,
	// TestPublic included: the worker passes its NATS servers', so that a
	// NATS server on a public address stays out of every list's reach. It
	// is called on every dial and must be cheap.
	Blocked func() []netip.Addr
}

// timeouts are the waits of the constants above; in-package tests may
// lengthen them on a Proxy before its first Listen.
type timeouts struct {
	header, sniff, dial, dnsIdle, drain time.Duration
}

// Proxy holds what every sandbox's Listener shares.
type Proxy struct {
	resolver Resolver
	policy   allow.Policy
	log      *slog.Logger
	local    func() ([]netip.Addr, error)
	blocked  func() []netip.Addr
	wait     timeouts
	// beforeDial, when set, sees every address the dialer's Control hook
	// passes, just before connect(2); an error stops the dial. Tests use
	// it to prove a dial did not happen.
	beforeDial func(netip.AddrPort) error
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	p := &Proxy{
		resolver: cfg.Resolver,
		policy:   cfg.Policy,
		log:      cfg.Logger,
		local:    cfg.LocalAddrs,
		blocked:  cfg.Blocked,
		wait: timeouts{
			header: HeaderTimeout, sniff: SniffTimeout, dial: DialTimeout,
			dnsIdle: DNSIdleTimeout, drain: drainTimeout,
		},
	}
	if p.resolver == nil {
		p.resolver = rooted{net.DefaultResolver}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.local == nil {
		p.local = (&interfaceAddrs{}).get
	}
	return p, nil
}

// rooted looks every name up as a rooted name (a trailing dot), so that
// the host's resolver never tries its search domains: a job's
// "api.example.com" must not become "api.example.com.corp.internal".
type rooted struct{ r Resolver }

func (r rooted) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return r.r.LookupNetIP(ctx, network, host+".")
}

// interfaceAddrs is the default LocalAddrs: net.InterfaceAddrs, cached.
type interfaceAddrs struct {
	mu    sync.Mutex
	at    time.Time
	addrs []netip.Addr
}

func (c *interfaceAddrs) get() ([]netip.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addrs != nil && time.Since(c.at) < localAddrsTTL {
		return c.addrs, nil
	}
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	addrs := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				addrs = append(addrs, ip.Unmap())
			}
		}
	}
	c.addrs, c.at = addrs, time.Now()
	return addrs, nil
}
