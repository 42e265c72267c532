package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
)

// client is one TCP connection from the sandbox, past its wire header
// (docs/design.md §12.1). Everything it sends is untrusted.
type client struct {
	net.Conn
	br *bufio.Reader // c's bytes after the header
	s  *session
	p  *Proxy
	// first is the client's first byte once read (of a CONNECT tunnel,
	// the tunnel's): it picks how a refusal is told.
	first    byte
	sawFirst bool
}

// target is where a checked connection goes.
type target struct {
	host string     // the name, or an IP literal's canonical text
	addr netip.Addr // an IP literal's address; zero for a name
	port int
	// http marks a plain HTTP stream: each later request head is
	// checked, Host against host, and, when hostPort is set (the explicit
	// proxy dialled the port the first request named), against port, and
	// for an absolute http:// target (checkHead's viaProxy).
	http     bool
	hostPort bool
	body     framing // the first request's body, when http
	replay   []byte  // bytes read from the client, for the upstream
}

// serveTCP checks the connection the job opened to dst, then relays it
// to its upstream until either side ends or ctx (the binding) does.
func (c *client) serveTCP(ctx context.Context, dst netip.AddrPort) {
	t, err := c.route(dst)
	if err == nil {
		var up net.Conn
		if up, err = c.p.dial(ctx, t); err == nil {
			c.relay(ctx, up, t)
			return
		}
	}
	var r *refusal
	switch {
	case errors.As(err, &r):
		c.s.deny(r)
	case errors.Is(err, errClientGone):
		return
	default:
		c.s.log.Debug("egress upstream failed", "dst", dst, "err", err)
	}
	tell(c.Conn, c.style(), err)
}

// route decides by the header's Dst (see the package doc's "TCP").
func (c *client) route(dst netip.AddrPort) (*target, error) {
	port := int(dst.Port())
	if name, ok := c.s.names.name(dst.Addr()); ok {
		if !c.s.b.List.AllowsName(name, port) {
			return nil, refuse(name, port, schema.EgressNotAllowed, "port %d is not on this job's egress list for %s", port, name)
		}
		return c.sniff(name, port)
	}
	if dst == netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), wire.ProxyPort) {
		return c.explicit()
	}
	return nil, refuse(dst.Addr().String(), port, schema.EgressIPLiteral,
		"connection to an address brig's DNS did not hand out; connect by name")
}

// peekFirst waits, within SniffTimeout, for the client's first byte and
// records it.
func (c *client) peekFirst() (byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(c.p.wait.sniff))
	b, err := c.br.Peek(1)
	if err != nil {
		return 0, err
	}
	if !c.sawFirst {
		c.first, c.sawFirst = b[0], true
	}
	return b[0], nil
}

// style is how the client will understand a refusal, from its first
// byte; one not yet read is waited for, briefly.
func (c *client) style() style {
	if !c.sawFirst {
		if _, err := c.peekFirst(); err != nil {
			return styleNone
		}
	}
	return styleOf(c.first)
}
