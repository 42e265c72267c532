package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/schema"
)

// dial connects to t: a name resolved by the proxy itself, or an IP
// literal, through the addresses the Policy allows that are not this
// host's own (docs/design.md §12.1). None left: not_public, and nothing
// is dialled.
func (p *Proxy) dial(ctx context.Context, t *target) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.wait.dial)
	defer cancel()
	addrs := []netip.Addr{t.addr}
	if !t.addr.IsValid() {
		var err error
		if addrs, err = p.resolver.LookupNetIP(ctx, "ip", t.host); err != nil {
			return nil, &upstreamError{fmt.Errorf("resolve %s: %w", t.host, err)}
		}
	}
	usable, err := p.usable(addrs)
	if err != nil {
		return nil, &upstreamError{err}
	}
	if len(usable) == 0 {
		return nil, refuse(t.host, t.port, schema.EgressNotPublic, "%s has no address this job may reach (private, this host's, or not public)", t.host)
	}
	d := net.Dialer{Control: p.control}
	var errs []error
	for _, a := range usable {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(t.port)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, &upstreamError{fmt.Errorf("connect to %s: %w", t.host, errors.Join(errs...))}
}

// usable keeps the addresses of addrs that a job may connect to.
func (p *Proxy) usable(addrs []netip.Addr) ([]netip.Addr, error) {
	never, err := p.never()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if p.reachable(a, never) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// never is what no job reaches whatever the Policy says: this host's own
// addresses (LocalAddrs) and the Blocked ones (the NATS servers), each as
// its hostKey.
type never struct{ local, blocked []netip.Addr }

func (p *Proxy) never() (never, error) {
	local, err := p.local()
	if err != nil {
		return never{}, err
	}
	var blocked []netip.Addr
	if p.blocked != nil {
		blocked = p.blocked()
	}
	return never{hostKeys(local), hostKeys(blocked)}, nil
}

// hostKey is the host an address reaches: the IPv4 address a v4-mapped,
// NAT64 or 6to4 form carries (a translator or relay connects there), the
// address itself otherwise. Two forms of one host share a key, whichever
// side (the address dialled, or a local or Blocked one) is given in which.
func hostKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if v4 := allow.EmbeddedV4(a); v4.IsValid() {
		return v4
	}
	return a
}

func hostKeys(as []netip.Addr) []netip.Addr {
	keys := make([]netip.Addr, len(as))
	for i, a := range as {
		keys[i] = hostKey(a)
	}
	return keys
}

// reachable is the check every dialled address passes: allowed by the
// Policy, not a Blocked address, and not one of this host's own (in any
// form: a NAT64 or 6to4 one would be hairpinned back) unless a test said
// so.
func (p *Proxy) reachable(a netip.Addr, n never) bool {
	k := hostKey(a)
	if !p.policy.Allowed(a) || slices.Contains(n.blocked, k) {
		return false
	}
	if !slices.Contains(n.local, k) {
		return true
	}
	return slices.ContainsFunc(p.policy.TestPublic, func(pr netip.Prefix) bool { return pr.Contains(a) })
}

// errUnreachable stops a dial whose address failed the check in Control.
var errUnreachable = errors.New("address not reachable under the egress policy")

// control is the dialer's last word before connect(2): the address is
// checked again, whatever resolved it.
func (p *Proxy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	n, err := p.never()
	if err != nil {
		return err
	}
	if !p.reachable(ap.Addr(), n) {
		return fmt.Errorf("dial %s: %w", ap, errUnreachable)
	}
	if p.beforeDial != nil {
		return p.beforeDial(ap)
	}
	return nil
}
