package proxy

import (
	"errors"
	"time"

	"github.com/brig-dev/brig/internal/egress/sniff"
	"github.com/brig-dev/brig/schema"
)

// sniff reads the first ClientHello or request head of a connection to
// name:port and checks that it names name (docs/design.md §12.1).
func (c *client) sniff(name string, port int) (*target, error) {
	first, err := c.peekFirst()
	if err != nil {
		return nil, c.silence(name, port, err)
	}
	defer c.SetReadDeadline(time.Time{})
	switch styleOf(first) {
	case styleTLS:
		return c.sniffTLS(name, port)
	case styleHTTP:
		h, raw, err := sniff.ReadHTTPRequestHead(c.br, 0)
		if err != nil {
			return nil, c.headError(name, port, err)
		}
		body, err := checkHead(h, raw, name, port, false)
		if err != nil {
			return nil, err
		}
		return &target{host: name, port: port, http: true, body: body, replay: raw}, nil
	}
	return nil, refuse(name, port, schema.EgressProtocol, "first byte %#02x opens neither a TLS handshake nor an HTTP request", first)
}

func (c *client) sniffTLS(name string, port int) (*target, error) {
	hello, raw, err := sniff.ReadClientHello(c.br, 0)
	switch {
	case errors.Is(err, sniff.ErrNoSNI), errors.Is(err, sniff.ErrIPLiteral):
		return nil, refuse(name, port, schema.EgressMismatch, "TLS ClientHello without the server name %s: %v", name, err)
	case err != nil:
		return nil, c.silence(name, port, err)
	case hello.ECH:
		return nil, refuse(name, port, schema.EgressProtocol, "TLS Encrypted Client Hello hides the server name")
	case hello.ServerName != name:
		return nil, refuse(name, port, schema.EgressMismatch, "TLS server name %q on a connection to %s", hello.ServerName, name)
	}
	return &target{host: name, port: port, replay: raw}, nil
}

// silence maps a failed first read: bytes that break their protocol, or
// none in time, are refused (protocol); a client that left or broke off
// is closed quietly.
func (c *client) silence(host string, port int, err error) error {
	switch {
	case isSniffRefusal(err):
		return refuse(host, port, schema.EgressProtocol, "%v", err)
	case isTimeout(err):
		return refuse(host, port, schema.EgressProtocol, "no TLS ClientHello or HTTP request within %v", c.p.wait.sniff)
	}
	return errClientGone // gone, reset, or stopped mid-message: nothing to tell
}

// headError maps ReadHTTPRequestHead's error on a connection to name.
func (c *client) headError(name string, port int, err error) error {
	if r := headRefusal(name, port, err); r != nil {
		return r
	}
	return c.silence(name, port, err)
}

// headRefusal is the refusal ReadHTTPRequestHead's err on a connection to
// name:port amounts to: mismatch for a missing or other Host, protocol for
// any other verdict on the bytes; nil for an I/O error.
func headRefusal(name string, port int, err error) *refusal {
	switch {
	case errors.Is(err, sniff.ErrNoHost), errors.Is(err, sniff.ErrHostMismatch):
		return refuse(name, port, schema.EgressMismatch, "%v", err)
	case isSniffRefusal(err):
		return refuse(name, port, schema.EgressProtocol, "%v", err)
	}
	return nil
}

// isSniffRefusal tells the sniff package's verdicts on the bytes from
// the I/O errors it passes through.
func isSniffRefusal(err error) bool {
	var m *sniff.MalformedError
	if errors.As(err, &m) {
		return true
	}
	for _, e := range []error{sniff.ErrNotTLS, sniff.ErrTooLarge, sniff.ErrNoSNI, sniff.ErrIPLiteral,
		sniff.ErrHTTP2, sniff.ErrHTTP09, sniff.ErrNoHost, sniff.ErrHostMismatch} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkHead checks one plain HTTP request head on a connection to
// name:port: its Host names name, it neither tunnels nor upgrades, and its
// body is framed so that the next head can be found. It returns that
// framing. viaProxy marks a connection to the explicit proxy: every
// request on it, not only the first, must be absolute-form http:// and
// name port too.
func checkHead(h *sniff.RequestHead, raw []byte, name string, port int, viaProxy bool) (framing, error) {
	switch {
	case h.Method == "CONNECT":
		return framing{}, refuse(name, port, schema.EgressProtocol, "CONNECT inside a connection to %s", name)
	case viaProxy && h.Scheme != "http":
		return framing{}, refuse(name, port, schema.EgressProtocol,
			"the explicit proxy takes absolute http:// URLs on every request, not %s %q", h.Method, clip(h.Target))
	case h.Dest.Host != name:
		return framing{}, refuse(name, port, schema.EgressMismatch, "HTTP Host %q on a connection to %s", h.Dest.Host, name)
	case viaProxy && int(h.Dest.Port) != port:
		return framing{}, refuse(name, port, schema.EgressMismatch, "HTTP Host port %d on a connection to port %d", h.Dest.Port, port)
	}
	f, err := bodyFraming(raw)
	if err != nil {
		return framing{}, refuse(name, port, schema.EgressProtocol, "%v", err)
	}
	return f, nil
}
