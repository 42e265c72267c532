package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/wire"
)

// fuzzSession is a binding for the pure DNS logic.
func fuzzSession(f *testing.F) *session {
	list, err := allow.Parse([]string{"api.test", "*.wild.test:8443"}, false)
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	return &session{
		b: Binding{List: list}, ports: list.Ports(), names: newNames(&syntheticSeq{}),
		log: slog.New(slog.DiscardHandler), ctx: ctx, cancel: cancel,
	}
}

// FuzzAnswerDNS: any query gets nothing or a well-formed answer to it,
// whose only address is synthetic and for a name on the list.
func FuzzAnswerDNS(f *testing.F) {
	s := fuzzSession(f)
	for _, n := range []string{"api.test.", "API.test.", "x.wild.test.", "evil.test.", "1.2.3.4."} {
		for _, typ := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA, dnsmessage.TypeTXT} {
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
			_ = b.StartQuestions()
			_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: typ, Class: dnsmessage.ClassINET})
			q, _ := b.Finish()
			f.Add(q)
		}
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		resp, _ := answerDNS(q, s)
		if resp == nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		if !m.Response || len(m.Answers) > 1 {
			t.Fatalf("answer %+v", m.Header)
		}
		for _, a := range m.Answers {
			r, ok := a.Body.(*dnsmessage.AResource)
			if !ok || !wire.Synthetic.Contains(netip.AddrFrom4(r.A)) {
				t.Fatalf("answer record %v", a)
			}
			name := strings.TrimSuffix(a.Header.Name.String(), ".")
			if !s.allowsName(name) {
				t.Fatalf("address for %q, not on the list", name)
			}
		}
	})
}

// FuzzWalkHTTP: what walkHTTP passes on after a first, bodiless request
// is a prefix of what the client sent, and net/http, reading it as an
// upstream would, finds no request for another host in it.
func FuzzWalkHTTP(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nHost: b.test\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: b.test\r\n\r\n"))
	f.Add([]byte("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &client{br: bufio.NewReader(bytes.NewReader(in))}
		var out bytes.Buffer
		_ = c.walkHTTP(&out, &target{host: "a.test", port: 80, http: true})
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("forwarded %q, not a prefix of the input", out.Bytes())
		}
		up := bufio.NewReader(&out)
		for {
			req, err := http.ReadRequest(up)
			if err != nil {
				return
			}
			host := req.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if !strings.EqualFold(strings.TrimSuffix(host, "."), "a.test") {
				t.Fatalf("net/http reads a request for %q from %q", req.Host, in)
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
		}
	})
}
