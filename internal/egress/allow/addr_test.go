package allow

import (
	"net/netip"
	"strings"
	"testing"
)

// TestPublic walks every range: its first and last address, and the
// address just below and just above it (public unless another range
// holds it).
func TestPublic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"93.184.216.34", true},
		// 0.0.0.0/8 "this network"
		{"0.0.0.0", false}, {"0.255.255.255", false}, {"1.0.0.0", true},
		// 10.0.0.0/8
		{"9.255.255.255", true}, {"10.0.0.0", false}, {"10.255.255.255", false}, {"11.0.0.0", true},
		// 100.64.0.0/10 CGNAT
		{"100.63.255.255", true}, {"100.64.0.0", false}, {"100.127.255.255", false}, {"100.128.0.0", true},
		// 127.0.0.0/8
		{"126.255.255.255", true}, {"127.0.0.0", false}, {"127.0.0.1", false}, {"127.255.255.255", false}, {"128.0.0.0", true},
		// 169.254.0.0/16 link-local, metadata
		{"169.253.255.255", true}, {"169.254.0.0", false}, {"169.254.169.254", false}, {"169.254.255.255", false}, {"169.255.0.0", true},
		// 172.16.0.0/12
		{"172.15.255.255", true}, {"172.16.0.0", false}, {"172.31.255.255", false}, {"172.32.0.0", true},
		// 192.0.0.0/24
		{"191.255.255.255", true}, {"192.0.0.0", false}, {"192.0.0.255", false}, {"192.0.1.0", true},
		// 192.0.2.0/24 TEST-NET-1
		{"192.0.1.255", true}, {"192.0.2.0", false}, {"192.0.2.255", false}, {"192.0.3.0", true},
		// 192.168.0.0/16
		{"192.167.255.255", true}, {"192.168.0.0", false}, {"192.168.255.255", false}, {"192.169.0.0", true},
		// 198.18.0.0/15 benchmarking
		{"198.17.255.255", true}, {"198.18.0.0", false}, {"198.19.255.255", false}, {"198.20.0.0", true},
		// 198.51.100.0/24 TEST-NET-2
		{"198.51.99.255", true}, {"198.51.100.0", false}, {"198.51.100.255", false}, {"198.51.101.0", true},
		// 203.0.113.0/24 TEST-NET-3
		{"203.0.112.255", true}, {"203.0.113.0", false}, {"203.0.113.255", false}, {"203.0.114.0", true},
		// 224.0.0.0/4 multicast, then 240.0.0.0/4 reserved up to the broadcast
		{"223.255.255.255", true}, {"224.0.0.0", false}, {"239.255.255.255", false},
		{"240.0.0.0", false}, {"255.255.255.254", false}, {"255.255.255.255", false},

		// IPv6 public
		{"2606:4700:4700::1111", true}, {"2a00:1450:4001::1", true}, {"2000::", true}, {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		// outside 2000::/3
		{"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"4000::", false}, {"5f00::1", false},
		{"::", false}, {"::1", false},
		// ::/96 v4-compatible, even of a public address
		{"::2", false}, {"::8.8.8.8", false}, {"::ffff", false},
		// 100::/64 discard
		{"100::", false}, {"100::ffff:ffff:ffff:ffff", false}, {"100:0:0:1::", false},
		// fc00::/7, fe80::/10, fec0::/10, ff00::/8
		{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"fc00::", false}, {"fd12:3456::1", false}, {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{"fe80::", false}, {"fe80::1", false}, {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{"fec0::", false}, {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{"ff00::", false}, {"ff02::1", false}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
		// 2001::/23 IETF assignments (Teredo 2001::/32 in it)
		{"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001::", false}, {"2001:0:4136:e378:8000:63bf:3fff:fdd2", false},
		{"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:1::", false}, {"2001:2::1", false},
		{"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:200::", true},
		// 2001:db8::/32 documentation
		{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:db8::", false}, {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2001:db9::", true},
		// 3fff::/20 documentation
		{"3fff::", false}, {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"3fff:1000::", true},
		// ::ffff:0:0/96 v4-mapped: judged by the IPv4 address
		{"::ffff:8.8.8.8", true}, {"::ffff:0.0.0.0", false}, {"::ffff:10.0.0.1", false}, {"::ffff:169.254.169.254", false}, {"::ffff:255.255.255.255", false},
		// 64:ff9b::/96 NAT64: judged by the IPv4 address
		{"64:ff9b::8.8.8.8", true}, {"64:ff9b::", false}, {"64:ff9b::127.0.0.1", false}, {"64:ff9b::169.254.169.254", false},
		{"64:ff9b::255.255.255.255", false}, {"64:ff9b::1:0:0", false}, {"64:ff9a:ffff:ffff:ffff:ffff:8.8.8.8", false},
		// 64:ff9b:1::/48 local-use NAT64: never
		{"64:ff9b:1::8.8.8.8", false}, {"64:ff9b:1:808:8:800::", false}, {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", false},
		// 2002::/16 6to4: judged by bits 16-47
		{"2002:808:808::1", true}, {"2002:a00:1::1", false}, {"2002:a9fe:a9fe::", false}, {"2002:7f00:1::", false},
		{"2002::", false}, {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false}, {"2003::", true},
		// zones
		{"fe80::1%eth0", false}, {"2606:4700:4700::1111%eth0", false},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := Public(ip); got != tt.want {
			t.Errorf("Public(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if Public(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

func TestNonPublicV4(t *testing.T) {
	t.Parallel()
	ps := NonPublicV4()
	ps[0] = netip.MustParsePrefix("1.0.0.0/8")
	if Public(netip.MustParseAddr("10.0.0.1")) || Public(netip.MustParseAddr("1.0.0.1")) != true {
		t.Error("NonPublicV4 hands out the package's own slice")
	}
	for _, p := range NonPublicV4() {
		if !p.Addr().Is4() || p.Masked() != p {
			t.Errorf("%s is not a masked IPv4 prefix", p)
		}
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	p := Policy{
		Private:    []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("fd00:1::/32")},
		TestPublic: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true},
		{"10.20.0.0", true}, {"10.20.255.255", true}, {"::ffff:10.20.1.1", true},
		{"10.19.255.255", false}, {"10.21.0.0", false},
		{"fd00:1::1", true}, {"fd00:2::1", false},
		{"127.0.0.1", true},
		{"169.254.169.254", false}, {"192.168.1.1", false}, {"::1", false},
		{"fd00:1::1%eth0", false},
	}
	for _, tt := range tests {
		if got := p.Allowed(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Allowed(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if (Policy{}).Allowed(netip.MustParseAddr("10.0.0.1")) || !(Policy{}).Allowed(netip.MustParseAddr("8.8.8.8")) {
		t.Error("the zero Policy is not Public")
	}
	// Even an unvalidated Private range does not open metadata or loopback.
	wide := Policy{Private: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
	for _, ip := range []string{"169.254.169.254", "127.0.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fe80::1", "ff02::1"} {
		if wide.Allowed(netip.MustParseAddr(ip)) {
			t.Errorf("Private 0.0.0.0/0 opens %s", ip)
		}
	}
	if !wide.Allowed(netip.MustParseAddr("192.168.1.1")) {
		t.Error("Private 0.0.0.0/0 does not open 192.168.1.1")
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix string
		err    string
	}{
		{"10.0.0.0/8", ""},
		{"192.168.10.0/24", ""},
		{"fd00::/8", ""},
		{"10.0.0.1/8", "did you mean 10.0.0.0/8"},
		{"0.0.0.0/0", "stays closed"},
		{"169.254.169.254/32", "stays closed"},
		{"127.0.0.0/8", "stays closed"},
		{"::/0", "stays closed"},
		{"fe80::/64", "stays closed"},
		{"::ffff:10.0.0.0/104", "not a valid"},
	}
	for _, tt := range tests {
		err := Policy{Private: []netip.Prefix{netip.MustParsePrefix(tt.prefix)}}.Validate()
		if (tt.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Validate(%s) = %v, want %q", tt.prefix, err, tt.err)
		}
	}
	if err := (Policy{Private: []netip.Prefix{{}}}).Validate(); err == nil {
		t.Error("the zero Prefix validates")
	}
}

// FuzzPublic checks that every form carrying an IPv4 address gets the
// verdict of the address itself, and that the local-use NAT64 prefix is
// never public.
func FuzzPublic(f *testing.F) {
	for _, s := range []string{"8.8.8.8", "10.0.0.1", "127.0.0.1", "169.254.169.254", "100.64.0.0", "255.255.255.255",
		"0.0.0.0", "198.18.0.1", "224.0.0.1", "192.0.2.1", "172.31.255.255", "1.0.0.0"} {
		a := netip.MustParseAddr(s).As4()
		f.Add(a[0], a[1], a[2], a[3])
	}
	f.Fuzz(func(t *testing.T, b0, b1, b2, b3 byte) {
		b := [4]byte{b0, b1, b2, b3}
		v4 := netip.AddrFrom4(b)
		want := Public(v4)
		var mapped, nat, local, six [16]byte
		copy(mapped[10:], []byte{0xff, 0xff})
		copy(mapped[12:], b[:])
		copy(nat[:], []byte{0, 0x64, 0xff, 0x9b})
		copy(nat[12:], b[:])
		copy(local[:], []byte{0, 0x64, 0xff, 0x9b, 0, 1})
		copy(local[12:], b[:])
		copy(six[:], []byte{0x20, 0x02})
		copy(six[2:], b[:])
		six[15] = 1
		for name, a := range map[string][16]byte{"v4-mapped": mapped, "NAT64": nat, "6to4": six} {
			if got := Public(netip.AddrFrom16(a)); got != want {
				t.Errorf("Public(%s %s) = %v, Public(%s) = %v", name, netip.AddrFrom16(a), got, v4, want)
			}
		}
		if Public(netip.AddrFrom16(local)) {
			t.Errorf("local-use NAT64 %s is public", netip.AddrFrom16(local))
		}
		if (Policy{}).Allowed(v4) != want || (Policy{}).Allowed(netip.AddrFrom16(mapped)) != want {
			t.Errorf("the zero Policy disagrees with Public on %s", v4)
		}
	})
}
