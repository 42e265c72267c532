package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
)

// waitLong bounds every wait of a test on an event or an answer.
const waitLong = 10 * time.Second

// mapResolver resolves names from a map; a name not in it does not exist.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if as, ok := m[host]; ok {
		return as, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var loopback = netip.MustParseAddr("127.0.0.1")

// env is one Proxy and Listener bound to a job, as a worker has them.
type env struct {
	t      *testing.T
	p      *Proxy
	l      *Listener
	path   string
	denied chan schema.EgressDenial
	// dials counts the addresses the dialer's Control hook let through.
	mu    sync.Mutex
	dials []netip.AddrPort
}

// newEnv starts a Listener in a temp dir, bound to a job with entries,
// whose names resolve through res. Servers on 127.0.0.1 count as public.
func newEnv(t *testing.T, res mapResolver, entries ...string) *env {
	t.Helper()
	return newEnvWith(t, nil, res, entries...)
}

// newEnvWith is newEnv with tune called on the Proxy before Listen.
func newEnvWith(t *testing.T, tune func(*Proxy), res mapResolver, entries ...string) *env {
	t.Helper()
	p, err := New(Config{
		Resolver: res,
		Policy:   allow.Policy{TestPublic: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, p: p, denied: make(chan schema.EgressDenial, 256)}
	p.beforeDial = func(ap netip.AddrPort) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.dials = append(e.dials, ap)
		return nil
	}
	if tune != nil {
		tune(p)
	}
	e.path = filepath.Join(t.TempDir(), "egress.sock")
	e.l, err = p.Listen(t.Context(), e.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.l.Close() })
	e.bind(entries...)
	return e
}

// bind binds the Listener to a job with entries.
func (e *env) bind(entries ...string) {
	e.t.Helper()
	list, err := allow.Parse(entries, true)
	if err != nil {
		e.t.Fatal(err)
	}
	e.l.Bind(Binding{JobID: "job-1", List: list, OnDenied: func(d schema.EgressDenial) { e.denied <- d }})
}

// dialed is the addresses dialled so far.
func (e *env) dialed() []netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]netip.AddrPort(nil), e.dials...)
}

// expectDenial waits for the next refusal and checks its reason and host.
func (e *env) expectDenial(reason schema.EgressReason, host string) schema.EgressDenial {
	e.t.Helper()
	select {
	case d := <-e.denied:
		if d.Reason != reason || host != "" && d.Host != host {
			e.t.Fatalf("denial %+v, want reason %s host %q", d, reason, host)
		}
		return d
	case <-time.After(waitLong):
		e.t.Fatalf("no %s denial", reason)
	}
	return schema.EgressDenial{}
}

// noDenial checks that nothing was refused so far.
func (e *env) noDenial() {
	e.t.Helper()
	select {
	case d := <-e.denied:
		e.t.Fatalf("unexpected denial %+v", d)
	default:
	}
}

// conn opens a connection of kind to the socket as the relay does.
func (e *env) conn(kind wire.Kind, dst string) net.Conn {
	e.t.Helper()
	c, err := net.Dial("unix", e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLong))
	if err := wire.Write(c, wire.Header{V: wire.Version, Kind: kind, Dst: dst}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// tcp opens a TCP connection the job made to dst.
func (e *env) tcp(dst string) net.Conn { return e.conn(wire.KindTCP, dst) }

// query asks the proxy's DNS one question.
func (e *env) query(name string, typ dnsmessage.Type) dnsmessage.Message {
	e.t.Helper()
	c := e.conn(wire.KindDNS, "")
	defer c.Close()
	m, err := exchange(c, name, typ)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// exchange sends one query on a DNS connection and reads its answer.
func exchange(c net.Conn, name string, typ dnsmessage.Type) (dnsmessage.Message, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		return dnsmessage.Message{}, err
	}
	q, _ := b.Finish()
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		return dnsmessage.Message{}, err
	}
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return dnsmessage.Message{}, err
	}
	resp := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return dnsmessage.Message{}, err
	}
	var m dnsmessage.Message
	return m, m.Unpack(resp)
}

// resolve is the job's lookup of name: its synthetic address.
func (e *env) resolve(name string) netip.Addr {
	e.t.Helper()
	m := e.query(name, dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 1 {
		e.t.Fatalf("A %s: rcode %v, %d answers", name, m.RCode, len(m.Answers))
	}
	a := netip.AddrFrom4(m.Answers[0].Body.(*dnsmessage.AResource).A)
	if !wire.Synthetic.Contains(a) {
		e.t.Fatalf("A %s = %s, outside %s", name, a, wire.Synthetic)
	}
	return a
}

// dialContext connects as a program in the sandbox does: names through
// the proxy's DNS, then a TCP connection to the address it handed out.
func (e *env) dialContext(_ context.Context, _, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		a = e.resolve(host)
	}
	pn, _ := strconv.Atoi(port)
	return e.tcp(netip.AddrPortFrom(a, uint16(pn)).String()), nil
}

// client is an HTTP client in the sandbox: DNS and TCP through the proxy.
func (e *env) client(proxy string) *http.Client {
	tr := &http.Transport{
		DialContext:     e.dialContext,
		TLSClientConfig: insecureTLS(),
	}
	if proxy != "" {
		tr.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse(proxy) }
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitLong}
}

// get fetches url and returns status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// readResponse reads one HTTP response from c.
func readResponse(t *testing.T, br *bufio.Reader) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// synth is name's synthetic address and port as a Dst.
func (e *env) synth(name string, port int) string {
	return netip.AddrPortFrom(e.resolve(name), uint16(port)).String()
}

// request is a minimal HTTP/1.1 GET for host.
func request(host string) string {
	return fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
}

// insecureTLS trusts any server: the test servers' certificates name
// example.com, and what is under test is the SNI the client sends.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
