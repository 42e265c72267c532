package sniff

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

const (
	recordHeaderLen     = 5
	maxRecordLen        = 1 << 14 // TLSPlaintext.length, RFC 8446 §5.1
	typeHandshake       = 22
	typeClientHello     = 1
	extServerName       = 0
	extALPN             = 16
	extSupportedVersion = 43
	extECH              = 0xfe0d
)

// ClientHello is what the proxy needs from a client's first flight.
type ClientHello struct {
	// ServerName is the SNI host_name, normalised as ParseHost does
	// (lower case, no trailing dot). With ECH it is the outer, public name.
	ServerName string
	ALPN       []string // application protocols in the client's order
	// ECH reports an encrypted_client_hello extension: the real name is
	// encrypted and ServerName is only the client-facing server's.
	ECH               bool
	LegacyVersion     uint16   // client_version of the hello body
	SupportedVersions []uint16 // extension 43; empty before TLS 1.3
}

// ReadClientHello reads TLS handshake records from r until one complete
// ClientHello is assembled, and parses it. raw is every byte read, whether
// or not err is nil, for the proxy to replay to the upstream; nothing past
// the last record is read. max caps len(raw) (DefaultMax when max <= 0).
//
// A hello without server_name returns the parsed hello with ErrNoSNI; an
// IP literal as server name returns ErrIPLiteral. Both are refusals.
func ReadClientHello(r io.Reader, max int) (hello *ClientHello, raw []byte, err error) {
	if max <= 0 {
		max = DefaultMax
	}
	var msg []byte // the handshake message, reassembled across records
	for {
		var hdr [recordHeaderLen]byte
		if raw, err = readMore(r, raw, hdr[:], max); err != nil {
			return nil, raw, err
		}
		if err := checkRecordHeader(hdr, len(msg) == 0); err != nil {
			return nil, raw, err
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if raw, err = readMore(r, raw, body, max); err != nil {
			return nil, raw, err
		}
		msg = append(msg, body...)
		if len(msg) < 4 {
			continue
		}
		if msg[0] != typeClientHello {
			return nil, raw, malformed("first handshake message is not a ClientHello")
		}
		n := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
		if n+recordHeaderLen > max {
			return nil, raw, ErrTooLarge
		}
		if len(msg) > n {
			return nil, raw, malformed("data after the ClientHello")
		}
		if len(msg) == n {
			hello, err = parseClientHello(msg[4:])
			return hello, raw, err
		}
	}
}

// readMore fills buf from r and appends it to raw, refusing to go past max.
func readMore(r io.Reader, raw, buf []byte, max int) ([]byte, error) {
	if len(raw)+len(buf) > max {
		return raw, ErrTooLarge
	}
	n, err := io.ReadFull(r, buf)
	raw = append(raw, buf[:n]...)
	if err != nil {
		return raw, fmt.Errorf("read TLS record: %w", err)
	}
	return raw, nil
}

// checkRecordHeader admits handshake records of TLS 1.0 to 1.2 record
// versions (1.3 keeps 0x0303 there) with 1 to 2^14 bytes. A first record
// that fails is ErrNotTLS: the client speaks something else.
func checkRecordHeader(hdr [recordHeaderLen]byte, first bool) error {
	v := binary.BigEndian.Uint16(hdr[1:])
	if hdr[0] != typeHandshake || v < 0x0301 || v > 0x0303 {
		if first {
			return ErrNotTLS
		}
		return malformed("record of type " + strconv.Itoa(int(hdr[0])) + " inside the ClientHello")
	}
	if n := binary.BigEndian.Uint16(hdr[3:]); n == 0 || n > maxRecordLen {
		return malformed("record length " + strconv.Itoa(int(n)))
	}
	return nil
}

// parseClientHello reads a ClientHello body, RFC 8446 §4.1.2 (TLS 1.2's
// shape is the same, with extensions optional).
func parseClientHello(b []byte) (*ClientHello, error) {
	c := cursor{b: b}
	h := &ClientHello{LegacyVersion: c.u16()}
	c.skip(32) // random
	if sid := c.vec8(); len(sid.b) > 32 {
		return nil, malformed("legacy_session_id longer than 32 bytes")
	}
	if cs := c.vec16(); len(cs.b) < 2 || len(cs.b)%2 != 0 {
		if c.err == nil {
			return nil, malformed("cipher_suites length")
		}
	}
	if cm := c.vec8(); len(cm.b) < 1 && c.err == nil {
		return nil, malformed("empty legacy_compression_methods")
	}
	if c.err != nil {
		return nil, c.err
	}
	if len(c.b) == 0 {
		return h, ErrNoSNI // TLS 1.2 hello without extensions
	}
	exts := c.vec16()
	if err := c.end("ClientHello"); err != nil {
		return nil, err
	}
	sni, err := h.parseExtensions(exts)
	if err != nil {
		return nil, err
	}
	if !sni {
		return h, ErrNoSNI
	}
	return h, nil
}

// parseExtensions fills h and reports whether server_name was present.
// A type seen twice is refused, as crypto/tls and RFC 8446 §4.2 refuse it.
func (h *ClientHello) parseExtensions(exts cursor) (sni bool, err error) {
	seen := map[uint16]bool{}
	for len(exts.b) > 0 && exts.err == nil {
		typ := exts.u16()
		data := exts.vec16()
		if exts.err != nil {
			break
		}
		if seen[typ] {
			return false, malformed("extension " + strconv.Itoa(int(typ)) + " twice")
		}
		seen[typ] = true
		switch typ {
		case extServerName:
			h.ServerName, err = parseServerName(data)
		case extALPN:
			h.ALPN, err = parseALPN(data)
		case extSupportedVersion:
			h.SupportedVersions, err = parseVersions(data)
		case extECH:
			h.ECH = true
		}
		if err != nil {
			return false, err
		}
	}
	if exts.err != nil {
		return false, exts.err
	}
	return seen[extServerName], nil
}

// parseServerName reads a ServerNameList (RFC 6066 §3) holding exactly one
// host_name. RFC 6066 forbids IP literals there; a client that sends one
// is refused rather than trusted with an address.
func parseServerName(data cursor) (string, error) {
	list := data.vec16()
	if err := data.end("server_name"); err != nil {
		return "", err
	}
	typ := list.u8()
	name := list.vec16()
	if list.err != nil {
		return "", list.err
	}
	if len(list.b) > 0 {
		return "", malformed("server_name list with more than one name")
	}
	if typ != 0 {
		return "", malformed("server_name entry of unknown type " + strconv.Itoa(int(typ)))
	}
	d, err := ParseHost(string(name.b))
	if err != nil {
		return "", err
	}
	if d.IsIP {
		return "", ErrIPLiteral
	}
	return d.Host, nil
}

// parseALPN reads a ProtocolNameList (RFC 7301 §3.1): at least one name,
// none empty.
func parseALPN(data cursor) ([]string, error) {
	list := data.vec16()
	if err := data.end("ALPN"); err != nil {
		return nil, err
	}
	if len(list.b) == 0 {
		return nil, malformed("empty ALPN list")
	}
	var protos []string
	for len(list.b) > 0 {
		p := list.vec8()
		if list.err != nil {
			return nil, list.err
		}
		if len(p.b) == 0 {
			return nil, malformed("empty ALPN protocol name")
		}
		protos = append(protos, string(p.b))
	}
	return protos, nil
}

// parseVersions reads the ClientHello form of supported_versions
// (RFC 8446 §4.2.1): 1 to 127 two-byte versions.
func parseVersions(data cursor) ([]uint16, error) {
	list := data.vec8()
	if err := data.end("supported_versions"); err != nil {
		return nil, err
	}
	if len(list.b) < 2 || len(list.b)%2 != 0 {
		return nil, malformed("supported_versions length")
	}
	var vs []uint16
	for len(list.b) > 0 {
		vs = append(vs, list.u16())
	}
	return vs, nil
}

// cursor reads big-endian fields off a byte slice. The first read past the
// end sets err and every later read returns zeros, so parsers check once.
type cursor struct {
	b   []byte
	err error
}

func (c *cursor) take(n int) []byte {
	if c.err != nil || n > len(c.b) {
		if c.err == nil {
			c.err = malformed("length beyond the end of its container")
		}
		c.b = nil
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) skip(n int) { c.take(n) }

func (c *cursor) u8() uint8 {
	if v := c.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (c *cursor) u16() uint16 {
	if v := c.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

// vec8 and vec16 read a vector with a one- or two-byte length prefix.
func (c *cursor) vec8() cursor  { return cursor{b: c.take(int(c.u8()))} }
func (c *cursor) vec16() cursor { return cursor{b: c.take(int(c.u16()))} }

// end refuses bytes left over after the last field of what.
func (c *cursor) end(what string) error {
	if c.err != nil {
		return c.err
	}
	if len(c.b) != 0 {
		return malformed(strconv.Itoa(len(c.b)) + " stray bytes after " + what)
	}
	return nil
}
