package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/sniff"
)

func TestBodyFraming(t *testing.T) {
	cases := []struct {
		head string
		want framing
		bad  bool
	}{
		{"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", framing{}, false},
		{"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 012\r\n\r\n", framing{length: 12}, false},
		{"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: Chunked\r\n\r\n", framing{chunked: true}, false},
		{"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n", framing{}, true},
		{"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", framing{}, true},
		{"GET / HTTP/1.1\r\nHost: a.test\r\nupgrade: h2c\r\n\r\n", framing{}, true},
		{"GET / HTTP/1.1\r\nHost: a.test\r\nContent_Length: 5\r\n\r\n", framing{}, true},
		{"GET / HTTP/1.1\r\nHost: a.test\r\nX_Host: b.test\r\n\r\n", framing{}, false},
	}
	for _, tc := range cases {
		// Only heads sniff accepts reach bodyFraming.
		if _, _, err := sniff.ReadHTTPRequestHead(bufio.NewReader(strings.NewReader(tc.head)), 0); err != nil {
			t.Fatalf("%q: sniff: %v", tc.head, err)
		}
		f, err := bodyFraming([]byte(tc.head))
		if tc.bad != (err != nil) || f != tc.want {
			t.Errorf("%q: %+v, %v", tc.head, f, err)
		}
	}
}

func TestCopyBody(t *testing.T) {
	cases := []struct {
		in   string
		f    framing
		body string // what is copied; the rest stays in the reader
		bad  bool
	}{
		{"abcNEXT", framing{length: 3}, "abc", false},
		{"NEXT", framing{}, "", false},
		{"3\r\nabc\r\n0\r\n\r\nNEXT", framing{chunked: true}, "3\r\nabc\r\n0\r\n\r\n", false},
		{"A;ext=1\r\n0123456789\r\n0\r\nT: v\r\n\r\nNEXT", framing{chunked: true}, "A;ext=1\r\n0123456789\r\n0\r\nT: v\r\n\r\n", false},
		{"3\r\nabcd\r\n0\r\n\r\n", framing{chunked: true}, "", true},
		{"3\nabc\r\n0\r\n\r\n", framing{chunked: true}, "", true},
		{"-3\r\nabc\r\n", framing{chunked: true}, "", true},
		{"fffffffffffffffff\r\n", framing{chunked: true}, "", true},
		{"0\r\nbad trailer\r\n\r\n", framing{chunked: true}, "", true},
		{"3\r\nab", framing{chunked: true}, "", true},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		r := bufio.NewReader(strings.NewReader(tc.in))
		err := copyBody(&out, r, tc.f)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			}
			continue
		}
		rest, _ := r.Peek(r.Buffered())
		if err != nil || out.String() != tc.body || string(rest) != "NEXT" && tc.in != "NEXT" {
			t.Errorf("%q: copied %q, left %q, %v", tc.in, out.String(), rest, err)
		}
	}
}

func TestReachable(t *testing.T) {
	p, err := New(Config{
		Policy:     allow.Policy{TestPublic: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		LocalAddrs: func() ([]netip.Addr, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	hostPublic := netip.MustParseAddr("8.8.4.4")
	n := never{local: []netip.Addr{loopback, hostPublic}, blocked: []netip.Addr{netip.MustParseAddr("1.1.1.1"), loopback}}
	for a, want := range map[string]bool{
		"1.1.1.1":          false, // public, but Blocked (a NATS server)
		"64:ff9b::101:101": false, // NAT64 of it
		"127.0.0.1":        false, // TestPublic, but Blocked
		"8.8.4.4":          false, // public, but this host's own
		"8.8.8.8":          true,
		"10.0.0.1":         false,
		"127.0.0.2":        false,
		"169.254.169.254":  false,
		"::1":              false,
		"64:ff9b::808:404": false, // NAT64 of this host's 8.8.4.4
		"2002:808:404::1":  false, // 6to4 of it
		"64:ff9b::808:808": true,
	} {
		if got := p.reachable(netip.MustParseAddr(a), n); got != want {
			t.Errorf("reachable(%s) = %v", a, got)
		}
	}
	if !p.reachable(loopback, never{local: n.local}) {
		t.Error("127.0.0.1 is TestPublic, local and not Blocked: want reachable")
	}
	// The Control hook refuses the same addresses, and fails closed when
	// the host's addresses cannot be listed.
	if err := p.control("tcp4", "10.0.0.1:80", nil); !errors.Is(err, errUnreachable) {
		t.Errorf("control 10.0.0.1: %v", err)
	}
	p.local = func() ([]netip.Addr, error) { return nil, errors.New("no interfaces") }
	if err := p.control("tcp4", "8.8.8.8:80", nil); err == nil {
		t.Error("control passed without the local addresses")
	}
}

// recordingResolver records the names it is asked for.
type recordingResolver struct{ asked []string }

func (r *recordingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, host)
	return nil, nil
}

// TestRootedLookup: the default resolver is asked for rooted names, so the
// host's search domains never turn a listed name into another.
func TestRootedLookup(t *testing.T) {
	rec := &recordingResolver{}
	if _, err := (rooted{rec}).LookupNetIP(t.Context(), "ip", "api.example.com"); err != nil {
		t.Fatal(err)
	}
	if len(rec.asked) != 1 || rec.asked[0] != "api.example.com." {
		t.Fatalf("asked %q, want the rooted name", rec.asked)
	}
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.resolver.(rooted); !ok {
		t.Fatalf("default resolver %T, want rooted", p.resolver)
	}
}
