package allow

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    []string
		admin bool
		want  []string
	}{
		{[]string{"example.com"}, false, []string{"example.com"}},
		{[]string{"API.Example.COM."}, false, []string{"api.example.com"}},
		{[]string{"example.com:8443"}, false, []string{"example.com:8443"}},
		{[]string{"example.com:1", "example.com:65535"}, false, []string{"example.com:1", "example.com:65535"}},
		{[]string{"example.com:08443"}, false, []string{"example.com:8443"}},
		{[]string{"*.example.com"}, false, []string{"*.example.com"}},
		{[]string{"*.Example.com.:443"}, false, []string{"*.example.com:443"}},
		{[]string{"xn--bcher-kva.example"}, false, []string{"xn--bcher-kva.example"}},
		{[]string{"a-b.c0.io"}, false, []string{"a-b.c0.io"}},
		{[]string{"1.2.3.example.com"}, false, []string{"1.2.3.example.com"}},
		{[]string{strings.Repeat("a", 63) + ".com"}, false, []string{strings.Repeat("a", 63) + ".com"}},
		{[]string{"b.com", "a.com", "A.com.", "a.com"}, false, []string{"a.com", "b.com"}},
		{[]string{"a.com", "a.com:443"}, false, []string{"a.com", "a.com:443"}},
		{nil, false, []string{}},
		// Addresses and CIDRs, admin only.
		{[]string{"203.0.113.7"}, true, []string{"203.0.113.7"}},
		{[]string{"203.0.113.7:443"}, true, []string{"203.0.113.7:443"}},
		{[]string{"203.0.113.7/32"}, true, []string{"203.0.113.7"}},
		{[]string{"10.0.0.0/8"}, true, []string{"10.0.0.0/8"}},
		{[]string{"10.0.0.0/8:5432"}, true, []string{"10.0.0.0/8:5432"}},
		{[]string{"0.0.0.0/0"}, true, []string{"0.0.0.0/0"}},
		{[]string{"2001:DB8::1"}, true, []string{"2001:db8::1"}},
		{[]string{"[2001:db8::1]"}, true, []string{"2001:db8::1"}},
		{[]string{"[2001:db8::1]:443"}, true, []string{"[2001:db8::1]:443"}},
		{[]string{"2001:db8::/32"}, true, []string{"2001:db8::/32"}},
		{[]string{"[2001:db8::/32]"}, true, []string{"2001:db8::/32"}},
		{[]string{"[2001:db8::/32]:443"}, true, []string{"[2001:db8::/32]:443"}},
		{[]string{"2001:db8::1/128", "[2001:db8:0::1]"}, true, []string{"2001:db8::1"}},
	}
	for _, tt := range tests {
		l, err := Parse(tt.in, tt.admin)
		if err != nil {
			t.Errorf("Parse(%q, %v): %v", tt.in, tt.admin, err)
			continue
		}
		if got := l.Entries(); !slices.Equal(got, tt.want) {
			t.Errorf("Parse(%q).Entries() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseMaxEntries(t *testing.T) {
	t.Parallel()
	var in []string
	for i := range MaxEntries {
		in = append(in, fmt.Sprintf("h%d.example.com", i))
	}
	if l, err := Parse(in, false); err != nil || l.Len() != MaxEntries {
		t.Fatalf("Parse of %d entries: %v", MaxEntries, err)
	}
	in = append(in, "one-more.example.com")
	_, err := Parse(in, false)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Index != MaxEntries || !strings.Contains(ee.Reason, "more than 64") {
		t.Errorf("Parse of %d entries = %v, want an EntryError at index %d", len(in), err, MaxEntries)
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 63)
	name253 := strings.Join([]string{long, long, long, strings.Repeat("a", 61)}, ".") // 253 bytes
	tests := []struct {
		entry  string
		admin  bool
		reason string // substring; "ADMIN" for *AdminOnlyError
	}{
		{"", false, "empty entry"},
		{"dns.example.com:53", false, "port 53"},
		{"10.0.0.1:53", true, "port 53"},
		{"[2001:db8::1]:53", true, "port 53"},
		{strings.Repeat("a", MaxEntryLen+1), false, "longer than 261"},
		{"localhost", false, "single-label"},
		{"intranet.", false, "single-label"},
		{"*.com", false, "at least two labels"},
		{"*.com.", false, "at least two labels"},
		{"*", false, "not allowed"},
		{"a.*.com", false, "not allowed"},
		{"*.*.a.com", false, "not allowed"},
		{"**.a.com", false, "not allowed"},
		{"*a.com", false, "not allowed"},
		{"a..com", false, "empty label"},
		{".a.com", false, "empty label"},
		{"a.com..", false, "empty label"},
		{".", false, "empty host"},
		{":443", false, "empty host"},
		{"-a.com", false, "starts or ends"},
		{"a-.com", false, "starts or ends"},
		{long + "a.com", false, "longer than 63"},
		{name253 + ".b", false, "longer than 253"},
		{"a_b.com", false, "not allowed"},
		{"a b.com", false, "not allowed"},
		{"bücher.example", false, "punycode"},
		{"\u212a.com", false, "punycode"}, // Kelvin sign, lowercases to "k"
		{"example.com:0", false, "port"},
		{"example.com:65536", false, "port"},
		{"example.com:", false, "port"},
		{"example.com:+443", false, "port"},
		{"example.com:44a", false, "port"},
		{"example.com:443:1", false, "more than one"},
		{"a.com/x", false, "only for CIDRs"},
		{"1.2.3.4.5", false, "looks like an IP"},
		{"10.1", false, "looks like an IP"},
		{"10.1:443", false, "looks like an IP"},
		{"a.0x7f", false, "looks like an IP"},
		{"example.123", false, "looks like an IP"},
		// Addresses: admin only, and checked when admin.
		{"203.0.113.7", false, "ADMIN"},
		{"203.0.113.7:443", false, "ADMIN"},
		{"10.0.0.0/8", false, "ADMIN"},
		{"2001:db8::1", false, "ADMIN"},
		{"[2001:db8::1]:443", false, "ADMIN"},
		{"[2001:db8::/32]:443", false, "ADMIN"},
		{"10.0.0.1/8", true, "did you mean 10.0.0.0/8"},
		{"10.0.0.0/33", true, "not a valid CIDR"},
		{"10.0.0.0/8:0", true, "port"},
		{"[10.0.0.1]:443", true, "IPv6 only"},
		{"[2001:db8::1]443", true, "after \"]\""},
		{"[2001:db8::1", true, "missing"},
		{"[zz::1]", true, "not a valid IP"},
		{"fe80::1%eth0", true, "zone"},
		{"[fe80::1%eth0]:443", true, "zone"},
		{"::ffff:10.0.0.1", true, "IPv4-mapped"},
		{"2001:db8::1:443", true, ""}, // a bare v6 address: valid, see below
	}
	for _, tt := range tests {
		if tt.reason == "" {
			continue
		}
		_, err := Parse([]string{"ok.example.com", tt.entry}, tt.admin)
		var ee *EntryError
		var ae *AdminOnlyError
		switch {
		case tt.reason == "ADMIN":
			if !errors.As(err, &ae) || ae.Index != 1 || ae.Entry != tt.entry {
				t.Errorf("Parse(%q) = %v, want an AdminOnlyError at index 1", tt.entry, err)
			}
		case !errors.As(err, &ee) || ee.Index != 1 || ee.Entry != tt.entry || !strings.Contains(ee.Reason, tt.reason):
			t.Errorf("Parse(%q, admin %v) = %v, want an EntryError at index 1 with %q", tt.entry, tt.admin, err, tt.reason)
		case !strings.HasPrefix(err.Error(), "egress[1] "):
			t.Errorf("error %q does not name egress[1]", err)
		}
	}
	// A bare IPv6 address never takes a port: the last group is part of it.
	l, err := Parse([]string{"2001:db8::1:443"}, true)
	if err != nil || l.String() != "2001:db8::1:443" || !l.AllowsIP(netip.MustParseAddr("2001:db8::1:443"), 80) {
		t.Errorf("bare v6 = %v, %v", l, err)
	}
}

func TestEntryLengthBound(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 63)
	name253 := strings.Join([]string{long, long, long, strings.Repeat("a", 61)}, ".")
	e := "*." + name253 + ":65535"
	if len(e) != MaxEntryLen {
		t.Fatalf("test entry is %d bytes", len(e))
	}
	if _, err := Parse([]string{e}, false); err != nil {
		t.Errorf("the longest entry: %v", err)
	}
}

func mustParse(t *testing.T, admin bool, entries ...string) *List {
	t.Helper()
	l, err := Parse(entries, admin)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAllowsName(t *testing.T) {
	t.Parallel()
	l := mustParse(t, true, "api.example.com", "*.cdn.example.net", "git.example.org:22", "*.svc.example.io:8443", "203.0.113.0/24")
	tests := []struct {
		host string
		port int
		want bool
	}{
		{"api.example.com", 443, true},
		{"api.example.com", 80, true},
		{"API.EXAMPLE.COM.", 443, true},
		{"api.example.com", 8080, false},
		{"api.example.com..", 443, false},
		{"x.api.example.com", 443, false},
		{"example.com", 443, false},
		{"api.example.com.evil.com", 443, false},
		{"evilapi.example.com", 443, false},
		{"a.cdn.example.net", 443, true},
		{"a.b.c.cdn.example.net", 80, true},
		{"A.Cdn.Example.Net.", 443, true},
		{"cdn.example.net", 443, false},
		{"xcdn.example.net", 443, false},
		{"a.cdn.example.net", 22, false},
		{"git.example.org", 22, true},
		{"git.example.org", 443, false},
		{"x.svc.example.io", 8443, true},
		{"x.svc.example.io", 443, false},
		{"203.0.113.7", 443, false},
		{"[203.0.113.7]", 443, false},
		{"api.example.com", 0, false},
		{"api.example.com", 65536, false},
		{"", 443, false},
		{"*.cdn.example.net", 443, false},
		{"a_b.cdn.example.net", 443, false},
		{"\u212a.cdn.example.net", 443, false},
	}
	for _, tt := range tests {
		if got := l.AllowsName(tt.host, tt.port); got != tt.want {
			t.Errorf("AllowsName(%q, %d) = %v, want %v", tt.host, tt.port, got, tt.want)
		}
	}
	var empty *List
	if empty.AllowsName("api.example.com", 443) {
		t.Error("a nil list allows a name")
	}
}

func TestAllowsIP(t *testing.T) {
	t.Parallel()
	l := mustParse(t, true, "203.0.113.0/24", "198.51.100.7:5432", "[2001:db8::/32]:443", "api.example.com")
	tests := []struct {
		ip   string
		port int
		want bool
	}{
		{"203.0.113.0", 443, true},
		{"203.0.113.255", 80, true},
		{"203.0.114.0", 443, false},
		{"203.0.112.255", 443, false},
		{"203.0.113.1", 22, false},
		{"::ffff:203.0.113.1", 443, true},
		{"198.51.100.7", 5432, true},
		{"198.51.100.7", 443, false},
		{"198.51.100.8", 5432, false},
		{"2001:db8::1", 443, true},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 443, true},
		{"2001:db9::", 443, false},
		{"2001:db8::1", 80, false},
		{"fe80::1%eth0", 443, false},
		{"203.0.113.1", 0, false},
	}
	for _, tt := range tests {
		if got := l.AllowsIP(netip.MustParseAddr(tt.ip), tt.port); got != tt.want {
			t.Errorf("AllowsIP(%s, %d) = %v, want %v", tt.ip, tt.port, got, tt.want)
		}
	}
	if l.AllowsIP(netip.Addr{}, 443) {
		t.Error("the zero Addr is allowed")
	}
	names := mustParse(t, false, "api.example.com")
	if names.AllowsIP(netip.MustParseAddr("203.0.113.1"), 443) {
		t.Error("a name entry allows an address")
	}
}

func TestWithin(t *testing.T) {
	t.Parallel()
	parent := mustParse(t, true, "*.a.com", "exact.b.com", "c.com:8443", "d.com:443", "d.com:80",
		"10.0.0.0/8", "[2001:db8::/32]:443", "*.e.com:22")
	tests := []struct {
		child []string
		want  bool
	}{
		{nil, true},
		{[]string{"x.a.com"}, true},
		{[]string{"X.A.COM.", "y.z.a.com:80"}, true},
		{[]string{"*.a.com"}, true},
		{[]string{"*.x.a.com"}, true},
		{[]string{"*.x.a.com:443"}, true},
		{[]string{"a.com"}, false},
		{[]string{"x.a.com:8080"}, false},
		{[]string{"exact.b.com"}, true},
		{[]string{"exact.b.com:443"}, true},
		{[]string{"exact.b.com:22"}, false},
		{[]string{"*.exact.b.com"}, false},
		{[]string{"x.exact.b.com"}, false},
		{[]string{"c.com:8443"}, true},
		{[]string{"c.com"}, false},
		{[]string{"c.com:443"}, false},
		{[]string{"d.com"}, true}, // 443 and 80, each by its own entry
		{[]string{"x.e.com:22"}, true},
		{[]string{"x.e.com"}, false},
		{[]string{"10.1.2.3"}, true},
		{[]string{"10.1.0.0/16:443"}, true},
		{[]string{"10.1.0.0/16:5432"}, false},
		{[]string{"10.0.0.0/8"}, true},
		{[]string{"10.0.0.0/7"}, false},
		{[]string{"11.0.0.1"}, false},
		{[]string{"[2001:db8::1]:443"}, true},
		{[]string{"2001:db8::1"}, false},
		{[]string{"[2001:db8::/31]:443"}, false},
		{[]string{"x.a.com", "z.com"}, false},
	}
	for _, tt := range tests {
		child := mustParse(t, true, tt.child...)
		if got := child.Within(parent); got != tt.want {
			t.Errorf("%q.Within(parent) = %v, want %v", tt.child, got, tt.want)
		}
	}
	// An exact entry does not cover a wildcard, nor a name an address.
	if mustParse(t, false, "*.a.com").Within(mustParse(t, false, "x.a.com", "a.com")) {
		t.Error("exact entries cover a wildcard")
	}
	if mustParse(t, true, "10.0.0.1").Within(mustParse(t, false, "a.com")) {
		t.Error("a name covers an address")
	}
	var none *List
	if !none.Within(nil) || !mustParse(t, false).Within(nil) || mustParse(t, false, "a.com").Within(nil) {
		t.Error("Within with nil lists")
	}
	if !parent.Within(parent) {
		t.Error("a list is not within itself")
	}
}

func TestStringRoundTrip(t *testing.T) {
	t.Parallel()
	l := mustParse(t, true, "B.com", "*.a.com:443", "10.0.0.0/8:5432", "[2001:db8::/32]:443", "2001:db8::1", "a.com")
	want := "*.a.com:443,10.0.0.0/8:5432,2001:db8::1,[2001:db8::/32]:443,a.com,b.com"
	if l.String() != want {
		t.Errorf("String() = %q, want %q", l.String(), want)
	}
	again := mustParse(t, true, strings.Split(l.String(), ",")...)
	if !slices.Equal(again.Entries(), l.Entries()) {
		t.Errorf("re-parsed %q, want %q", again.Entries(), l.Entries())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"example.com", "*.example.com:443", "a.com,b.com,A.com.", "10.0.0.0/8:5432", "[2001:db8::/32]:443",
		"2001:db8::1", "fe80::1%eth0", "10.1", "a.0x7f", "\u212a.com", "*.com", "localhost", "[::ffff:1.2.3.4]:1",
		"x..y", "a.com:65536", "a.com/8", "[2001:db8::1]", "0.0.0.0/0",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, admin bool) {
		l, err := Parse(strings.Split(s, ","), admin)
		if err != nil {
			var ee *EntryError
			var ae *AdminOnlyError
			if !errors.As(err, &ee) && !errors.As(err, &ae) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		entries := l.Entries()
		if len(entries) > MaxEntries || !slices.IsSorted(entries) {
			t.Fatalf("entries %q: too many or unsorted", entries)
		}
		for _, e := range entries {
			if len(e) > MaxEntryLen || strings.Contains(e, ",") {
				t.Fatalf("entry %q out of bounds", e)
			}
		}
		again, err := Parse(strings.Split(l.String(), ","), admin)
		if err != nil {
			t.Fatalf("String() %q does not re-parse: %v", l.String(), err)
		}
		if !slices.Equal(again.Entries(), entries) {
			t.Fatalf("re-parsed %q, want %q", again.Entries(), entries)
		}
		if !l.Within(l) || !again.Within(l) {
			t.Fatalf("%q is not within itself", entries)
		}
		for _, e := range l.entries {
			if e.name != "" && !e.wildcard && !l.AllowsName(e.name, e.ports()[0]) {
				t.Fatalf("%q does not allow its own name %q", entries, e.name)
			}
			if e.prefix.IsValid() && !l.AllowsIP(e.prefix.Addr(), e.ports()[0]) {
				t.Fatalf("%q does not allow its own address %s", entries, e.prefix.Addr())
			}
		}
	})
}

func TestPorts(t *testing.T) {
	l, err := Parse([]string{"a.example.com", "*.b.example.com:8443", "c.example.com:80"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.Ports()); got != "[80 443 8443]" {
		t.Fatalf("Ports %s", got)
	}
	var none *List
	if none.Ports() != nil {
		t.Fatal("nil list has ports")
	}
}
