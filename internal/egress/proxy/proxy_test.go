package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/brig-dev/brig/internal/egress/sniff"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
)

// echo answers every request with its Host and path.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	fmt.Fprintf(w, "%s %s", r.Host, r.URL.Path)
})

// servers starts a plain and a TLS upstream on 127.0.0.1 and returns
// their ports.
func servers(t *testing.T) (plain, secure int) {
	t.Helper()
	hs := httptest.NewServer(echo)
	t.Cleanup(hs.Close)
	ts := httptest.NewTLSServer(echo)
	t.Cleanup(ts.Close)
	return port(hs.Listener), port(ts.Listener)
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// local resolves every test name to the servers' address.
func local(names ...string) mapResolver {
	m := mapResolver{}
	for _, n := range names {
		m[n] = []netip.Addr{loopback}
	}
	return m
}

func TestAllowedNameTLSAndHTTP(t *testing.T) {
	plain, secure := servers(t)
	e := newEnv(t, local("api.test", "web.test"),
		fmt.Sprintf("api.test:%d", secure), fmt.Sprintf("web.test:%d", plain))
	c := e.client("")

	if code, body := get(t, c, fmt.Sprintf("https://api.test:%d/a", secure)); code != 200 || body != fmt.Sprintf("api.test:%d /a", secure) {
		t.Errorf("https: %d %q", code, body)
	}
	if code, body := get(t, c, fmt.Sprintf("http://web.test:%d/b", plain)); code != 200 || body != fmt.Sprintf("web.test:%d /b", plain) {
		t.Errorf("http: %d %q", code, body)
	}
	// A second request on the kept-alive connection passes its check too.
	if code, _ := get(t, c, fmt.Sprintf("http://web.test:%d/c", plain)); code != 200 {
		t.Errorf("http again: %d", code)
	}
	e.noDenial()
	for _, ap := range e.dialed() {
		if ap.Addr() != loopback {
			t.Errorf("dialled %s", ap)
		}
	}
	if len(e.dialed()) == 0 {
		t.Error("Control hook saw no dial")
	}
}

func TestDNSUnlistedRefused(t *testing.T) {
	e := newEnv(t, local(), "api.test")
	m := e.query("evil.test", dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeRefused || len(m.Answers) != 0 {
		t.Fatalf("rcode %v, %d answers", m.RCode, len(m.Answers))
	}
	d := e.expectDenial(schema.EgressNotAllowed, "evil.test")
	if d.Port != wire.DNSPort {
		t.Errorf("port %d", d.Port)
	}
}

func TestDNSAAAAEmpty(t *testing.T) {
	e := newEnv(t, local(), "api.test")
	m := e.query("api.test", dnsmessage.TypeAAAA)
	if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
		t.Fatalf("rcode %v, %d answers", m.RCode, len(m.Answers))
	}
	e.noDenial()
}

func TestDNSStableAddress(t *testing.T) {
	e := newEnv(t, local(), "api.test", "web.test")
	a, b := e.resolve("api.test"), e.resolve("API.test")
	if a != b {
		t.Errorf("api.test got %s then %s", a, b)
	}
	if w := e.resolve("web.test"); w == a {
		t.Errorf("web.test and api.test share %s", w)
	}
}

func TestNotPublicNeverDialled(t *testing.T) {
	e := newEnv(t, mapResolver{
		"intra.test": {netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("169.254.169.254")},
	}, "intra.test")
	c := e.tcp(e.synth("intra.test", 80))
	if _, err := io.WriteString(c, request("intra.test")); err != nil {
		t.Fatal(err)
	}
	if code, _ := readResponse(t, bufio.NewReader(c)); code != 403 {
		t.Errorf("status %d", code)
	}
	e.expectDenial(schema.EgressNotPublic, "intra.test")
	if d := e.dialed(); len(d) != 0 {
		t.Errorf("dialled %v", d)
	}
}

func TestIPLiteralDst(t *testing.T) {
	e := newEnv(t, local(), "api.test")
	for _, dst := range []string{"127.0.0.1:443", "127.64.0.9:443", "8.8.8.8:80"} {
		c := e.tcp(dst)
		if _, err := io.WriteString(c, request("api.test")); err != nil {
			t.Fatal(err)
		}
		if code, _ := readResponse(t, bufio.NewReader(c)); code != 403 {
			t.Errorf("%s: status %d", dst, code)
		}
		e.expectDenial(schema.EgressIPLiteral, netip.MustParseAddrPort(dst).Addr().String())
	}
	if d := e.dialed(); len(d) != 0 {
		t.Errorf("dialled %v", d)
	}
}

func TestSNIMismatch(t *testing.T) {
	_, secure := servers(t)
	e := newEnv(t, local("api.test"), fmt.Sprintf("api.test:%d", secure))
	c := e.tcp(e.synth("api.test", secure))
	tc := tls.Client(c, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true})
	// crypto/tls reports the fatal alert as "remote error: tls: access denied".
	if err := tc.Handshake(); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("handshake: %v, want access_denied alert", err)
	}
	e.expectDenial(schema.EgressMismatch, "api.test")
	if d := e.dialed(); len(d) != 0 {
		t.Errorf("dialled %v", d)
	}
}

func TestTLSWithoutSNI(t *testing.T) {
	_, secure := servers(t)
	e := newEnv(t, local("api.test"), fmt.Sprintf("api.test:%d", secure))
	c := e.tcp(e.synth("api.test", secure))
	// An IP address as ServerName: crypto/tls then sends no SNI.
	tc := tls.Client(c, &tls.Config{ServerName: "127.0.0.1", InsecureSkipVerify: true})
	if err := tc.Handshake(); err == nil {
		t.Error("handshake passed")
	}
	e.expectDenial(schema.EgressMismatch, "api.test")
}

func TestHostMismatch(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	for _, host := range []string{"other.test", "127.0.0.1", "web.test.evil.test"} {
		c := e.tcp(e.synth("web.test", plain))
		if _, err := io.WriteString(c, request(host)); err != nil {
			t.Fatal(err)
		}
		code, body := readResponse(t, bufio.NewReader(c))
		if code != 403 || !strings.Contains(body, "mismatch") {
			t.Errorf("Host %s: %d %q", host, code, body)
		}
		e.expectDenial(schema.EgressMismatch, "web.test")
	}
	// No Host at all.
	c := e.tcp(e.synth("web.test", plain))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if code, _ := readResponse(t, bufio.NewReader(c)); code != 403 {
		t.Errorf("no Host: %d", code)
	}
	e.expectDenial(schema.EgressMismatch, "web.test")
}

func TestKeepAliveOtherHostRefused(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	c := e.tcp(e.synth("web.test", plain))
	br := bufio.NewReader(c)
	// A chunked body, then a Content-Length one, then the fronted request.
	reqs := "POST /1 HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;x=y\r\nhello\r\n0\r\nTrailer-A: b\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	if code, body := readResponse(t, br); code != 200 || body != "web.test /1" {
		t.Fatalf("first: %d %q", code, body)
	}
	if _, err := io.WriteString(c, "POST /2 HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	if code, body := readResponse(t, br); code != 200 || body != "web.test /2" {
		t.Fatalf("second: %d %q", code, body)
	}
	if _, err := io.WriteString(c, request("other.test")); err != nil {
		t.Fatal(err)
	}
	if code, body := readResponse(t, br); code != 403 || !strings.Contains(body, "mismatch") {
		t.Errorf("fronted: %d %q", code, body)
	}
	e.expectDenial(schema.EgressMismatch, "web.test")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the refusal: %v, want EOF", err)
	}
}

func TestKeepAliveBadFramingRefused(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
		"CONNECT web.test:443 HTTP/1.1\r\nHost: web.test:443\r\n\r\n",
	} {
		c := e.tcp(e.synth("web.test", plain))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		if code, _ := readResponse(t, bufio.NewReader(c)); code != 403 {
			t.Errorf("%q: %d", req, code)
		}
		e.expectDenial(schema.EgressProtocol, "web.test")
	}
	// A chunk longer than its size is refused once the request before it
	// has been answered.
	c := e.tcp(e.synth("web.test", plain))
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	e.expectDenial(schema.EgressProtocol, "web.test")
	_, _ = io.ReadAll(br)
}

func TestConnect(t *testing.T) {
	plain, secure := servers(t)
	e := newEnv(t, local("api.test", "web.test"),
		fmt.Sprintf("api.test:%d", secure), fmt.Sprintf("web.test:%d", plain), fmt.Sprintf("127.0.0.1:%d", secure))
	c := e.client("http://127.0.0.1:3128")
	// An admin's address entry: CONNECT to the IP literal, no name to check.
	if code, _ := get(t, c, fmt.Sprintf("https://127.0.0.1:%d/z", secure)); code != 200 {
		t.Errorf("CONNECT to an address entry: %d", code)
	}
	if code, body := get(t, c, fmt.Sprintf("https://api.test:%d/x", secure)); code != 200 || body != fmt.Sprintf("api.test:%d /x", secure) {
		t.Errorf("CONNECT: %d %q", code, body)
	}
	if code, body := get(t, c, fmt.Sprintf("http://web.test:%d/y", plain)); code != 200 || body != fmt.Sprintf("web.test:%d /y", plain) {
		t.Errorf("absolute-form: %d %q", code, body)
	}
	e.noDenial()
}

func TestConnectRefused(t *testing.T) {
	_, secure := servers(t)
	e := newEnv(t, local("api.test"), fmt.Sprintf("api.test:%d", secure))
	cases := []struct {
		req    string
		reason schema.EgressReason
		host   string
	}{
		{"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", schema.EgressNotAllowed, "evil.test"},
		{fmt.Sprintf("CONNECT api.test:%d HTTP/1.1\r\n\r\n", secure+1), schema.EgressNotAllowed, "api.test"},
		{fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", secure), schema.EgressIPLiteral, "127.0.0.1"},
		{"CONNECT 127.1:443 HTTP/1.1\r\n\r\n", schema.EgressIPLiteral, ""},
		{"GET https://api.test/ HTTP/1.1\r\nHost: api.test\r\n\r\n", schema.EgressProtocol, "api.test"},
		{"GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", schema.EgressNotAllowed, "evil.test"},
		{"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n", schema.EgressProtocol, "api.test"},
	}
	for _, tc := range cases {
		c := e.tcp("127.0.0.1:3128")
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		if code, _ := readResponse(t, bufio.NewReader(c)); code != 403 {
			t.Errorf("%q: %d", tc.req, code)
		}
		e.expectDenial(tc.reason, tc.host)
	}
	// A tunnel whose ClientHello names another host.
	c := e.tcp("127.0.0.1:3128")
	br := bufio.NewReader(c)
	if _, err := fmt.Fprintf(c, "CONNECT api.test:%d HTTP/1.1\r\n\r\n", secure); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, br, len(connectEstablished)); got != connectEstablished {
		t.Fatalf("CONNECT answered %q", got)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true})
	if err := tc.Handshake(); err == nil {
		t.Error("handshake passed")
	}
	e.expectDenial(schema.EgressMismatch, "api.test")
	if d := e.dialed(); len(d) != 0 {
		t.Errorf("dialled %v", d)
	}
}

func TestWildcard(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("a.wild.test", "b.a.wild.test", "wild.test"), fmt.Sprintf("*.wild.test:%d", plain))
	c := e.client("")
	for _, name := range []string{"a.wild.test", "b.a.wild.test"} {
		if code, _ := get(t, c, fmt.Sprintf("http://%s:%d/", name, plain)); code != 200 {
			t.Errorf("%s: %d", name, code)
		}
	}
	if m := e.query("wild.test", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeRefused {
		t.Errorf("wild.test: %v", m.RCode)
	}
	e.expectDenial(schema.EgressNotAllowed, "wild.test")
}

func TestWrongPort(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	c := e.tcp(e.synth("web.test", plain+1))
	if _, err := io.WriteString(c, request("web.test")); err != nil {
		t.Fatal(err)
	}
	if code, _ := readResponse(t, bufio.NewReader(c)); code != 403 {
		t.Errorf("status %d", code)
	}
	d := e.expectDenial(schema.EgressNotAllowed, "web.test")
	if d.Port != plain+1 {
		t.Errorf("port %d", d.Port)
	}
}

func TestGarbage(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	for _, junk := range []string{"\x00\x01\x02junk\r\n", "SSH-2.0-OpenSSH_9.6\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"} {
		c := e.tcp(e.synth("web.test", plain))
		if _, err := io.WriteString(c, junk); err != nil {
			t.Fatal(err)
		}
		e.expectDenial(schema.EgressProtocol, "web.test")
		_, _ = io.ReadAll(c) // a 403 or nothing; then the connection closes
	}
	if d := e.dialed(); len(d) != 0 {
		t.Errorf("dialled %v", d)
	}
}

func TestResetClosesLiveConns(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	dst := e.synth("web.test", plain)
	c := e.tcp(dst)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, request("web.test")); err != nil {
		t.Fatal(err)
	}
	if code, _ := readResponse(t, br); code != 200 {
		t.Fatalf("status %d", code)
	}
	e.l.Reset()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Reset: %v, want EOF", err)
	}
	// Unbound: DNS REFUSED, the old address a closed connection, nothing
	// reported.
	if m := e.query("web.test", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeRefused {
		t.Errorf("DNS after Reset: %v", m.RCode)
	}
	c = e.tcp(dst)
	if _, err := bufio.NewReader(c).ReadByte(); err != io.EOF {
		t.Errorf("TCP after Reset: %v, want EOF", err)
	}
	e.noDenial()
}

func TestLimitPending(t *testing.T) {
	e := newEnv(t, local(), "web.test")
	for range MaxPendingConns {
		c, err := net.Dial("unix", e.path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	c, err := net.Dial("unix", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitLong))
	_ = wire.Write(c, wire.Header{V: wire.Version, Kind: wire.KindTCP, Dst: "127.0.0.1:3128"}) // may meet the close
	// Closed at once: EOF, or a reset since the header went unread.
	if _, err := bufio.NewReader(c).ReadByte(); err == nil {
		t.Error("over the bound: the connection is open")
	}
	e.expectDenial(schema.EgressLimit, "")
}

func TestLimitTCP(t *testing.T) {
	plain, _ := servers(t)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	dst := e.synth("web.test", plain)
	for range MaxTCPConns {
		c := e.tcp(dst)
		if _, err := io.WriteString(c, request("web.test")); err != nil {
			t.Fatal(err)
		}
		if code, _ := readResponse(t, bufio.NewReader(c)); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	c := e.tcp(dst)
	if _, err := bufio.NewReader(c).ReadByte(); err != io.EOF {
		t.Errorf("over the bound: %v, want EOF", err)
	}
	e.expectDenial(schema.EgressLimit, "web.test")
}

// readN reads n bytes.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUpstreamFailureIs502(t *testing.T) {
	e := newEnv(t, mapResolver{}, "gone.test")
	c := e.tcp(e.synth("gone.test", 80))
	if _, err := io.WriteString(c, request("gone.test")); err != nil {
		t.Fatal(err)
	}
	if code, _ := readResponse(t, bufio.NewReader(c)); code != 502 {
		t.Errorf("status %d", code)
	}
	e.noDenial()
}

func TestECHRefused(t *testing.T) {
	_, secure := servers(t)
	e := newEnv(t, local("api.test"), fmt.Sprintf("api.test:%d", secure))
	c := e.tcp(e.synth("api.test", secure))
	if _, err := c.Write(helloWithECH(t, "api.test")); err != nil {
		t.Fatal(err)
	}
	if d := e.expectDenial(schema.EgressProtocol, "api.test"); !strings.Contains(d.Message, "Encrypted Client Hello") {
		t.Errorf("refused for %q", d.Message)
	}
	if d := e.dialed(); len(d) != 0 {
		t.Errorf("dialled %v", d)
	}
}

// helloWithECH is crypto/tls's ClientHello for name in one record, with
// an empty encrypted_client_hello extension (0xfe0d) appended.
func helloWithECH(t *testing.T, name string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _ = tls.Client(a, &tls.Config{ServerName: name}).Handshake() }()
	_, raw, err := sniff.ReadClientHello(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Record header (5), handshake header (4), version (2), random (32),
	// then session id, cipher suites, compression methods, extensions.
	i := 5 + 4 + 2 + 32
	i += 1 + int(raw[i])
	i += 2 + int(binary.BigEndian.Uint16(raw[i:]))
	i += 1 + int(raw[i])
	out := append(append([]byte(nil), raw...), 0xfe, 0x0d, 0, 0)
	grow := func(at, size int) {
		switch size {
		case 2:
			binary.BigEndian.PutUint16(out[at:], binary.BigEndian.Uint16(out[at:])+4)
		case 3:
			n := int(out[at])<<16 | int(out[at+1])<<8 | int(out[at+2]) + 4
			out[at], out[at+1], out[at+2] = byte(n>>16), byte(n>>8), byte(n)
		}
	}
	grow(3, 2) // record length
	grow(6, 3) // handshake length
	grow(i, 2) // extensions length
	return out
}

func TestSilentClientTimesOut(t *testing.T) {
	e := newEnvWith(t, func(p *Proxy) { p.wait.sniff = 100 * time.Millisecond }, local("ssh.test"), "ssh.test:22")
	c := e.tcp(e.synth("ssh.test", 22))
	if _, err := bufio.NewReader(c).ReadByte(); err != io.EOF {
		t.Errorf("read: %v, want EOF", err)
	}
	d := e.expectDenial(schema.EgressProtocol, "ssh.test")
	if !strings.Contains(d.Message, "within") {
		t.Errorf("message %q", d.Message)
	}
	if d := e.dialed(); len(d) != 0 {
		t.Errorf("dialled %v", d)
	}
}

func TestRefusedRequestWaitsForEarlierResponses(t *testing.T) {
	// The upstream answers the first request only after the refused
	// second has been read: the 403 must come after that answer.
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "slow")
	}))
	t.Cleanup(hs.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before hs.Close, which waits for the handler
	plain := port(hs.Listener)
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", plain))
	c := e.tcp(e.synth("web.test", plain))
	if _, err := io.WriteString(c, request("web.test")+request("other.test")); err != nil {
		t.Fatal(err)
	}
	e.expectDenial(schema.EgressMismatch, "web.test")
	unblock()
	br := bufio.NewReader(c)
	if code, body := readResponse(t, br); code != 200 || body != "slow" {
		t.Errorf("first: %d %q", code, body)
	}
	if code, _ := readResponse(t, br); code != 403 {
		t.Errorf("second: %d", code)
	}
}
