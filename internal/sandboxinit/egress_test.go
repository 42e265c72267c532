//go:build linux

package sandboxinit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/internal/initproto"
)

// failAfter bounds every wait of these tests: a failure bound, never a
// measurement.
const failAfter = 20 * time.Second

func TestEgressPorts(t *testing.T) {
	t.Parallel()
	many := func(n int) []int {
		ps := make([]int, n)
		for i := range ps {
			ps[i] = 1000 + i
		}
		return ps
	}
	for _, tc := range []struct {
		name  string
		ports []int
		want  []int
		bad   bool
	}{
		{name: "none", want: []int{wire.ProxyPort}},
		{name: "sorted once", ports: []int{443, 80, 443, wire.ProxyPort}, want: []int{80, 443, wire.ProxyPort}},
		{name: "extremes", ports: []int{1, 65535}, want: []int{1, wire.ProxyPort, 65535}},
		{name: "most", ports: many(relayMaxPorts - 1), want: append(many(relayMaxPorts-1), wire.ProxyPort)},
		{name: "too many", ports: many(relayMaxPorts), bad: true},
		{name: "zero", ports: []int{0}, bad: true},
		{name: "negative", ports: []int{-443}, bad: true},
		{name: "too big", ports: []int{65536}, bad: true},
		{name: "dns", ports: []int{443, wire.DNSPort}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := egressPorts(&initproto.EgressRelay{Ports: tc.ports})
			if tc.bad {
				if !errors.Is(err, errEgressRequest) {
					t.Fatalf("egressPorts(%v) = %v, %v; want an errEgressRequest", tc.ports, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("egressPorts(%v) = %v, %v; want %v", tc.ports, got, err, tc.want)
			}
		})
	}
}

func TestRelayTCP(t *testing.T) {
	t.Parallel()
	px := serveProxy(t, nil)
	r, _ := startTestRelay(t, relayConfig{host: "127.0.0.1", ports: []int{0}, socket: px.path})
	addr := r.tcp[0].Addr().String()
	c := dialTCP(t, addr)
	if h := px.header(t); h != (wire.Header{V: wire.Version, Kind: wire.KindTCP, Dst: addr}) {
		t.Fatalf("header %+v, want a tcp header with dst %s", h, addr)
	}
	// More than any socket buffer, written while the echo comes back; the
	// end of the request (a half-close) must reach the proxy, and its own
	// end come back, for the read to finish.
	sent := bytes.Repeat([]byte("brig egress relay "), 1<<16)
	go func() {
		_, _ = c.Write(sent)
		_ = c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, sent) {
		t.Fatalf("echo: %d bytes (%v), want the %d sent", len(got), err, len(sent))
	}
}

func TestRelayDNSOverUDP(t *testing.T) {
	t.Parallel()
	px := serveProxy(t, nil)
	r, logs := startTestRelay(t, relayConfig{host: "127.0.0.1", socket: px.path})
	c, err := net.Dial("udp4", r.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for id := uint16(1); id <= 3; id++ {
		ask(t, c, dnsQuery(id, "api.example.test"))
		if h := px.header(t); h != (wire.Header{V: wire.Version, Kind: wire.KindDNS}) {
			t.Fatalf("header %+v, want a dns header", h)
		}
	}
	// A datagram past relayMaxDNSBytes is dropped, not cut and relayed.
	if _, err := c.Write(make([]byte, relayMaxDNSBytes+1)); err != nil {
		t.Fatal(err)
	}
	logs.await(t, "dns query too large")
}

func TestRelayDNSOverTCP(t *testing.T) {
	t.Parallel()
	px := serveProxy(t, nil)
	r, _ := startTestRelay(t, relayConfig{host: "127.0.0.1", socket: px.path})
	dns := r.tcp[len(r.tcp)-1] // the DNS port's, after every port of cfg.ports
	c := dialTCP(t, dns.Addr().String())
	if h := px.header(t); h != (wire.Header{V: wire.Version, Kind: wire.KindDNS}) {
		t.Fatalf("header %+v, want a dns header", h)
	}
	for id := uint16(7); id < 10; id++ {
		ans, err := exchange(c, dnsQuery(id, "cdn.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		checkAnswer(t, ans, id)
	}
}

func TestRelayConnLimit(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	px := serveProxy(t, hold)
	r, logs := startTestRelay(t, relayConfig{host: "127.0.0.1", ports: []int{0}, socket: px.path, maxConns: 2})
	addr := r.tcp[0].Addr().String()
	held := []*net.TCPConn{dialTCP(t, addr), dialTCP(t, addr)}
	px.header(t)
	px.header(t)
	// Both relays are taken: the next connection is closed unread.
	over := dialTCP(t, addr)
	_ = over.SetReadDeadline(time.Now().Add(failAfter))
	if n, err := over.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection past the limit read %d bytes, %v; want it closed", n, err)
	}
	logs.await(t, "too many connections")
	close(hold)
	for _, c := range held {
		roundTrip(t, c, "after the hold")
	}
	// The slots come free once those relays have ended: a new connection
	// is served again (it may be refused until then).
	deadline := time.Now().Add(failAfter)
	for {
		c := dialTCP(t, addr)
		if got, ok := tryRoundTrip(c, "again"); ok {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no connection served after the limit cleared (last read %q)", got)
		}
		time.Sleep(10 * time.Millisecond) // polling pace, not a wait for anything
	}
}

func TestRelayDNSLimit(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	px := serveProxy(t, hold)
	r, logs := startTestRelay(t, relayConfig{host: "127.0.0.1", socket: px.path, maxDNS: 2})
	c, err := net.Dial("udp4", r.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for id := uint16(1); id <= 2; id++ {
		if _, err := c.Write(dnsQuery(id, "a.example.test")); err != nil {
			t.Fatal(err)
		}
		px.header(t)
	}
	if _, err := c.Write(dnsQuery(3, "a.example.test")); err != nil {
		t.Fatal(err)
	}
	logs.await(t, "too many dns queries in flight")
	close(hold)
	var ids []uint16
	for range 2 {
		ids = append(ids, checkAnswer(t, readAnswer(t, c), 0))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint16{1, 2}) {
		t.Fatalf("answers for %v, want 1 and 2 (3 dropped)", ids)
	}
	// And the relay still answers.
	ask(t, c, dnsQuery(4, "a.example.test"))
}

func TestRelaySocketMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := startRelay(t.Context(), slog.New(slog.DiscardHandler), relayConfig{host: "127.0.0.1", socket: filepath.Join(dir, "none")}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("start without a socket: %v, want ErrNotExist", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := startRelay(t.Context(), slog.New(slog.DiscardHandler), relayConfig{host: "127.0.0.1", socket: file}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("start with a file for a socket: %v", err)
	}

	px := serveProxy(t, nil)
	r, logs := startTestRelay(t, relayConfig{host: "127.0.0.1", ports: []int{0}, socket: px.path})
	addr := r.tcp[0].Addr().String()
	px.close() // removes the socket
	c := dialTCP(t, addr)
	if got, ok := tryRoundTrip(c, "nobody there"); ok {
		t.Fatalf("a connection without a proxy read %q", got)
	}
	logs.await(t, "cannot reach the egress socket")
	px2 := serveProxyAt(t, px.path, nil)
	roundTrip(t, dialTCP(t, addr), "back")
	px2.header(t)
}

func TestRelayBindFails(t *testing.T) {
	t.Parallel()
	px := serveProxy(t, nil)
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	port := taken.Addr().(*net.TCPAddr).Port
	_, err = startRelay(t.Context(), slog.New(slog.DiscardHandler), relayConfig{host: "127.0.0.1", ports: []int{0, port}, socket: px.path})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("start on a taken port: %v, want EADDRINUSE", err)
	}
}

func TestRelayStop(t *testing.T) {
	t.Parallel()
	px := serveProxy(t, make(chan struct{})) // held until the test ends
	r, _ := startTestRelay(t, relayConfig{host: "127.0.0.1", ports: []int{0}, socket: px.path})
	addr := r.tcp[0].Addr().String()
	// One connection mid-relay, one DNS query in flight: the proxy holds
	// both.
	c := dialTCP(t, addr)
	px.header(t)
	u, err := net.Dial("udp4", r.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	if _, err := u.Write(dnsQuery(1, "a.example.test")); err != nil {
		t.Fatal(err)
	}
	px.header(t)

	stopped := make(chan struct{})
	go func() { r.stop(); r.stop(); close(stopped) }()
	select {
	case <-stopped: // every goroutine of the relay is done (its WaitGroup)
	case <-time.After(failAfter):
		t.Fatal("stop did not return")
	}
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a relayed connection read %d bytes, %v after stop; want it closed", n, err)
	}
	if c, err := net.Dial("tcp4", addr); err == nil {
		c.Close()
		t.Fatal("the relay's listener still accepts after stop")
	}
}

// TestRelayInNetns runs the relay as a sandbox does, on 0.0.0.0 and the
// real ports, in a network namespace of the test's own (loopback only):
// a connection to a synthetic address reaches it, and its header names
// that address.
func TestRelayInNetns(t *testing.T) {
	runtime.LockOSThread() // never unlocked: the thread ends with the test
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("no network namespace of our own (needs root): %v", err)
	}
	loopbackUp(t)
	px := serveProxy(t, nil)
	r, _ := startTestRelay(t, relayConfig{host: "0.0.0.0", ports: []int{443, wire.ProxyPort}, dnsPort: wire.DNSPort, socket: px.path})
	for _, dst := range []string{"127.64.0.9:443", "127.0.0.1:3128", "127.64.0.9:3128"} {
		c := dialTCP(t, dst)
		if h := px.header(t); h.Kind != wire.KindTCP || h.Dst != dst {
			t.Fatalf("dialled %s, header %+v", dst, h)
		}
		roundTrip(t, c, "to "+dst)
	}
	u, err := net.Dial("udp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	ask(t, u, dnsQuery(53, "api.example.test"))
	if h := px.header(t); h.Kind != wire.KindDNS {
		t.Fatalf("header %+v, want a dns header", h)
	}
	if r.udp.LocalAddr().String() != "0.0.0.0:53" {
		t.Fatalf("dns on %s", r.udp.LocalAddr())
	}
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
}

// startTestRelay starts a relay (cfg's DNS port 0 unless set) that the
// test stops when it ends, logging to the test.
func startTestRelay(t *testing.T, cfg relayConfig) (*relay, *logSink) {
	t.Helper()
	logs := &logSink{t: t, msgs: make(chan string, 256)}
	r, err := startRelay(t.Context(), slog.New(logs), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r, logs
}

// logSink writes a relay's log to the test and passes its messages on,
// the signals the tests wait for.
type logSink struct {
	t    *testing.T
	msgs chan string
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }

func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	s.t.Log(r.Level, r.Message)
	select {
	case s.msgs <- r.Message:
	default:
	}
	return nil
}

// await waits for a message containing part.
func (s *logSink) await(t *testing.T, part string) {
	t.Helper()
	timeout := time.After(failAfter)
	for {
		select {
		case m := <-s.msgs:
			if strings.Contains(m, part) {
				return
			}
		case <-timeout:
			t.Fatalf("the relay never logged %q", part)
		}
	}
}

// proxy is a stand-in for the worker's proxy at the far end of the egress
// socket: it records each header, waits for hold (if any) to close, then
// echoes a tcp connection and answers a dns one.
type proxy struct {
	path    string
	ln      *net.UnixListener
	hold    chan struct{}
	done    chan struct{} // closed by close
	headers chan wire.Header
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	once    sync.Once
}

func serveProxy(t *testing.T, hold chan struct{}) *proxy {
	return serveProxyAt(t, filepath.Join(t.TempDir(), "egress.sock"), hold)
}

func serveProxyAt(t *testing.T, path string, hold chan struct{}) *proxy {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{path: path, ln: ln, hold: hold, done: make(chan struct{}), headers: make(chan wire.Header, 64)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptUnix()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() { defer p.wg.Done(); defer c.Close(); p.serve(c) }()
	}
}

func (p *proxy) serve(c *net.UnixConn) {
	br := bufio.NewReader(c)
	h, _, err := wire.Read(br)
	if err != nil {
		return
	}
	select {
	case p.headers <- h:
	case <-p.done:
		return
	}
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-p.done:
			return
		}
	}
	if h.Kind == wire.KindTCP {
		_, _ = io.Copy(c, br)
		_ = c.CloseWrite()
		return
	}
	for {
		q, err := readFramed(br)
		if err != nil {
			return
		}
		ans := dnsAnswer(q)
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(ans))), ans...)); err != nil {
			return
		}
	}
}

// close stops the proxy (its socket goes), ends its connections and
// waits for its goroutines.
func (p *proxy) close() {
	p.once.Do(func() {
		close(p.done)
		_ = p.ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
}

// header returns the next header the proxy read.
func (p *proxy) header(t *testing.T) wire.Header {
	t.Helper()
	select {
	case h := <-p.headers:
		return h
	case <-time.After(failAfter):
		t.Fatal("no connection reached the proxy")
		return wire.Header{}
	}
}

func readFramed(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err := io.ReadFull(r, msg)
	return msg, err
}

// dnsQuery is an RFC 1035 query for name's A record.
func dnsQuery(id uint16, name string) []byte {
	// ID, flags (RD), QDCOUNT 1, AN/NS/ARCOUNT 0.
	msg := binary.BigEndian.AppendUint16(nil, id)
	msg = append(msg, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0)
	for _, label := range strings.Split(name, ".") {
		msg = append(msg, byte(len(label)))
		msg = append(msg, label...)
	}
	return append(msg, 0, 0, 1, 0, 1) // root, QTYPE A, QCLASS IN
}

// dnsAnswer answers query q (one question) with 127.64.0.1, as brig's
// DNS would.
func dnsAnswer(q []byte) []byte {
	ans := slices.Clone(q)
	ans[2], ans[3] = 0x81, 0x80 // QR, RD, RA; NOERROR
	ans[7] = 1                  // ANCOUNT
	ans = append(ans, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
	return append(ans, 127, 64, 0, 1)
}

// checkAnswer checks ans is brig's answer (for id, unless 0) and returns
// its id.
func checkAnswer(t *testing.T, ans []byte, id uint16) uint16 {
	t.Helper()
	if len(ans) < 16 || ans[2]&0x80 == 0 || ans[7] != 1 || !bytes.HasSuffix(ans, []byte{127, 64, 0, 1}) {
		t.Fatalf("not an answer: % x", ans)
	}
	got := binary.BigEndian.Uint16(ans)
	if id != 0 && got != id {
		t.Fatalf("answer for id %d, want %d", got, id)
	}
	return got
}

// ask sends query q over UDP and checks its answer.
func ask(t *testing.T, c net.Conn, q []byte) {
	t.Helper()
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, readAnswer(t, c), binary.BigEndian.Uint16(q))
}

func readAnswer(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read dns answer: %v", err)
	}
	return buf[:n]
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip sends msg, half-closes, and wants msg echoed and the stream's
// end.
func roundTrip(t *testing.T, c *net.TCPConn, msg string) {
	t.Helper()
	if got, ok := tryRoundTrip(c, msg); !ok {
		t.Fatalf("sent %q, read %q", msg, got)
	}
}

func tryRoundTrip(c *net.TCPConn, msg string) (string, bool) {
	_ = c.SetDeadline(time.Now().Add(failAfter))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", false
	}
	if err := c.CloseWrite(); err != nil {
		return "", false
	}
	got, err := io.ReadAll(c)
	return string(got), err == nil && string(got) == msg
}
