package sniff

import (
	"errors"
	"net/netip"
	"testing"
)

func TestSplitHostPort(t *testing.T) {
	t.Parallel()
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		in, scheme string
		want       Destination
	}{
		{"Example.COM", "https", Destination{Host: "example.com", Port: 443}},
		{"example.com.", "http", Destination{Host: "example.com", Port: 80}},
		{"example.com.:8080", "http", Destination{Host: "example.com", Port: 8080}},
		{"a_b-c.example.com:443", "", Destination{Host: "a_b-c.example.com", Port: 443}},
		{"127.0.0.1", "http", Destination{Host: "127.0.0.1", Port: 80, IsIP: true, Addr: ip("127.0.0.1")}},
		{"127.1", "http", Destination{Host: "127.0.0.1", Port: 80, IsIP: true, Addr: ip("127.0.0.1")}},
		{"0x7f.1", "http", Destination{Host: "127.0.0.1", Port: 80, IsIP: true, Addr: ip("127.0.0.1")}},
		{"0X7F.0.0.1", "http", Destination{Host: "127.0.0.1", Port: 80, IsIP: true, Addr: ip("127.0.0.1")}},
		{"2130706433", "http", Destination{Host: "127.0.0.1", Port: 80, IsIP: true, Addr: ip("127.0.0.1")}},
		{"0177.0.0.1:81", "http", Destination{Host: "127.0.0.1", Port: 81, IsIP: true, Addr: ip("127.0.0.1")}},
		{"169.254.43518", "http", Destination{Host: "169.254.169.254", Port: 80, IsIP: true, Addr: ip("169.254.169.254")}},
		{"127.0.0.1.", "http", Destination{Host: "127.0.0.1", Port: 80, IsIP: true, Addr: ip("127.0.0.1")}},
		{"0x", "http", Destination{Host: "0.0.0.0", Port: 80, IsIP: true, Addr: ip("0.0.0.0")}},
		{"1.2.3.4.5", "http", Destination{Host: "1.2.3.4.5", Port: 80, IsIP: true}},
		{"256.1.1.1", "http", Destination{Host: "256.1.1.1", Port: 80, IsIP: true}},
		{"example.123", "http", Destination{Host: "example.123", Port: 80, IsIP: true}},
		{"09.1", "http", Destination{Host: "09.1", Port: 80, IsIP: true}},
		{"0x7f.0x1.example", "http", Destination{Host: "0x7f.0x1.example", Port: 80}},
		{"[::1]", "https", Destination{Host: "::1", Port: 443, IsIP: true, Addr: ip("::1")}},
		{"[::ffff:127.0.0.1]:8443", "https", Destination{Host: "127.0.0.1", Port: 8443, IsIP: true, Addr: ip("127.0.0.1")}},
		{"[2001:DB8::1]:80", "", Destination{Host: "2001:db8::1", Port: 80, IsIP: true, Addr: ip("2001:db8::1")}},
	}
	for _, tt := range tests {
		got, err := SplitHostPort(tt.in, tt.scheme)
		if err != nil || got != tt.want {
			t.Errorf("SplitHostPort(%q, %q) = %+v, %v; want %+v", tt.in, tt.scheme, got, err, tt.want)
		}
	}
}

func TestSplitHostPortRefuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", ":80", "example.com:", "example.com:0", "example.com:65536", "example.com:+80",
		"example.com:8o", "example.com:123456", "user@example.com", "user:pw@example.com:80",
		"::1", "[::1", "[::1]x", "[127.0.0.1]", "[fe80::1%eth0]", "a..b", ".a", "a.b..",
		"exa mple.com", "exa\x00mple.com", "exämple.com", "a%2eb", "*.example.com",
		"a\\b", string(make([]byte, 64)) + ".com",
	} {
		if d, err := SplitHostPort(in, "https"); !isMalformed(err) {
			t.Errorf("SplitHostPort(%q) = %+v, %v; want *MalformedError", in, d, err)
		}
	}
	if _, err := SplitHostPort("example.com", ""); !isMalformed(err) {
		t.Errorf("no port, no scheme: %v; want *MalformedError", err)
	}
	if _, err := SplitHostPort("example.com", "ftp"); !isMalformed(err) {
		t.Errorf("scheme ftp: %v; want *MalformedError", err)
	}
	long := "a"
	for len(long) < 254 {
		long += ".a"
	}
	if _, err := SplitHostPort(long, "http"); !isMalformed(err) {
		t.Errorf("%d-byte name: %v; want *MalformedError", len(long), err)
	}
}

func isMalformed(err error) bool {
	var m *MalformedError
	return errors.As(err, &m)
}

func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{
		"example.com", "Example.com.:443", "127.1", "0x7f.1", "2130706433", "[::ffff:127.0.0.1]:80",
		"[::1", "a..b", "user@host", "09.1", "1.2.3.4.5", "0x", "exämple.com",
	} {
		f.Add(s, "https")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, in, scheme string) {
		d, err := SplitHostPort(in, scheme)
		if err != nil {
			return
		}
		if d.Port == 0 {
			t.Fatalf("SplitHostPort(%q) = %+v: no port", in, d)
		}
		if d.Addr.IsValid() && (!d.IsIP || d.Host != d.Addr.String()) {
			t.Fatalf("SplitHostPort(%q) = %+v: Host is not Addr", in, d)
		}
		// Normalisation is idempotent: the result parses to itself.
		again, err := SplitHostPort(d.String(), "")
		if err != nil || again != d {
			t.Fatalf("SplitHostPort(%q) = %+v, but its String %q gives %+v, %v", in, d, d.String(), again, err)
		}
	})
}
