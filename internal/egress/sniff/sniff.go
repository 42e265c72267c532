package sniff

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultMax is the cap on what ReadClientHello and ReadHTTPRequestHead
// read when their max is zero or negative: a ClientHello with post-quantum
// key shares is under 2 KiB, a browser's request head under 8 KiB.
const DefaultMax = 16 << 10

// Refusals that callers branch on. Each names a fixed state; anything else
// wrong with the bytes is a *MalformedError. I/O errors of the reader pass
// through wrapped (io.EOF when the client sent nothing, io.ErrUnexpectedEOF
// when it stopped mid-message).
var (
	ErrNotTLS       = errors.New("sniff: not a TLS handshake record")
	ErrTooLarge     = errors.New("sniff: client's first message exceeds the limit")
	ErrNoSNI        = errors.New("sniff: ClientHello carries no server name")
	ErrIPLiteral    = errors.New("sniff: server name is an IP address literal")
	ErrHTTP2        = errors.New("sniff: HTTP/2 connection preface (prior knowledge) is not supported")
	ErrHTTP09       = errors.New("sniff: HTTP/0.9 request")
	ErrNoHost       = errors.New("sniff: request has no Host header")
	ErrHostMismatch = errors.New("sniff: request target and Host header name different hosts")
	// ErrAmbiguous marks a *MalformedError for a request that two HTTP
	// implementations could read two ways (request smuggling, several Host
	// headers): the proxy and the upstream must never disagree on where one
	// request ends or where it goes.
	ErrAmbiguous = errors.New("sniff: ambiguous request")
)

// MalformedError is a first message that breaks its protocol's grammar or
// brig's stricter reading of it. What says which rule, for the
// egress_denied event; Err, when set, is a sentinel such as ErrAmbiguous.
type MalformedError struct {
	What string
	Err  error
}

func (e *MalformedError) Error() string { return "sniff: malformed: " + e.What }

func (e *MalformedError) Unwrap() error { return e.Err }

func malformed(what string) error { return &MalformedError{What: what} }

// Destination is where a client wants to go, normalised: Host is lower
// case without a trailing dot or brackets, and for an address literal the
// canonical text of Addr.
type Destination struct {
	Host string
	Port uint16 // 0 only where the client gave none and no default applied
	// IsIP is set when Host is, or could be read by a resolver or libc as,
	// an address rather than a name: dotted quads, inet_aton's shorter,
	// octal and hex forms (127.1, 0x7f.1, 2130706433) and any name whose
	// last label is a number. A policy should refuse these.
	IsIP bool
	// Addr is the address an IsIP host denotes, IPv4-mapped IPv6
	// unmapped; the zero Addr when no resolver would accept it either.
	Addr netip.Addr
}

// String is host:port (IPv6 in brackets), or the host alone without a port.
func (d Destination) String() string {
	if d.Port == 0 {
		return d.Host
	}
	return net.JoinHostPort(d.Host, strconv.Itoa(int(d.Port)))
}

// SplitHostPort parses an authority, host[:port], as it stands in a Host
// header, a CONNECT target or a URL. scheme gives the default port: "http"
// 80, "https" 443; "" requires a port. An IPv6 address needs brackets;
// userinfo, zones, empty labels, non-ASCII and characters outside
// letters, digits, '-', '_' and '.' are refused.
func SplitHostPort(hostport, scheme string) (Destination, error) {
	var def uint16
	switch strings.ToLower(scheme) {
	case "":
	case "http":
		def = 80
	case "https":
		def = 443
	default:
		return Destination{}, malformed("unknown scheme " + strconv.Quote(scheme))
	}
	d, err := splitHostPort(hostport, def)
	if err == nil && d.Port == 0 {
		return Destination{}, malformed("authority without port")
	}
	return d, err
}

// splitHostPort is SplitHostPort with a default port; 0 leaves Port 0 when
// the authority has none.
func splitHostPort(hostport string, def uint16) (Destination, error) {
	if strings.Contains(hostport, "@") {
		return Destination{}, malformed("userinfo in authority")
	}
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return Destination{}, malformed("unclosed '[' in authority")
		}
		host, port = hostport[1:end], hostport[end+1:]
		if port != "" && port[0] != ':' {
			return Destination{}, malformed("text after ']' in authority")
		}
		if strings.Count(host, ":") < 2 {
			return Destination{}, malformed("brackets around a non-IPv6 host")
		}
	} else if i := strings.IndexByte(hostport, ':'); i >= 0 {
		if strings.Count(hostport, ":") > 1 {
			return Destination{}, malformed("IPv6 address without brackets")
		}
		host, port = hostport[:i], hostport[i:]
	}
	d, err := ParseHost(host)
	if err != nil {
		return Destination{}, err
	}
	d.Port = def
	if port != "" {
		if d.Port, err = parsePort(port[1:]); err != nil {
			return Destination{}, err
		}
	}
	return d, nil
}

// parsePort accepts 1 to 5 decimal digits naming a port from 1 to 65535.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, malformed("port " + strconv.Quote(s))
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, malformed("port " + s + " out of range")
	}
	return uint16(n), nil
}

// ParseHost normalises a host without port (an SNI name, say) into a
// Destination with Port 0. A bare IPv6 address is accepted here, since no
// port can follow it.
func ParseHost(host string) (Destination, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Destination{}, malformed("IPv6 zone in host")
		}
		a = a.Unmap()
		return Destination{Host: a.String(), IsIP: true, Addr: a}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if err := checkName(name); err != nil {
		return Destination{}, err
	}
	labels := strings.Split(name, ".")
	if !numeric(labels[len(labels)-1]) {
		return Destination{Host: name}, nil
	}
	d := Destination{Host: name, IsIP: true}
	if a, ok := inetAton(labels); ok {
		d.Host, d.Addr = a.String(), a
	}
	return d, nil
}

// checkName enforces the shape of a DNS name: 1 to 253 bytes of letters,
// digits, '-' and '_' in labels of 1 to 63 bytes. Everything a resolver,
// libc or a URL parser might treat specially (NUL, '%', '\\', spaces,
// non-ASCII) is out.
func checkName(name string) error {
	if name == "" {
		return malformed("empty host")
	}
	if len(name) > 253 {
		return malformed("host longer than 253 bytes")
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 {
			return malformed("host label empty or longer than 63 bytes")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return malformed("byte " + strconv.QuoteRune(rune(c)) + " in host")
			}
		}
	}
	return nil
}

// numeric reports whether a label reads as a number to inet_aton or to the
// WHATWG URL parser's "ends in a number" rule: decimal digits, or 0x
// followed by hex digits. A name ending in one is treated as an address.
func numeric(l string) bool {
	if strings.HasPrefix(l, "0x") {
		return strings.Trim(l[2:], "0123456789abcdef") == ""
	}
	return strings.Trim(l, "0123456789") == ""
}

// inetAton reads 1 to 4 numeric parts the way inet_aton does: decimal,
// 0-prefixed octal or 0x-prefixed hex, the last part filling the bytes
// the others left.
func inetAton(parts []string) (netip.Addr, bool) {
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, ok := atonPart(p)
		last := i == len(parts)-1
		if !ok || !last && n > 0xff || last && n >= 1<<(8*(5-len(parts))) {
			return netip.Addr{}, false
		}
		if last {
			v = v<<(8*(5-len(parts))) | n
		} else {
			v = v<<8 | n
		}
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func atonPart(p string) (uint64, bool) {
	base := 10
	switch {
	case strings.HasPrefix(p, "0x"):
		p, base = p[2:], 16
		if p == "" {
			return 0, true
		}
	case len(p) > 1 && p[0] == '0':
		p, base = p[1:], 8
	}
	n, err := strconv.ParseUint(p, base, 32)
	return n, err == nil
}
