package sniff

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
)

// captureHello is the first flight crypto/tls sends with cfg: a client
// handshake against a net.Pipe whose far end reads one record and hangs up.
func captureHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, cfg).Handshake()
		client.Close()
	}()
	var hdr [5]byte
	if _, err := io.ReadFull(server, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatal(err)
	}
	server.Close()
	<-done
	return append(hdr[:], body...)
}

// records splits a handshake message into records of at most size bytes.
func records(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, typeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// handshake wraps a ClientHello body in its handshake header.
func handshake(body []byte) []byte {
	n := len(body)
	return append([]byte{typeClientHello, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func u16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

func vec16(parts ...[]byte) []byte {
	b := slices.Concat(parts...)
	return append(u16(len(b)), b...)
}

func ext(typ int, data []byte) []byte { return slices.Concat(u16(typ), vec16(data)) }

func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, 0)
		list = append(list, vec16([]byte(n))...)
	}
	return ext(extServerName, vec16(list))
}

// helloBody is a TLS 1.2-shaped ClientHello body with the given extensions.
func helloBody(exts ...[]byte) []byte {
	b := slices.Concat([]byte{3, 3}, make([]byte, 32), []byte{0}, vec16([]byte{0x13, 0x01}), []byte{1, 0})
	return append(b, vec16(exts...)...)
}

func handMade(exts ...[]byte) []byte { return records(handshake(helloBody(exts...)), maxRecordLen) }

func TestReadClientHelloRealShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      *tls.Config
		sni      string
		alpn     []string
		tls13    bool
		wantErr  error
		wantSome bool // hello returned along with wantErr
	}{
		{"tls13 h2", &tls.Config{ServerName: "Example.COM.", NextProtos: []string{"h2", "http/1.1"}}, "example.com", []string{"h2", "http/1.1"}, true, nil, true},
		{"tls12 only", &tls.Config{ServerName: "api.example.org", MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, "api.example.org", []string{"http/1.1"}, false, nil, true},
		{"tls13 only", &tls.Config{ServerName: "x.example", MinVersion: tls.VersionTLS13}, "x.example", nil, true, nil, true},
		{"no sni", &tls.Config{InsecureSkipVerify: true}, "", nil, true, ErrNoSNI, true},
		{"ip server name", &tls.Config{ServerName: "127.0.0.1"}, "", nil, true, ErrNoSNI, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := captureHello(t, tt.cfg)
			r := bytes.NewReader(append(slices.Clone(in), "application data"...))
			h, raw, err := ReadClientHello(r, 0)
			if !errors.Is(err, tt.wantErr) || (h != nil) != tt.wantSome {
				t.Fatalf("hello %+v, err %v; want err %v", h, err, tt.wantErr)
			}
			if !bytes.Equal(raw, in) || r.Len() != len("application data") {
				t.Fatalf("raw is %d bytes, %d left unread; want the %d of the hello exactly", len(raw), r.Len(), len(in))
			}
			if h.ServerName != tt.sni || !slices.Equal(h.ALPN, tt.alpn) || h.ECH {
				t.Errorf("hello %+v; want SNI %q ALPN %q", h, tt.sni, tt.alpn)
			}
			if slices.Contains(h.SupportedVersions, tls.VersionTLS13) != tt.tls13 {
				t.Errorf("supported versions %x; want TLS 1.3 %v", h.SupportedVersions, tt.tls13)
			}
		})
	}
}

func TestReadClientHelloSplitRecords(t *testing.T) {
	t.Parallel()
	in := captureHello(t, &tls.Config{ServerName: "example.com", NextProtos: []string{"h2"}})
	for _, size := range []int{1, 2, 3, 4, 5, 100} {
		split := records(in[5:], size)
		h, raw, err := ReadClientHello(bytes.NewReader(split), 0)
		if err != nil || h.ServerName != "example.com" || !bytes.Equal(raw, split) {
			t.Errorf("%d-byte records: %+v, %v, raw equal %v", size, h, err, bytes.Equal(raw, split))
		}
	}
	// 1-byte records cost 5 bytes of header each: the cap counts them.
	if _, _, err := ReadClientHello(bytes.NewReader(records(in[5:], 1)), len(in)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("1-byte records over the cap: %v; want ErrTooLarge", err)
	}
}

// TestReadClientHelloTruncated cuts a real hello, whole and split into
// 1-byte records, at every offset: each prefix is an error, never a panic
// or a hello.
func TestReadClientHelloTruncated(t *testing.T) {
	t.Parallel()
	in := captureHello(t, &tls.Config{ServerName: "example.com", NextProtos: []string{"h2"}})
	for _, whole := range [][]byte{in, records(in[5:], 1)} {
		for i := range len(whole) {
			h, raw, err := ReadClientHello(bytes.NewReader(whole[:i]), 1<<20)
			if err == nil || h != nil || !bytes.Equal(raw, whole[:i]) {
				t.Fatalf("prefix of %d bytes: %+v, %v", i, h, err)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("prefix of %d bytes: %v; want an EOF", i, err)
			}
		}
	}
	// The same truncation inside the handshake length instead: the message
	// claims fewer bytes than the body holds, at every length.
	body := helloBody(sniExt("example.com"))
	for n := range len(body) {
		msg := append([]byte{typeClientHello, 0, byte(n >> 8), byte(n)}, body[:n]...)
		if h, _, err := ReadClientHello(bytes.NewReader(records(msg, maxRecordLen)), 0); err == nil || h != nil && !errors.Is(err, ErrNoSNI) {
			t.Fatalf("body cut at %d: %+v, %v", n, h, err)
		}
	}
}

func TestReadClientHelloRefuses(t *testing.T) {
	t.Parallel()
	ok := sniExt("example.com")
	overflow := handshake(helloBody(ok))
	overflow[len(handshake(nil))+2+32+1+4+2] = 0xff // extensions length high byte
	tests := []struct {
		name string
		in   []byte
		want error // nil: any *MalformedError
	}{
		{"empty input", nil, io.EOF},
		{"http", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), ErrNotTLS},
		{"application data record", []byte{23, 3, 3, 0, 1, 0}, ErrNotTLS},
		{"ssl3 record", slices.Concat([]byte{22, 3, 0}, handMade(ok)[3:]), ErrNotTLS},
		{"record version 0x0304", slices.Concat([]byte{22, 3, 4}, handMade(ok)[3:]), ErrNotTLS},
		{"zero-length record", []byte{22, 3, 1, 0, 0}, nil},
		{"record over 2^14", []byte{22, 3, 1, 0x40, 1}, nil},
		{"handshake of 16 MiB", records([]byte{1, 0xff, 0xff, 0xff, 0}, 5), ErrTooLarge},
		{"server hello", records([]byte{2, 0, 0, 1, 0}, 5), nil},
		{"alert inside hello", slices.Concat(records(handshake(helloBody(ok))[:10], 10), []byte{21, 3, 3, 0, 2, 2, 40}), nil},
		{"data after hello", records(append(handshake(helloBody(ok)), 0), maxRecordLen), nil},
		{"extensions length overflows", records(overflow, maxRecordLen), nil},
		{"two names", handMade(sniExt("a.example", "b.example")), nil},
		{"empty name", handMade(sniExt("")), nil},
		{"empty name list", handMade(ext(extServerName, vec16(nil))), nil},
		{"name list overflows", handMade(ext(extServerName, []byte{0xff, 0xff, 0, 0, 1, 'a'})), nil},
		{"name overflows", handMade(ext(extServerName, vec16([]byte{0, 0xff, 0xff, 'a'}))), nil},
		{"name type 1", handMade(ext(extServerName, vec16([]byte{1, 0, 1, 'a'}))), nil},
		{"name with NUL", handMade(sniExt("example.com\x00.evil")), nil},
		{"non-ASCII name", handMade(sniExt("exämple.com")), nil},
		{"IPv4 name", handMade(sniExt("10.0.0.1")), ErrIPLiteral},
		{"inet_aton name", handMade(sniExt("0x7f.1")), ErrIPLiteral},
		{"IPv6 name", handMade(sniExt("::1")), ErrIPLiteral},
		{"mapped IPv6 name", handMade(sniExt("::ffff:169.254.169.254")), ErrIPLiteral},
		{"server_name twice", handMade(ok, ok), nil},
		{"stray bytes in server_name", handMade(ext(extServerName, append(vec16(slices.Concat([]byte{0}, vec16([]byte("a.b")))), 0))), nil},
		{"empty ALPN list", handMade(ok, ext(extALPN, vec16(nil))), nil},
		{"empty ALPN name", handMade(ok, ext(extALPN, vec16([]byte{0}))), nil},
		{"odd supported_versions", handMade(ok, ext(extSupportedVersion, []byte{3, 3, 4, 3})), nil},
		{"no extensions", records(handshake(helloBody()[:len(helloBody())-2]), maxRecordLen), ErrNoSNI},
		{"no server_name", handMade(ext(extALPN, vec16([]byte{2, 'h', '2'}))), ErrNoSNI},
		{"session id of 33", records(handshake(slices.Concat([]byte{3, 3}, make([]byte, 32), []byte{33}, make([]byte, 33), vec16([]byte{0x13, 1}), []byte{1, 0}, vec16(ok))), maxRecordLen), nil},
		{"odd cipher suites", records(handshake(slices.Concat([]byte{3, 3}, make([]byte, 33), vec16([]byte{0x13}), []byte{1, 0}, vec16(ok))), maxRecordLen), nil},
		{"no compression", records(handshake(slices.Concat([]byte{3, 3}, make([]byte, 33), vec16([]byte{0x13, 1}), []byte{0}, vec16(ok))), maxRecordLen), nil},
	}
	for _, tt := range tests {
		_, raw, err := ReadClientHello(bytes.NewReader(tt.in), 0)
		if tt.want == nil && !isMalformed(err) || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: %v; want %v", tt.name, err, cmp(tt.want))
		}
		if !bytes.HasPrefix(tt.in, raw) {
			t.Errorf("%s: raw is not a prefix of the input", tt.name)
		}
	}
}

func cmp(want error) any {
	if want == nil {
		return "*MalformedError"
	}
	return want
}

func TestReadClientHelloHandMade(t *testing.T) {
	t.Parallel()
	in := handMade(sniExt("Svc.Example.NET."), ext(extECH, []byte{0, 1, 2}),
		ext(extALPN, vec16([]byte{2, 'h', '2'}, []byte{8}, []byte("http/1.1"))),
		ext(extSupportedVersion, []byte{4, 3, 4, 3, 3}), ext(0x4469, nil))
	h, _, err := ReadClientHello(bytes.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := ClientHello{ServerName: "svc.example.net", ECH: true, ALPN: []string{"h2", "http/1.1"},
		LegacyVersion: 0x0303, SupportedVersions: []uint16{0x0304, 0x0303}}
	if h.ServerName != want.ServerName || h.ECH != want.ECH || !slices.Equal(h.ALPN, want.ALPN) ||
		h.LegacyVersion != want.LegacyVersion || !slices.Equal(h.SupportedVersions, want.SupportedVersions) {
		t.Errorf("hello %+v; want %+v", h, want)
	}
	if _, _, err := ReadClientHello(bytes.NewReader(in), len(in)-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("max one byte short: %v; want ErrTooLarge", err)
	}
	if _, _, err := ReadClientHello(bytes.NewReader(in), len(in)); err != nil {
		t.Errorf("max exactly the hello: %v", err)
	}
}

func FuzzReadClientHello(f *testing.F) {
	real := captureHello(f, &tls.Config{ServerName: "example.com", NextProtos: []string{"h2", "http/1.1"}})
	f.Add(real)
	f.Add(records(real[5:], 7))
	f.Add(captureHello(f, &tls.Config{ServerName: "a.example", MaxVersion: tls.VersionTLS12}))
	f.Add(handMade(sniExt("a.example", "b.example")))
	f.Add(handMade(sniExt("0x7f.1"), ext(extECH, nil)))
	f.Add(records([]byte{1, 0xff, 0xff, 0xff, 0}, 5))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, raw, err := ReadClientHello(r, 4096)
		if !bytes.Equal(raw, in[:len(in)-r.Len()]) || len(raw) > 4096 {
			t.Fatalf("raw (%d bytes) is not the %d bytes consumed", len(raw), len(in)-r.Len())
		}
		if err != nil && !errors.Is(err, ErrNoSNI) {
			if h != nil {
				t.Fatalf("hello %+v with error %v", h, err)
			}
			return
		}
		if err == nil {
			d, perr := ParseHost(h.ServerName)
			if perr != nil || d.IsIP || d.Host != h.ServerName {
				t.Fatalf("accepted server name %q: %+v, %v", h.ServerName, d, perr)
			}
		}
	})
}
