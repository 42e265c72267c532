package proxy

import (
	"time"

	"github.com/brig-dev/brig/internal/egress/sniff"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
)

// connectEstablished answers a CONNECT the proxy lets through.
const connectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// explicit serves the relay's explicit HTTP proxy, 127.0.0.1:ProxyPort:
// one CONNECT host:port, or absolute-form http:// requests to one host
// (docs/design.md §12.1).
func (c *client) explicit() (*target, error) {
	first, err := c.peekFirst()
	if err != nil {
		return nil, c.silence("127.0.0.1", wire.ProxyPort, err)
	}
	if styleOf(first) != styleHTTP {
		return nil, refuse("127.0.0.1", wire.ProxyPort, schema.EgressProtocol, "the explicit proxy speaks HTTP: first byte %#02x", first)
	}
	h, raw, err := sniff.ReadHTTPRequestHead(c.br, 0)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, c.headError("127.0.0.1", wire.ProxyPort, err)
	}
	t, err := c.proxyTarget(h)
	switch {
	case err != nil:
		return nil, err
	case h.Method != "CONNECT":
		t.http, t.hostPort, t.replay = true, true, raw
		t.body, err = checkHead(h, raw, t.host, t.port, true)
		return t, err
	}
	return c.tunnel(t)
}

// tunnel answers an allowed CONNECT and, for a name, checks the tunnel's
// first bytes as a connection to that name's synthetic address would be.
func (c *client) tunnel(t *target) (*target, error) {
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.Write([]byte(connectEstablished)); err != nil {
		return nil, errClientGone
	}
	_ = c.SetWriteDeadline(time.Time{})
	c.sawFirst = false // a refusal now answers the tunnel's protocol
	if t.addr.IsValid() {
		return t, nil // an admin's address entry: no name to check
	}
	return c.sniff(t.host, t.port)
}

// proxyTarget checks where a request to the explicit proxy goes: a name
// on the list, or an IP literal an address entry allows.
func (c *client) proxyTarget(h *sniff.RequestHead) (*target, error) {
	d := h.Dest
	port := int(d.Port)
	switch {
	case h.Method != "CONNECT" && h.Scheme != "http":
		return nil, refuse(d.Host, port, schema.EgressProtocol,
			"the explicit proxy takes CONNECT host:port or an absolute http:// URL, not %s %q", h.Method, clip(h.Target))
	case d.IsIP && d.Addr.IsValid() && c.s.b.List.AllowsIP(d.Addr, port):
		return &target{host: d.Addr.String(), addr: d.Addr, port: port}, nil
	case d.IsIP:
		return nil, refuse(d.Host, port, schema.EgressIPLiteral, "%s is an IP address no entry of this job's egress list allows", d.Host)
	case !c.s.b.List.AllowsName(d.Host, port):
		return nil, refuse(d.Host, port, schema.EgressNotAllowed, "%s is not on this job's egress list", d.String())
	}
	return &target{host: d.Host, port: port}, nil
}

// clip shortens a job's text for a refusal message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
