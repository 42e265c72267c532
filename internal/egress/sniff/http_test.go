package sniff

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readHead(in string, max int) (*RequestHead, []byte, string, error) {
	r := bufio.NewReader(strings.NewReader(in))
	h, raw, err := ReadHTTPRequestHead(r, max)
	rest, _ := io.ReadAll(r)
	return h, raw, string(rest), err
}

func TestReadHTTPRequestHead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in   string
		dest       string // Destination.String()
		isIP       bool
		host, body string
	}{
		{"origin form", "GET /x?y HTTP/1.1\r\nHost: Example.COM\r\nAccept: */*\r\n\r\n", "example.com:80", false, "Example.COM", ""},
		{"lowercase host field", "GET / HTTP/1.1\r\nhost: example.com.\r\n\r\nrest", "example.com:80", false, "example.com.", "rest"},
		{"uppercase host field", "GET / HTTP/1.0\r\nHOST:example.com:8080 \r\n\r\n", "example.com:8080", false, "example.com:8080", ""},
		{"post with length", "POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\nContent-Length: 04\r\n\r\nbody", "a.example:80", false, "a.example", "body"},
		{"chunked", "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "a.example:80", false, "a.example", "0\r\n\r\n"},
		{"absolute form", "GET http://A.example/p HTTP/1.1\r\nHost: a.example:80\r\n\r\n", "a.example:80", false, "a.example:80", ""},
		{"absolute https", "GET HTTPS://a.example:443?q HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example:443", false, "a.example", ""},
		{"absolute with port", "GET http://a.example:8080 HTTP/1.1\r\nHost: A.EXAMPLE.:8080\r\n\r\n", "a.example:8080", false, "A.EXAMPLE.:8080", ""},
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01", "example.com:443", false, "example.com:443", "\x16\x03\x01"},
		{"connect without host", "CONNECT example.com:8443 HTTP/1.0\r\n\r\n", "example.com:8443", false, "", ""},
		{"connect host without port", "CONNECT example.com:443 HTTP/1.1\r\nHost: Example.com\r\n\r\n", "example.com:443", false, "Example.com", ""},
		{"connect ipv6", "CONNECT [::1]:443 HTTP/1.1\r\n\r\n", "[::1]:443", true, "", ""},
		{"ip host flagged", "GET / HTTP/1.1\r\nHost: 2130706433\r\n\r\n", "127.0.0.1:80", true, "2130706433", ""},
		{"options star", "OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example:80", false, "a.example", ""},
		{"obs-text value", "GET / HTTP/1.1\r\nHost: a.example\r\nX: caf\xe9\t\r\n\r\n", "a.example:80", false, "a.example", ""},
	}
	// Scheme is set for the absolute forms only, lower case.
	schemes := map[string]string{"absolute form": "http", "absolute https": "https", "absolute with port": "http"}
	for _, tt := range tests {
		h, raw, rest, err := readHead(tt.in, 0)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if h.Scheme != schemes[tt.name] {
			t.Errorf("%s: Scheme %q, want %q", tt.name, h.Scheme, schemes[tt.name])
		}
		if h.Dest.String() != tt.dest || h.Dest.IsIP != tt.isIP || h.Host != tt.host {
			t.Errorf("%s: %+v; want dest %s IsIP %v Host %q", tt.name, h, tt.dest, tt.isIP, tt.host)
		}
		if string(raw)+rest != tt.in || rest != tt.body {
			t.Errorf("%s: raw %q, left %q; want the head, then %q", tt.name, raw, rest, tt.body)
		}
	}
}

func TestReadHTTPRequestHeadRefuses(t *testing.T) {
	t.Parallel()
	amb := errors.New("ambiguous, as *MalformedError")
	tests := []struct {
		name, in string
		want     error // nil: any *MalformedError
	}{
		{"empty", "", io.EOF},
		{"cut in line", "GET / HT", io.ErrUnexpectedEOF},
		{"cut in headers", "GET / HTTP/1.1\r\nHost: a\r\n", io.ErrUnexpectedEOF},
		{"http/0.9", "GET /\r\n", ErrHTTP09},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ErrHTTP2},
		{"http/2.0 version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", nil},
		{"http/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", nil},
		{"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", nil},
		{"tls", "\x16\x03\x01\x00\x05hello", nil},
		{"bare LF request line", "GET / HTTP/1.1\nHost: a\n\n", nil},
		{"bare LF header", "GET / HTTP/1.1\r\nHost: a\n\r\n", nil},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", nil},
		{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"control in target", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", nil},
		{"no host", "GET / HTTP/1.1\r\n\r\n", ErrNoHost},
		{"absolute without host", "GET http://a.example/ HTTP/1.1\r\n\r\n", ErrNoHost},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", amb},
		{"two equal hosts", "GET / HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n", amb},
		{"host with userinfo", "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n", nil},
		{"target with userinfo", "GET http://u:p@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"host list", "GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", nil},
		{"empty host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", nil},
		{"absolute mismatch", "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", ErrHostMismatch},
		{"absolute port mismatch", "GET http://a.example/ HTTP/1.1\r\nHost: a.example:443\r\n\r\n", ErrHostMismatch},
		{"https default port mismatch", "GET https://a.example/ HTTP/1.1\r\nHost: a.example:80\r\n\r\n", ErrHostMismatch},
		{"absolute empty authority", "GET http:///x HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"fragment in target", "GET /x#y HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"fragment ends authority", "GET http://a.example#@b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"connect mismatch", "CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", ErrHostMismatch},
		{"connect port mismatch", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:8443\r\n\r\n", ErrHostMismatch},
		{"connect without port", "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"connect origin form", "CONNECT / HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"get authority form", "GET a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"star for get", "GET * HTTP/1.1\r\nHost: a.example\r\n\r\n", nil},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a.example\r\nX: a\r\n b\r\n\r\n", nil},
		{"fold before host", "GET / HTTP/1.1\r\n Host: a.example\r\n\r\n", nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", amb},
		{"tab before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n", amb},
		{"no colon", "GET / HTTP/1.1\r\nHost a.example\r\n\r\n", nil},
		{"bad header name", "GET / HTTP/1.1\r\nHo(st: a.example\r\n\r\n", nil},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a.example\r\nX: a\x00b\r\n\r\n", nil},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", amb},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n", amb},
		{"differing CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", amb},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n", nil},
		{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n", nil},
		{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", nil},
		{"TE in 1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", amb},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", DefaultMax) + "\r\n\r\n", ErrTooLarge},
	}
	for _, tt := range tests {
		h, raw, rest, err := readHead(tt.in, 0)
		switch {
		case tt.want == amb:
			var m *MalformedError
			if !errors.Is(err, ErrAmbiguous) || !errors.As(err, &m) {
				t.Errorf("%s: %+v, %v; want ErrAmbiguous", tt.name, h, err)
			}
		case tt.want == nil && !isMalformed(err), tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("%s: %+v, %v; want %v", tt.name, h, err, cmp(tt.want))
		}
		if h != nil || string(raw)+rest != tt.in || len(raw) > DefaultMax {
			t.Errorf("%s: head %+v, raw %d bytes: not the consumed prefix", tt.name, h, len(raw))
		}
	}
}

// TestReadHTTPRequestHeadCap: the cap stops reading at max bytes exactly,
// and a head of exactly max bytes passes.
func TestReadHTTPRequestHeadCap(t *testing.T) {
	t.Parallel()
	in := "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"
	if _, raw, _, err := readHead(in, len(in)); err != nil || string(raw) != in {
		t.Errorf("head of exactly max: %v", err)
	}
	if _, raw, _, err := readHead(in, len(in)-1); !errors.Is(err, ErrTooLarge) || len(raw) != len(in)-1 {
		t.Errorf("one byte over: %v after %d bytes; want ErrTooLarge after %d", err, len(raw), len(in)-1)
	}
}

func FuzzReadHTTPRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET http://a.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\nbody",
		"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET /\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		h, raw, err := ReadHTTPRequestHead(r, 1024)
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(append(raw, rest...), in) || len(raw) > 1024 {
			t.Fatalf("raw %q and rest %q are not the input", raw, rest)
		}
		if (err == nil) != (h != nil) {
			t.Fatalf("head %+v with error %v", h, err)
		}
		if err == nil && (h.Dest.Port == 0 || h.Dest.Host == "" || !bytes.HasSuffix(raw, []byte("\r\n\r\n"))) {
			t.Fatalf("accepted %q as %+v", raw, h)
		}
	})
}
