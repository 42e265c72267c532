package proxy

// Attack probes, kept as regression tests. Each asserts the secure outcome
// the design (docs/design.md §12.1) promises; the ones that failed when
// written (Blocked given in a NAT64 or 6to4 form, later requests on the
// explicit proxy not absolute http://, the explicit proxy's Host mismatch
// reported as protocol, a refusal inside a CONNECT tunnel to an address
// told as HTTP) were fixed with them.

import (
	"bufio"
	"crypto/tls"
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

	"github.com/brig-dev/brig/schema"
)

// atkServer is a plain upstream on 127.0.0.1 that records every request
// it parses (Host and RequestURI).
type atkServer struct {
	mu   sync.Mutex
	seen []string
	port int
}

func newAtkServer(t *testing.T) *atkServer {
	t.Helper()
	s := &atkServer{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.Host+" "+r.RequestURI)
		s.mu.Unlock()
		fmt.Fprintf(w, "%s %s", r.Host, r.URL.Path)
	}))
	t.Cleanup(hs.Close)
	s.port = port(hs.Listener)
	return s
}

func (s *atkServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// atkDenial waits briefly for a denial; nil when none came.
func (e *env) atkDenial(wait time.Duration) *schema.EgressDenial {
	select {
	case d := <-e.denied:
		return &d
	case <-time.After(wait):
		return nil
	}
}

// atkStatus reads one response, or -1 when the connection gave none.
func atkStatus(br *bufio.Reader) (int, string) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// atkExplicit sends req to the explicit proxy and returns the status.
func atkExplicit(t *testing.T, e *env, req string) (int, string) {
	t.Helper()
	c := e.tcp("127.0.0.1:3128")
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return atkStatus(bufio.NewReader(c))
}

// TestAttackExplicitSchemes: every first request to the explicit proxy
// that is not CONNECT or an absolute http:// URL is refused with a 403,
// nothing dialled.
func TestAttackExplicitSchemes(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test", "other.test"), fmt.Sprintf("web.test:%d", P))
	refused := []string{
		fmt.Sprintf("GET https://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET HTTPS://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET hTtPs://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http:/web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http:\\\\web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http:web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET ws://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET httpx://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET //web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http://user@web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http://web.test:%d@other.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P, P),
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P+1),
		fmt.Sprintf("GET http://web.test/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P),
		fmt.Sprintf("GET http://other.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http://other.test:%d/ HTTP/1.1\r\nHost: other.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET / HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P),
		fmt.Sprintf("OPTIONS * HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P),
		fmt.Sprintf("GET web.test:%d HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("connect web.test:%d HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.0\r\n\r\n", P),                   // HTTP/1.0, no Host
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1\r\n\r\n", P),                   // no Host
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1\r\nHost:\r\n\r\n", P),          // empty Host
		fmt.Sprintf("GET http://[::1]:%d/ HTTP/1.1\r\nHost: [::1]:%d\r\n\r\n", P, P), // IP literal
		fmt.Sprintf("GET http://127.1:%d/ HTTP/1.1\r\nHost: 127.1:%d\r\n\r\n", P, P), // inet_aton form
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\nHost: other.test\r\n\r\n", P, P),
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", P, P),
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1\r\nHost : web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET\thttp://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1 \r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http://web.test:%d/\x00 HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET h\x00ttp://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET  http://web.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET http://web.test:%d/ HTTP/2.0\r\nHost: web.test:%d\r\n\r\n", P, P),
	}
	for _, req := range refused {
		code, body := atkExplicit(t, e, req)
		d := e.atkDenial(waitLong)
		switch {
		case code != 403:
			t.Errorf("%q: status %d %q, want 403", req, code, body)
		case d == nil:
			t.Errorf("%q: 403 but no denial", req)
		default:
			t.Logf("%q: 403, denial reason=%s host=%q port=%d", req, d.Reason, d.Host, d.Port)
		}
	}
	if got := s.requests(); len(got) != 0 {
		t.Errorf("upstream saw %q", got)
	}
}

// TestAttackExplicitAccepted: forms the design lets through reach only
// web.test's upstream, with the Host it was checked for.
func TestAttackExplicitAccepted(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", P))
	for _, scheme := range []string{"http", "HTTP", "hTtP"} {
		code, body := atkExplicit(t, e, fmt.Sprintf("GET %s://web.test:%d/ok HTTP/1.1\r\nHost: WEB.test.:%d\r\n\r\n", scheme, P, P))
		if code != 200 {
			t.Errorf("%s: %d %q", scheme, code, body)
		}
	}
	e.noDenial()
	for _, r := range s.requests() {
		if !strings.HasPrefix(strings.ToLower(r), "web.test") {
			t.Errorf("upstream saw %q", r)
		}
	}
}

// TestAttackExplicitMismatchReason: a first absolute-form request to the
// explicit proxy whose Host is missing or differs is a mismatch, as on
// plain HTTP.
func TestAttackExplicitMismatchReason(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test"), fmt.Sprintf("web.test:%d", P))
	for _, req := range []string{
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.0\r\n\r\n", P),
		fmt.Sprintf("GET http://web.test:%d/ HTTP/1.1\r\nHost: other.test:%d\r\n\r\n", P, P),
	} {
		code, _ := atkExplicit(t, e, req)
		d := e.atkDenial(waitLong)
		if code != 403 || d == nil {
			t.Fatalf("%q: %d, denial %v", req, code, d)
		}
		t.Logf("%q: reason=%s host=%q port=%d msg=%q", req, d.Reason, d.Host, d.Port, d.Message)
		if d.Reason != schema.EgressMismatch {
			t.Errorf("%q: reason %s, want mismatch as on plain HTTP (design §12.1 item 3/4)", req, d.Reason)
		}
	}
}

// atkKeepAlive opens a connection to dst, sends a first request that
// must pass, then second, and returns the second's status.
func atkKeepAlive(t *testing.T, e *env, dst, first, second string) (int, string) {
	t.Helper()
	c := e.tcp(dst)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, first); err != nil {
		t.Fatal(err)
	}
	if code, body := atkStatus(br); code != 200 {
		t.Fatalf("first %q: %d %q", first, code, body)
	}
	if _, err := io.WriteString(c, second); err != nil {
		return -1, err.Error()
	}
	return atkStatus(br)
}

// TestAttackExplicitKeepAlive: later requests on an explicit-proxy
// connection go to the same host and port, as absolute http:// URLs.
func TestAttackExplicitKeepAlive(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test", "other.test"), fmt.Sprintf("web.test:%d", P), fmt.Sprintf("other.test:%d", P))
	first := fmt.Sprintf("GET http://web.test:%d/1 HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P)
	cases := []struct {
		second string
		reason schema.EgressReason
	}{
		{fmt.Sprintf("GET http://other.test:%d/2 HTTP/1.1\r\nHost: other.test:%d\r\n\r\n", P, P), schema.EgressMismatch},
		{fmt.Sprintf("GET /2 HTTP/1.1\r\nHost: other.test:%d\r\n\r\n", P), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test:%d/2 HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P+1, P+1), schema.EgressMismatch},
		{"GET http://web.test/2 HTTP/1.1\r\nHost: web.test\r\n\r\n", schema.EgressMismatch},
		{"GET /2 HTTP/1.1\r\nHost: web.test\r\n\r\n", schema.EgressProtocol},
		{"GET /2 HTTP/1.0\r\n\r\n", schema.EgressMismatch},
		{fmt.Sprintf("CONNECT other.test:%d HTTP/1.1\r\nHost: other.test:%d\r\n\r\n", P, P), schema.EgressProtocol},
		{fmt.Sprintf("CONNECT web.test:%d HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test..:%d/2 HTTP/1.1\r\nHost: web.test..:%d\r\n\r\n", P, P), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test:%d/2 HTTP/1.1\r\nHost: web.test:%d\r\nHost: other.test:%d\r\n\r\n", P, P, P), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test:%d/%s HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, strings.Repeat("a", 17<<10), P), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test:%d/2 HTTP/1.1\r\nHost: web.test:%d\r\nX: %s\r\n\r\n", P, P, strings.Repeat("b", 17<<10)), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test:%d/2 HTTP/1.1\nHost: web.test:%d\r\n\r\n", P, P), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test:%d/2 HTTP/1.1\r\nHost: web.test:%d\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", P, P), schema.EgressProtocol},
		{fmt.Sprintf("GET http://web.test:%d/2 HTTP/1.1\r\nHost: web.test:%d\r\nUpgrade: h2c\r\n\r\n", P, P), schema.EgressProtocol},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", schema.EgressProtocol},
		// The design: an absolute-form https:// request to the explicit
		// proxy is refused (protocol); and it takes absolute http:// only.
		{fmt.Sprintf("GET https://web.test:%d/2 HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P), schema.EgressProtocol},
		{fmt.Sprintf("GET /2 HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P), schema.EgressProtocol},
	}
	for _, tc := range cases {
		before := len(s.requests())
		code, body := atkKeepAlive(t, e, "127.0.0.1:3128", first, tc.second)
		d := e.atkDenial(waitLong)
		switch {
		case d == nil:
			t.Errorf("second %q: passed (%d %q), no denial", clip(tc.second), code, clip(body))
		case code != 403:
			t.Errorf("second %q: status %d, want 403 (denial %s)", clip(tc.second), code, d.Reason)
		case d.Reason != tc.reason || d.Host != "web.test" || d.Port != P:
			t.Errorf("second %q: denial %s %q:%d, want %s web.test:%d", clip(tc.second), d.Reason, d.Host, d.Port, tc.reason, P)
		}
		if got := s.requests(); len(got) != before+1 {
			t.Errorf("second %q: upstream saw %q", clip(tc.second), got[before:])
		}
	}
	// What passes: the same host and port, spelt otherwise.
	for _, ok := range []string{
		fmt.Sprintf("GET http://WEB.TEST.:%d/2 HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P),
		fmt.Sprintf("GET HTTP://web.test:%05d/2 HTTP/1.1\r\nHost: web.test.:%d\r\n\r\n", P, P),
	} {
		if code, body := atkKeepAlive(t, e, "127.0.0.1:3128", first, ok); code != 200 {
			t.Errorf("second %q: %d %q", ok, code, body)
		}
		e.noDenial()
	}
}

// TestAttackSyntheticKeepAlive: later requests on a connection to a
// synthetic address keep its Host.
func TestAttackSyntheticKeepAlive(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test", "other.test"), fmt.Sprintf("web.test:%d", P), fmt.Sprintf("other.test:%d", P))
	dst := e.synth("web.test", P)
	first := request("web.test")
	cases := []struct {
		second string
		reason schema.EgressReason
	}{
		{request("other.test"), schema.EgressMismatch},
		{request("Other.Test."), schema.EgressMismatch},
		{request("web.test.other.test"), schema.EgressMismatch},
		{"GET / HTTP/1.0\r\n\r\n", schema.EgressMismatch},
		{fmt.Sprintf("GET http://other.test:%d/ HTTP/1.1\r\nHost: other.test:%d\r\n\r\n", P, P), schema.EgressMismatch},
		{fmt.Sprintf("GET http://other.test:%d/ HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P), schema.EgressMismatch},
		{fmt.Sprintf("CONNECT other.test:%d HTTP/1.1\r\nHost: other.test:%d\r\n\r\n", P, P), schema.EgressProtocol},
		{fmt.Sprintf("CONNECT web.test:%d HTTP/1.1\r\n\r\n", P), schema.EgressProtocol},
		{"GET / HTTP/1.1\r\nHost: web.test\r\nHost: other.test\r\n\r\n", schema.EgressProtocol},
		{"GET / HTTP/1.1\r\nHost: web.test\r\nX: " + strings.Repeat("x", 20<<10) + "\r\n\r\n", schema.EgressProtocol},
		{"GET / HTTP/1.1\r\nHost: web.test\r\nContent_Length: 3\r\n\r\nabc", schema.EgressProtocol},
	}
	for _, tc := range cases {
		before := len(s.requests())
		code, _ := atkKeepAlive(t, e, dst, first, tc.second)
		d := e.atkDenial(waitLong)
		switch {
		case d == nil:
			t.Errorf("second %q: passed (%d), no denial", clip(tc.second), code)
		case code != 403:
			t.Errorf("second %q: status %d, want 403 (denial %s)", clip(tc.second), code, d.Reason)
		case d.Reason != tc.reason || d.Host != "web.test":
			t.Errorf("second %q: denial %s %q, want %s web.test", clip(tc.second), d.Reason, d.Host, tc.reason)
		}
		if got := s.requests(); len(got) != before+1 {
			t.Errorf("second %q: upstream saw %q", clip(tc.second), got[before:])
		}
	}
}

// TestAttackPipelinedAfterRefusal: nothing sent after a refused request
// reaches the upstream, whether pipelined with it or sent later.
func TestAttackPipelinedAfterRefusal(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test", "other.test"), fmt.Sprintf("web.test:%d", P), fmt.Sprintf("other.test:%d", P))
	for _, dst := range []string{e.synth("web.test", P), "127.0.0.1:3128"} {
		before := len(s.requests())
		host := "web.test"
		first, reason := request(host), schema.EgressMismatch
		if dst == "127.0.0.1:3128" {
			// Its second request is origin-form: refused as that first.
			first, reason = fmt.Sprintf("GET http://web.test:%d/1 HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", P, P), schema.EgressProtocol
		}
		c := e.tcp(dst)
		all := first +
			"GET /evil HTTP/1.1\r\nHost: other.test\r\n\r\n" +
			"GET /after HTTP/1.1\r\nHost: web.test\r\n\r\n" +
			"GET /after2 HTTP/1.1\r\nHost: other.test\r\n\r\n"
		if _, err := io.WriteString(c, all); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		if code, _ := atkStatus(br); code != 200 {
			t.Errorf("%s: first %d", dst, code)
		}
		if code, _ := atkStatus(br); code != 403 {
			t.Errorf("%s: second %d, want 403", dst, code)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("%s: bytes after the 403", dst)
		}
		e.expectDenial(reason, "web.test")
		if got := s.requests(); len(got) != before+1 {
			t.Errorf("%s: upstream saw %q", dst, got[before:])
		}
	}
	// A refused head that arrives byte by byte: its start is not relayed.
	c := e.tcp(e.synth("web.test", P))
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, request("web.test")); err != nil {
		t.Fatal(err)
	}
	if code, _ := atkStatus(br); code != 200 {
		t.Fatalf("first %d", code)
	}
	before := len(s.requests())
	for _, b := range []byte("GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n") {
		if _, err := c.Write([]byte{b}); err != nil {
			break
		}
	}
	if code, _ := atkStatus(br); code != 403 {
		t.Errorf("byte by byte: %d", code)
	}
	e.expectDenial(schema.EgressMismatch, "web.test")
	if got := s.requests(); len(got) != before {
		t.Errorf("byte by byte: upstream saw %q", got[before:])
	}
}

// TestAttackTunnelKeepAlive: plain HTTP inside a CONNECT tunnel is walked
// like any other.
func TestAttackTunnelKeepAlive(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test", "other.test"), fmt.Sprintf("web.test:%d", P), fmt.Sprintf("other.test:%d", P))
	c := e.tcp("127.0.0.1:3128")
	br := bufio.NewReader(c)
	if _, err := fmt.Fprintf(c, "CONNECT web.test:%d HTTP/1.1\r\n\r\n%s", P, request("web.test")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, br, len(connectEstablished)); got != connectEstablished {
		t.Fatalf("CONNECT: %q", got)
	}
	if code, _ := atkStatus(br); code != 200 {
		t.Fatalf("first %d", code)
	}
	if _, err := io.WriteString(c, request("other.test")); err != nil {
		t.Fatal(err)
	}
	if code, _ := atkStatus(br); code != 403 {
		t.Errorf("fronted in tunnel: %d", code)
	}
	e.expectDenial(schema.EgressMismatch, "web.test")
	if got := s.requests(); len(got) != 1 {
		t.Errorf("upstream saw %q", got)
	}
}

// atkBlockedEnv is an env whose Blocked list is blocked and whose name
// api.test resolves to answer; the upstream is a plain server on
// 127.0.0.1, counted as public.
func atkBlockedEnv(t *testing.T, blocked []netip.Addr, answer ...netip.Addr) (*env, *atkServer) {
	t.Helper()
	s := newAtkServer(t)
	e := newEnvWith(t, func(p *Proxy) { p.blocked = func() []netip.Addr { return blocked } },
		mapResolver{"api.test": answer}, fmt.Sprintf("api.test:%d", s.port))
	return e, s
}

// atkMustNotDial connects to api.test and expects not_public and no dial.
func atkMustNotDial(t *testing.T, e *env, s *atkServer, what string) {
	t.Helper()
	c := e.tcp(e.synth("api.test", s.port))
	if _, err := io.WriteString(c, request("api.test")); err != nil {
		t.Fatal(err)
	}
	code, body := atkStatus(bufio.NewReader(c))
	d := e.atkDenial(2 * time.Second)
	if code != 403 || d == nil || d.Reason != schema.EgressNotPublic {
		t.Errorf("%s: status %d %q, denial %v; dialled %v; upstream saw %q", what, code, clip(body), d, e.dialed(), s.requests())
	}
	if dl := e.dialed(); len(dl) != 0 {
		t.Errorf("%s: dialled %v", what, dl)
	}
}

var atkV4 = netip.MustParseAddr("127.0.0.1")

// TestAttackEmbeddedForms: the resolver answers a form of 127.0.0.1 that
// carries it (v4-mapped, NAT64, 6to4); Blocked says 127.0.0.1.
func TestAttackEmbeddedForms(t *testing.T) {
	for _, a := range []string{"::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "2002:7f00:1::1", "127.0.0.1"} {
		e, s := atkBlockedEnv(t, []netip.Addr{atkV4}, netip.MustParseAddr(a))
		atkMustNotDial(t, e, s, "answer "+a)
	}
	// Mixed answers: one usable public address must not let a blocked one in.
	e, s := atkBlockedEnv(t, []netip.Addr{atkV4},
		netip.MustParseAddr("64:ff9b::7f00:1"), netip.MustParseAddr("::ffff:127.0.0.1"), netip.MustParseAddr("2002:7f00:1::"))
	atkMustNotDial(t, e, s, "mixed answers")
}

// TestAttackBlockedGivenEmbedded: the Blocked list names the NATS server
// in another form than the resolver answers (a worker that reached NATS
// through NAT64 or 6to4; Config.Blocked sets no form). The server is the
// same machine either way.
func TestAttackBlockedGivenEmbedded(t *testing.T) {
	for _, b := range []string{"::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"} {
		e, s := atkBlockedEnv(t, []netip.Addr{netip.MustParseAddr(b)}, atkV4)
		atkMustNotDial(t, e, s, "Blocked "+b+", answer 127.0.0.1")
	}
}

// TestAttackReachableEmbedded: reachable, without a packet, on public
// addresses: every form of a Blocked address is refused, whichever form
// Blocked names it in.
func TestAttackReachableEmbedded(t *testing.T) {
	cases := []struct {
		blocked, local, cand string
	}{
		{"1.1.1.1", "", "::ffff:1.1.1.1"},
		{"1.1.1.1", "", "64:ff9b::101:101"},
		{"1.1.1.1", "", "2002:101:101::"},
		{"1.1.1.1", "", "2002:101:101:ffff:ffff:ffff:ffff:ffff"},
		{"64:ff9b::101:101", "", "1.1.1.1"},
		{"64:ff9b::101:101", "", "2002:101:101::"},
		{"2002:101:101::", "", "1.1.1.1"},
		{"2002:101:101::", "", "64:ff9b::101:101"},
		{"::ffff:1.1.1.1", "", "1.1.1.1"},
		{"2002:101:101::1", "", "2002:101:101::2"}, // one relay, one IPv4 host
		{"", "8.8.4.4", "64:ff9b::808:404"},
		{"", "8.8.4.4", "2002:808:404::"},
		{"", "2002:808:404::1", "8.8.4.4"},
		{"", "2002:808:404::1", "64:ff9b::808:404"},
	}
	for _, tc := range cases {
		addrs := func(a string) []netip.Addr {
			if a == "" {
				return nil
			}
			return []netip.Addr{netip.MustParseAddr(a)}
		}
		p, err := New(Config{
			LocalAddrs: func() ([]netip.Addr, error) { return addrs(tc.local), nil },
			Blocked:    func() []netip.Addr { return addrs(tc.blocked) },
		})
		if err != nil {
			t.Fatal(err)
		}
		n, err := p.never()
		if err != nil {
			t.Fatal(err)
		}
		if a := netip.MustParseAddr(tc.cand).Unmap(); p.reachable(a, n) { // as usable and control do
			t.Errorf("blocked %q local %q: %s reachable", tc.blocked, tc.local, tc.cand)
		}
	}
}

// TestAttackConnectIPForms: CONNECT to an address literal in a form that
// carries a Blocked address, where an admin's entry allows it.
func TestAttackConnectIPForms(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnvWith(t, func(p *Proxy) { p.blocked = func() []netip.Addr { return []netip.Addr{atkV4} } },
		mapResolver{}, fmt.Sprintf("127.0.0.1:%d", P), fmt.Sprintf("[64:ff9b::7f00:1]:%d", P), fmt.Sprintf("[2002:7f00:1::]:%d", P))
	for _, h := range []string{"127.0.0.1", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "127.1", "2130706433", "0x7f.1"} {
		for _, req := range []string{
			// A TLS client's first bytes follow the CONNECT: the refusal
			// answers as an alert and closes (waiting for them otherwise).
			fmt.Sprintf("CONNECT %s:%d HTTP/1.1\r\n\r\n\x16\x03\x01", h, P),
			fmt.Sprintf("GET http://%s:%d/ HTTP/1.1\r\nHost: %s:%d\r\n\r\n", h, P, h, P),
		} {
			code, body := atkExplicit(t, e, req)
			d := e.atkDenial(2 * time.Second)
			if d == nil || d.Reason != schema.EgressNotPublic && d.Reason != schema.EgressIPLiteral {
				t.Errorf("%q: %d %q, denial %v", req, code, clip(body), d)
				continue
			}
			// A CONNECT is answered 200 before the dial: the 403 follows it.
			t.Logf("%q: %d %s host=%q", req, code, d.Reason, d.Host)
		}
	}
	if dl := e.dialed(); len(dl) != 0 {
		t.Errorf("dialled %v", dl)
	}
	if got := s.requests(); len(got) != 0 {
		t.Errorf("upstream saw %q", got)
	}
}

// TestAttackDenialHostClean: refusals carry printable hosts of at most
// schema.MaxEgressHostBytes.
func TestAttackDenialHostClean(t *testing.T) {
	e := newEnv(t, local(), "web.test")
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	for _, req := range []string{
		"CONNECT " + long + ":443 HTTP/1.1\r\n\r\n",
		"GET http://" + long + "/ HTTP/1.1\r\nHost: " + long + "\r\n\r\n",
		"GET http://" + long + "/ HTTP/1.1\r\nHost: " + long + "." + "\r\n\r\n",
		"GET https://" + long + "/ HTTP/1.1\r\nHost: " + long + "\r\n\r\n",
		"GET /\xff\xfe HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: w\xffeb.test\r\n\r\n",
		"GET ws://\xc3\xa9.test/ HTTP/1.1\r\nHost: \xc3\xa9.test\r\n\r\n",
	} {
		code, body := atkExplicit(t, e, req)
		d := e.atkDenial(waitLong)
		if d == nil {
			t.Errorf("%q: %d, no denial", clip(req), code)
			continue
		}
		if len(d.Host) > schema.MaxEgressHostBytes || strings.IndexFunc(d.Host, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			t.Errorf("%q: denial host %q", clip(req), d.Host)
		}
		if strings.IndexFunc(d.Message, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			t.Errorf("%q: denial message %q", clip(req), d.Message)
		}
		if strings.IndexFunc(body, func(r rune) bool { return (r < 0x20 && r != '\n') || r > 0x7e }) >= 0 {
			t.Errorf("%q: 403 body %q", clip(req), body)
		}
		if code != 403 {
			t.Errorf("%q: status %d", clip(req), code)
		}
	}
}

// TestAttackConnectRefusalStyle: a CONNECT answered 200 whose dial is then
// refused tells the refusal in the tunnel's protocol: a TLS client gets
// the access_denied alert (design §12.1 "Refusals"), for a name and for
// an admin's address entry alike.
func TestAttackConnectRefusalStyle(t *testing.T) {
	_, secure := servers(t)
	e := newEnvWith(t, func(p *Proxy) { p.blocked = func() []netip.Addr { return []netip.Addr{atkV4} } },
		local("api.test"), fmt.Sprintf("api.test:%d", secure), fmt.Sprintf("127.0.0.1:%d", secure))
	for _, target := range []string{"api.test", "127.0.0.1"} {
		c := e.tcp("127.0.0.1:3128")
		br := bufio.NewReader(c)
		if _, err := fmt.Fprintf(c, "CONNECT %s:%d HTTP/1.1\r\n\r\n", target, secure); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, br, len(connectEstablished)); got != connectEstablished {
			t.Fatalf("%s: CONNECT answered %q", target, got)
		}
		tc := tls.Client(&atkBufConn{c, br}, &tls.Config{ServerName: "api.test", InsecureSkipVerify: true})
		err := tc.Handshake()
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Errorf("CONNECT %s then TLS: %v, want the access_denied alert", target, err)
		}
		e.expectDenial(schema.EgressNotPublic, target)
	}
	if dl := e.dialed(); len(dl) != 0 {
		t.Errorf("dialled %v", dl)
	}
}

// atkBufConn reads through br, which may hold bytes already read off c.
type atkBufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *atkBufConn) Read(b []byte) (int, error) { return c.br.Read(b) }

// TestAttackAbsoluteAuthorityDelims: the proxy takes an absolute-form
// target's authority up to '/' or '?', and the upstream must never read
// another host from it; a '#' (no part of a request-target, and where a
// lenient server could end the authority elsewhere) is refused.
func TestAttackAbsoluteAuthorityDelims(t *testing.T) {
	s := newAtkServer(t)
	P := s.port
	e := newEnv(t, local("web.test", "other.test"), fmt.Sprintf("web.test:%d", P))
	for _, tgt := range []string{
		fmt.Sprintf("http://web.test:%d#@other.test:%d/", P, P),
		fmt.Sprintf("http://web.test:%d?@other.test:%d/", P, P),
		fmt.Sprintf("http://web.test:%d#/@other.test/", P),
		fmt.Sprintf("http://web.test:%d/..//other.test/", P),
		fmt.Sprintf("http://web.test:%d?x=http://other.test/", P),
	} {
		before := len(s.requests())
		code, body := atkExplicit(t, e, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: web.test:%d\r\n\r\n", tgt, P))
		d := e.atkDenial(500 * time.Millisecond)
		t.Logf("%q: %d %q denial %v upstream %q", tgt, code, clip(body), d, s.requests()[before:])
		if strings.Contains(tgt, "#") && (code != 403 || d == nil || d.Reason != schema.EgressProtocol) {
			t.Errorf("%q: %d, denial %v; want 403 and a protocol refusal", tgt, code, d)
		}
		for _, r := range s.requests()[before:] {
			if !strings.HasPrefix(r, fmt.Sprintf("web.test:%d ", P)) {
				t.Errorf("%q: upstream read %q", tgt, r)
			}
		}
	}
}
