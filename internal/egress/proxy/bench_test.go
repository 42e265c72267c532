package proxy

// Benchmarks of the proxy against a direct connection to the same upstream,
// measured in the same run so that the ratio can be read from one output:
//
//	go test -run '^$' -bench Egress -benchtime=300ms ./internal/egress/proxy/
//
// Everything stays on this machine: the upstreams listen on 127.0.0.1:0,
// the proxy on a unix socket in a temp dir.
//
// BenchmarkEgressThroughput/<path>/{direct,proxy} posts benchBody bytes per
// op on one kept-alive connection and reads a small 200 answer (the ack);
// MB/s counts the body. Its proxy sub-benchmark also reports
// speed-vs-direct, its MB/s over direct's from the same run (1 is no cost).
// The paths:
//
//   - tls: HTTP/1.1 inside a real TLS session with the listed name as SNI.
//     Past the ClientHello the proxy splices bytes without looking at them
//     (io.Copy from its bufio.Reader to the TCP upstream, splice(2) on
//     Linux), so this is its cheapest per-byte path, as a job sees it: the
//     crypto on both ends is in direct's number too.
//   - spliced: the same proxy path without the crypto: a real ClientHello
//     naming the host, then the same HTTP/1.1 in the clear (the upstream
//     skips the hello record). What is left is the proxy's own cost.
//   - http: plain HTTP/1.1, where the proxy walks each request: it checks
//     every head's Host and copies each Content-Length body with
//     io.CopyN to find the next head.
//
// BenchmarkEgressConnect/{direct,proxy} is the cost of one connection:
// open, one GET (Connection: close) and its answer, close. Through the
// proxy that is the unix socket, the wire header, the Host check and the
// proxy's own dial; the name is resolved once beforehand, as the sandbox's
// cache would. Its proxy sub-benchmark reports time-vs-direct, its ns/op
// over direct's.
//
// The helpers of harness_test.go take a *testing.T, which a benchmark does
// not have; benchProxy below is the part of newEnv and env.conn a
// benchmark needs.

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/sniff"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
)

// benchBody is the request body of one throughput op.
const benchBody = 4 << 20

// sinkMode is what a sink expects before its HTTP/1.1 requests.
type sinkMode int

const (
	sinkPlain sinkMode = iota // nothing
	sinkTLS                   // a TLS handshake: the requests are inside it
	sinkHello                 // one TLS record, a ClientHello, left unanswered
)

// startSink serves on 127.0.0.1:0, until the benchmark ends, requests whose
// bodies it reads and drops, answering each "200 ok"; it returns its port.
func startSink(b *testing.B, mode sinkMode, cfg *tls.Config) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSink(c, mode, cfg)
		}
	}()
	return port(ln)
}

func serveSink(c net.Conn, mode sinkMode, cfg *tls.Config) {
	defer c.Close()
	switch mode {
	case sinkTLS:
		c = tls.Server(c, cfg)
	case sinkHello:
		var h [5]byte // record header: type, version, length
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint16(h[3:]))); err != nil {
			return
		}
	}
	br := bufio.NewReader(c)
	buf := make([]byte, 256<<10) // large reads: the sink should not be what limits
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, req.Body, buf); err != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil || req.Close {
			return
		}
	}
}

// sinkTLSConfig is a server config with httptest's certificate (for
// example.com; clients skip verification, as insecureTLS does).
func sinkTLSConfig() *tls.Config {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	defer ts.Close()
	return &tls.Config{Certificates: ts.TLS.Certificates}
}

// clientHello is the first record crypto/tls sends to name.
func clientHello(b *testing.B, name string) []byte {
	b.Helper()
	cfg := insecureTLS()
	cfg.ServerName = name
	x, y := net.Pipe()
	defer x.Close()
	defer y.Close()
	go func() { _ = tls.Client(x, cfg).Handshake() }()
	_, raw, err := sniff.ReadClientHello(y, 0)
	if err != nil {
		b.Fatal(err)
	}
	if n := 5 + int(binary.BigEndian.Uint16(raw[3:5])); n != len(raw) {
		b.Fatalf("ClientHello of %d bytes in more than one record", len(raw))
	}
	return raw
}

// benchProxy is a Proxy and Listener bound to a job, as newEnv makes them.
type benchProxy struct {
	path   string
	denied chan schema.EgressDenial
}

func newBenchProxy(b *testing.B, res mapResolver, entries ...string) *benchProxy {
	b.Helper()
	p, err := New(Config{
		Resolver: res,
		Policy:   allow.Policy{TestPublic: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	bp := &benchProxy{path: filepath.Join(b.TempDir(), "egress.sock"), denied: make(chan schema.EgressDenial, 16)}
	l, err := p.Listen(b.Context(), bp.path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	list, err := allow.Parse(entries, true)
	if err != nil {
		b.Fatal(err)
	}
	l.Bind(Binding{JobID: "bench", List: list, OnDenied: func(d schema.EgressDenial) {
		select {
		case bp.denied <- d:
		default:
		}
	}})
	return bp
}

// conn opens a connection of kind to the socket as the relay does.
func (bp *benchProxy) conn(kind wire.Kind, dst string) (net.Conn, error) {
	c, err := net.Dial("unix", bp.path)
	if err != nil {
		return nil, err
	}
	if err := wire.Write(c, wire.Header{V: wire.Version, Kind: kind, Dst: dst}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// synth is name's synthetic address, from the proxy's DNS, and port.
func (bp *benchProxy) synth(b *testing.B, name string, port int) string {
	b.Helper()
	c, err := bp.conn(wire.KindDNS, "")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	m, err := exchange(c, name, dnsmessage.TypeA)
	if err != nil || m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 1 {
		b.Fatalf("A %s: %v, %v", name, err, m.RCode)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(m.Answers[0].Body.(*dnsmessage.AResource).A), uint16(port)).String()
}

// noDenial fails b if the proxy refused anything.
func (bp *benchProxy) noDenial(b *testing.B) {
	b.Helper()
	select {
	case d := <-bp.denied:
		b.Errorf("proxy refused: %+v", d)
	default:
	}
}

// ackOK reads one answer from br and checks it is the sink's.
func ackOK(br *bufio.Reader) error {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
		return fmt.Errorf("answer %d %q, %v", resp.StatusCode, body, err)
	}
	return nil
}

func BenchmarkEgressThroughput(b *testing.B) {
	tlsPort := startSink(b, sinkTLS, sinkTLSConfig())
	helloPort := startSink(b, sinkHello, nil)
	plainPort := startSink(b, sinkPlain, nil)
	bp := newBenchProxy(b, local("tls.test", "raw.test", "web.test"),
		fmt.Sprintf("tls.test:%d", tlsPort), fmt.Sprintf("raw.test:%d", helloPort), fmt.Sprintf("web.test:%d", plainPort))

	paths := []struct {
		name, host string
		port       int
		mode       sinkMode
	}{
		{"tls", "tls.test", tlsPort, sinkTLS},
		{"spliced", "raw.test", helloPort, sinkHello},
		{"http", "web.test", plainPort, sinkPlain},
	}
	for _, pt := range paths {
		// One buffer per path: the head, then the body.
		msg := fmt.Appendf(nil, "POST /sink HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", pt.host, benchBody)
		msg = append(msg, make([]byte, benchBody)...)
		var hello []byte
		if pt.mode == sinkHello {
			hello = clientHello(b, pt.host)
		}
		synth := bp.synth(b, pt.host, pt.port)
		dials := []struct {
			name string
			dial func() (net.Conn, error)
		}{
			{"direct", func() (net.Conn, error) { return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", pt.port)) }},
			{"proxy", func() (net.Conn, error) { return bp.conn(wire.KindTCP, synth) }},
		}
		b.Run(pt.name, func(b *testing.B) {
			var direct float64 // MB/s
			for _, d := range dials {
				b.Run(d.name, func(b *testing.B) {
					c, err := d.dial()
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					switch pt.mode {
					case sinkTLS:
						cfg := insecureTLS()
						cfg.ServerName = pt.host
						c = tls.Client(c, cfg)
					case sinkHello:
						if _, err := c.Write(hello); err != nil {
							b.Fatal(err)
						}
					}
					br := bufio.NewReader(c)
					b.SetBytes(benchBody)
					for b.Loop() {
						if _, err := c.Write(msg); err != nil {
							b.Fatal(err)
						}
						if err := ackOK(br); err != nil {
							b.Fatal(err)
						}
					}
					rate := float64(benchBody) * float64(b.N) / b.Elapsed().Seconds() / 1e6
					if d.name == "direct" {
						direct = rate
					} else if direct > 0 {
						b.ReportMetric(rate/direct, "speed-vs-direct")
					}
					bp.noDenial(b)
				})
			}
		})
	}
}

func BenchmarkEgressConnect(b *testing.B) {
	plainPort := startSink(b, sinkPlain, nil)
	bp := newBenchProxy(b, local("web.test"), fmt.Sprintf("web.test:%d", plainPort))
	synth := bp.synth(b, "web.test", plainPort)
	req := []byte("GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
	dials := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"direct", func() (net.Conn, error) { return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", plainPort)) }},
		{"proxy", func() (net.Conn, error) { return bp.conn(wire.KindTCP, synth) }},
	}
	var direct float64 // ns/op
	for _, d := range dials {
		b.Run(d.name, func(b *testing.B) {
			for b.Loop() {
				c, err := d.dial()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := ackOK(bufio.NewReader(c)); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if d.name == "direct" {
				direct = perOp
			} else if direct > 0 {
				b.ReportMetric(perOp/direct, "time-vs-direct")
			}
			bp.noDenial(b)
		})
	}
}
