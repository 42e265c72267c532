package egresstest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"
)

const testBudget = 10 * time.Second

// TestStart reaches every server from the host, on each of the
// namespace's addresses, and sees the hit counters move.
func TestStart(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a network namespace (root, ip)")
	}
	t.Parallel()
	n := Start(t)
	if got := n.Hits(); got != (Hits{}) {
		t.Fatalf("hits before any request: %+v", got)
	}

	for _, addr := range []netip.Addr{n.PublicAddr, n.PrivateAddr, n.IPv6Addr} {
		host := netip.AddrPortFrom(addr, PortHTTP).String()
		rep := get(t, &http.Client{}, "http://"+host+"/hello")
		if rep.Host != host || rep.Path != "/hello" || rep.SNI != "" || rep.Local != host {
			t.Errorf("GET http://%s/hello: %+v", host, rep)
		}
	}

	https := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: n.RootCAs()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, netip.AddrPortFrom(n.PublicAddr, PortHTTPS).String())
		},
	}}
	for _, name := range []string{NameOK, NameWildSub, NameOther, NamePrivate} {
		rep := get(t, https, "https://"+name+"/x")
		if rep.Host != name || rep.SNI != name {
			t.Errorf("GET https://%s/x: %+v", name, rep)
		}
	}
	if _, err := https.Get("https://" + NameWildApex + "/"); err == nil {
		t.Errorf("the certificate covers %s; want it to cover only its subdomains", NameWildApex)
	}

	echo(t, netip.AddrPortFrom(n.PublicAddr, PortEcho))
	for _, port := range []uint16{PortUDP, PortDNS} {
		c, err := net.Dial("udp", netip.AddrPortFrom(n.PublicAddr, port).String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	want := Hits{HTTPS: 5, HTTP: 3, Echo: 1, UDP: 1, DNS: 1}
	deadline := time.Now().Add(testBudget)
	for n.Hits() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // datagrams arrive on their own; nothing to wait on
	}
	if got := n.Hits(); got != want {
		t.Errorf("hits %+v, want %+v", got, want)
	}
}

// TestStartTwice shows two Nets of one process get addresses of their
// own.
func TestStartTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("makes network namespaces (root, ip)")
	}
	t.Parallel()
	a, b := Start(t), Start(t)
	if a.PublicPrefix.Overlaps(b.PublicPrefix) || a.Namespace == b.Namespace || a.PrivateAddr == b.PrivateAddr {
		t.Fatalf("two Nets share addresses: %s %s, %s %s", a.Namespace, a.PublicPrefix, b.Namespace, b.PublicPrefix)
	}
	for _, n := range []*Net{a, b} {
		host := netip.AddrPortFrom(n.PublicAddr, PortHTTP).String()
		get(t, &http.Client{}, "http://"+host+"/")
	}
}

func TestResolver(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("fd42::2")
	r := NewResolver()
	r.Set("Both.Test.", v4, v6)
	r.Set("four.test", v4)
	for _, c := range []struct {
		network, host string
		want          []netip.Addr
	}{
		{"ip", "both.test", []netip.Addr{v4, v6}},
		{"ip4", "BOTH.test.", []netip.Addr{v4}},
		{"ip6", "both.test", []netip.Addr{v6}},
		{"ip6", "four.test", nil},
		{"ip", "none.test", nil},
	} {
		got, err := r.LookupNetIP(t.Context(), c.network, c.host)
		if !slices.Equal(got, c.want) {
			t.Errorf("LookupNetIP(%s, %s) = %v, want %v", c.network, c.host, got, c.want)
		}
		var dnsErr *net.DNSError
		if (c.want == nil) != (errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			t.Errorf("LookupNetIP(%s, %s): error %v", c.network, c.host, err)
		}
	}
	if got := r.Lookups("both.test"); got != 3 {
		t.Errorf("Lookups(both.test) = %d, want 3", got)
	}
	r.Set("four.test")
	if _, err := r.LookupNetIP(t.Context(), "ip", "four.test"); err == nil {
		t.Error("a name Set without addresses still resolves")
	}
}

func get(t *testing.T, c *http.Client, url string) Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testBudget)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var rep Reply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return rep
}

func echo(t *testing.T, at netip.AddrPort) {
	t.Helper()
	c, err := net.DialTimeout("tcp", at.String(), testBudget)
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testBudget))
	msg := fmt.Sprintf("hello %s", at)
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("echo: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: got %q, %v; want %q", buf, err, msg)
	}
}
