// Package wire is the protocol between a sandbox's egress relay (brig's
// init, inside the container) and its worker's filtering proxy, over the
// unix socket the worker mounts at SocketPath (docs/design.md §12.1).
//
// The sandbox of a job with an egress list has no network (Docker's
// network mode none: loopback only). brig's DNS, answered by the proxy
// through the relay, gives every allowed name an address of its own in
// Synthetic; the relay listens on every port the list allows (and on
// ProxyPort) and hands each connection to the proxy with a Header naming
// the address and port the job dialed. The relay is inside the sandbox and
// untrusted: the proxy checks everything, and a job may speak this
// protocol itself.
package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Fixed places and numbers in every sandbox with an egress list.
const (
	// SocketPath is where the worker's egress socket is mounted.
	SocketPath = "/run/brig/egress.sock"
	// ResolvConf is the sandbox's /etc/resolv.conf: brig's DNS, answered
	// by the relay on 127.0.0.1:53 (UDP and TCP).
	ResolvConf = "nameserver 127.0.0.1\noptions ndots:0 attempts:2 timeout:2\n"
	// DNSPort is where the relay answers DNS.
	DNSPort = 53
	// ProxyPort is where the relay also listens as an explicit HTTP proxy
	// (CONNECT host:port, or absolute-form http:// requests): a job
	// reaches IP and CIDR entries this way, HTTPS_PROXY=http://127.0.0.1:3128.
	ProxyPort = 3128
	// MaxHeader bounds a header line, its newline included.
	MaxHeader = 256
	// Version is the protocol's version, in every header.
	Version = 1
)

// Synthetic is the range brig's DNS hands out: one address per allowed
// name, per sandbox. The sandbox's loopback answers every address of
// 127.0.0.0/8, so a connection to one reaches the relay's listener.
var Synthetic = netip.MustParsePrefix("127.64.0.0/10")

// Kind is what a connection carries.
type Kind string

// Kinds of connection.
const (
	// KindTCP: one connection the job opened to Dst; its bytes follow the
	// header, both ways, unchanged.
	KindTCP Kind = "tcp"
	// KindDNS: DNS messages, each with RFC 1035's two-byte length prefix,
	// both ways (a query, its answer, the next query...).
	KindDNS Kind = "dns"
)

// Header opens every connection to the egress socket: one line of JSON.
type Header struct {
	V    int  `json:"v"`
	Kind Kind `json:"kind"`
	// Dst is the IPv4 address and port the job connected to (KindTCP).
	Dst string `json:"dst,omitempty"`
}

// ErrHeader marks a header the proxy cannot read.
var ErrHeader = errors.New("egress header")

// Write writes h as one line.
func Write(w io.Writer, h Header) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Read reads one header line of at most MaxHeader bytes and checks it:
// the version, a known kind, and for KindTCP an IPv4 address and a port
// in Dst. It reads nothing past the newline.
func Read(r *bufio.Reader) (Header, netip.AddrPort, error) {
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return Header{}, netip.AddrPort{}, fmt.Errorf("%w: %w", ErrHeader, err)
		}
		if b == '\n' {
			break
		}
		if len(line)+1 >= MaxHeader {
			return Header{}, netip.AddrPort{}, fmt.Errorf("%w: longer than %d bytes", ErrHeader, MaxHeader)
		}
		line = append(line, b)
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Header{}, netip.AddrPort{}, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	if dec.More() {
		return Header{}, netip.AddrPort{}, fmt.Errorf("%w: trailing data", ErrHeader)
	}
	if h.V != Version {
		return Header{}, netip.AddrPort{}, fmt.Errorf("%w: version %d, want %d", ErrHeader, h.V, Version)
	}
	switch h.Kind {
	case KindDNS:
		if h.Dst != "" {
			return Header{}, netip.AddrPort{}, fmt.Errorf("%w: dns with a dst", ErrHeader)
		}
		return h, netip.AddrPort{}, nil
	case KindTCP:
		dst, err := netip.ParseAddrPort(h.Dst)
		if err != nil || !dst.Addr().Is4() || dst.Port() == 0 {
			return Header{}, netip.AddrPort{}, fmt.Errorf("%w: dst %q is not an IPv4 address and port", ErrHeader, h.Dst)
		}
		return h, dst, nil
	}
	return Header{}, netip.AddrPort{}, fmt.Errorf("%w: kind %q", ErrHeader, h.Kind)
}
