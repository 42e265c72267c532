package sniff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// RequestHead is the part of an HTTP/1.x request the proxy decides on.
type RequestHead struct {
	Method string // as sent; methods are case-sensitive
	Target string // request-target as sent
	Proto  string // "HTTP/1.0" or "HTTP/1.1"
	Host   string // the Host header's value as sent; "" only for a CONNECT without one
	// Scheme is an absolute-form target's scheme, lower case ("http" or
	// "https"); "" for every other form.
	Scheme string
	// Dest is where the request goes: the CONNECT authority, or the Host
	// header (equal to an absolute-form target's authority), with the
	// scheme's default port when none is given. Check Dest.IsIP.
	Dest Destination
}

// ReadHTTPRequestHead reads a request line and header fields up to and
// including the empty line, and nothing more: the body, if any, stays in
// r. raw is every byte consumed, whether or not err is nil. max caps
// len(raw) (DefaultMax when max <= 0).
//
// The reading is stricter than RFC 9112 wherever leniency lets two parsers
// disagree: every line must end in CRLF (a bare LF or CR is refused, not
// accepted as the RFC allows), no empty lines before the request line,
// single spaces in the request line, no obs-fold, no whitespace between a
// field name and its colon, no control bytes in values. Refused with
// ErrAmbiguous: Content-Length with Transfer-Encoding, Content-Lengths
// that differ, Transfer-Encoding in HTTP/1.0 and several Host fields.
func ReadHTTPRequestHead(r *bufio.Reader, max int) (*RequestHead, []byte, error) {
	if max <= 0 {
		max = DefaultMax
	}
	line, raw, err := readLine(r, nil, max)
	if err != nil {
		return nil, raw, err
	}
	h, err := parseRequestLine(line)
	if err != nil {
		return nil, raw, err
	}
	var f fields
	for {
		if line, raw, err = readLine(r, raw, max); err != nil {
			return nil, raw, err
		}
		if line == "" {
			break
		}
		if err := f.add(line); err != nil {
			return nil, raw, err
		}
	}
	if err := h.resolve(&f); err != nil {
		return nil, raw, err
	}
	return h, raw, nil
}

// readLine reads one CRLF-terminated line byte by byte, so that nothing
// past max or past the head is consumed, and returns it without the CRLF.
func readLine(r *bufio.Reader, raw []byte, max int) (string, []byte, error) {
	start := len(raw)
	for {
		if len(raw) >= max {
			return "", raw, ErrTooLarge
		}
		c, err := r.ReadByte()
		if err != nil {
			if len(raw) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", raw, fmt.Errorf("read HTTP request head: %w", err)
		}
		raw = append(raw, c)
		n := len(raw)
		switch {
		case c == '\n' && n-start >= 2 && raw[n-2] == '\r':
			return string(raw[start : n-2]), raw, nil
		case c == '\n':
			return "", raw, malformed("line ending in bare LF")
		case n-start >= 2 && raw[n-2] == '\r':
			return "", raw, malformed("bare CR in line")
		case c < ' ' && c != '\t' && c != '\r' || c == 0x7f:
			// Refused at once: a TLS client does not wait for a line end.
			return "", raw, malformed("control byte in request head")
		}
	}
}

// parseRequestLine reads method SP request-target SP HTTP-version.
func parseRequestLine(line string) (*RequestHead, error) {
	if line == "PRI * HTTP/2.0" {
		return nil, ErrHTTP2
	}
	parts := strings.Split(line, " ")
	if len(parts) == 2 && isToken(parts[0]) && parts[1] != "" {
		return nil, ErrHTTP09
	}
	if len(parts) != 3 {
		return nil, malformed("request line is not method SP target SP version")
	}
	h := &RequestHead{Method: parts[0], Target: parts[1], Proto: parts[2]}
	if !isToken(h.Method) {
		return nil, malformed("method is not a token")
	}
	if h.Target == "" || strings.IndexFunc(h.Target, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		return nil, malformed("request target empty or with bytes outside visible ASCII")
	}
	if strings.Contains(h.Target, "#") {
		// RFC 9112 has no fragment in a request-target, and where an
		// absolute-form authority ends at '#' a lenient server could
		// disagree with brig ("http://ok.test#@other.test/").
		return nil, malformed("request target with a fragment ('#')")
	}
	if h.Proto != "HTTP/1.1" && h.Proto != "HTTP/1.0" {
		return nil, malformed("HTTP version " + strconv.Quote(h.Proto))
	}
	return h, nil
}

// fields are the header fields the proxy needs, gathered line by line.
type fields struct {
	hosts    []string
	lengths  []string
	encoding bool // Transfer-Encoding present
}

func (f *fields) add(line string) error {
	if line[0] == ' ' || line[0] == '\t' {
		return malformed("obs-fold (header line starting with whitespace)")
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return malformed("header line without colon")
	}
	if strings.TrimRight(name, " \t") != name {
		return &MalformedError{What: "whitespace before colon in header " + strconv.Quote(name), Err: ErrAmbiguous}
	}
	if !isToken(name) {
		return malformed("header name is not a token")
	}
	value = strings.Trim(value, " \t") // readLine let no control byte but HTAB through
	switch strings.ToLower(name) {
	case "host":
		f.hosts = append(f.hosts, value)
	case "content-length":
		f.lengths = append(f.lengths, value)
	case "transfer-encoding":
		f.encoding = true
	}
	return nil
}

// resolve checks the fields against each other and the request line and
// sets Host and Dest.
func (h *RequestHead) resolve(f *fields) error {
	if err := f.framing(h.Proto); err != nil {
		return err
	}
	switch len(f.hosts) {
	case 0:
		if h.Method != "CONNECT" {
			return ErrNoHost
		}
	case 1:
		h.Host = f.hosts[0]
	default:
		return &MalformedError{What: "several Host headers", Err: ErrAmbiguous}
	}
	var err error
	switch {
	case h.Method == "CONNECT":
		err = h.resolveConnect()
	case hasPrefixFold(h.Target, "http://"), hasPrefixFold(h.Target, "https://"):
		err = h.resolveAbsolute()
	case h.Target[0] == '/' || h.Target == "*" && h.Method == "OPTIONS":
		h.Dest, err = SplitHostPort(h.Host, "http")
	default:
		err = malformed("request target " + strconv.Quote(h.Target) + " of no form " + h.Method + " takes")
	}
	return err
}

// framing refuses the message-length ambiguities of RFC 9112 §6.3 that
// request smuggling lives on.
func (f *fields) framing(proto string) error {
	amb := func(what string) error { return &MalformedError{What: what, Err: ErrAmbiguous} }
	if f.encoding && len(f.lengths) > 0 {
		return amb("both Content-Length and Transfer-Encoding")
	}
	if f.encoding && proto == "HTTP/1.0" {
		return amb("Transfer-Encoding in HTTP/1.0")
	}
	for _, l := range f.lengths {
		if l == "" || len(l) > 18 || strings.Trim(l, "0123456789") != "" {
			return malformed("Content-Length " + strconv.Quote(l))
		}
		if a, b := strings.TrimLeft(l, "0"), strings.TrimLeft(f.lengths[0], "0"); a != b {
			return amb("Content-Lengths that differ")
		}
	}
	return nil
}

// resolveConnect takes the authority-form target, port required. A Host
// field is optional (older clients omit it) but must name the same host,
// and the same port when it gives one.
func (h *RequestHead) resolveConnect() error {
	var err error
	if h.Dest, err = SplitHostPort(h.Target, ""); err != nil {
		return err
	}
	if h.Host == "" {
		return nil
	}
	hd, err := splitHostPort(h.Host, 0)
	if err != nil {
		return err
	}
	if hd.Host != h.Dest.Host || hd.Port != 0 && hd.Port != h.Dest.Port {
		return ErrHostMismatch
	}
	return nil
}

// resolveAbsolute takes a proxy-style absolute-form target, whose
// authority must equal Host once both are normalised with the target
// scheme's default port.
func (h *RequestHead) resolveAbsolute() error {
	scheme, rest, _ := strings.Cut(h.Target, "://")
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	td, err := SplitHostPort(auth, scheme)
	if err != nil {
		return err
	}
	h.Scheme = strings.ToLower(scheme)
	if h.Dest, err = SplitHostPort(h.Host, scheme); err != nil {
		return err
	}
	if td.Host != h.Dest.Host || td.Port != h.Dest.Port {
		return ErrHostMismatch
	}
	return nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// isToken reports whether s is an RFC 9110 token: 1*tchar.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
