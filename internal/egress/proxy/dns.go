package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/brig-dev/brig/internal/egress/sniff"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
)

// serveDNS answers c's queries, one at a time, until the client closes,
// idles for DNSIdleTimeout or sends what is not a query. Unbound (s nil),
// it answers one query REFUSED and closes.
func (l *Listener) serveDNS(c net.Conn, br *bufio.Reader, s *session) {
	for {
		_ = c.SetReadDeadline(time.Now().Add(l.p.wait.dnsIdle))
		q, err := readDNSMessage(br)
		if err != nil {
			if s != nil && !errors.Is(err, io.EOF) && !isTimeout(err) && !errors.Is(err, net.ErrClosed) {
				s.deny(refuse("", wire.DNSPort, schema.EgressProtocol, "%v", err))
			}
			return
		}
		resp, r := answerDNS(q, s)
		if r != nil && s != nil {
			s.deny(r)
		}
		if resp == nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp)))); err != nil {
			return
		}
		if _, err := c.Write(resp); err != nil || s == nil {
			return
		}
	}
}

// errDNSSize is a query whose length prefix is 0 or over MaxDNSMessage.
var errDNSSize = fmt.Errorf("DNS message of 0 or more than %d bytes", MaxDNSMessage)

// readDNSMessage reads one length-prefixed message.
func readDNSMessage(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size == 0 || size > MaxDNSMessage {
		return nil, errDNSSize
	}
	q := make([]byte, size)
	if _, err := io.ReadFull(r, q); err != nil {
		return nil, err
	}
	return q, nil
}

// answerDNS answers one query for the binding s (nil: none, everything
// REFUSED and nothing reported). resp is nil for what is not a query at
// all (the connection then closes); r is the refusal to report, if any.
func answerDNS(q []byte, s *session) (resp []byte, r *refusal) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil, refuse("", wire.DNSPort, schema.EgressProtocol, "not a DNS query")
	}
	qs, err := p.AllQuestions()
	switch {
	case err != nil || len(qs) != 1:
		return reply(h, nil, dnsmessage.RCodeFormatError, nil),
			refuse("", wire.DNSPort, schema.EgressProtocol, "a DNS query must hold exactly one question")
	case h.OpCode != 0:
		return reply(h, &qs[0], dnsmessage.RCodeNotImplemented, nil),
			refuse("", wire.DNSPort, schema.EgressProtocol, "DNS opcode %d; only standard queries are answered", h.OpCode)
	case s == nil:
		return reply(h, &qs[0], dnsmessage.RCodeRefused, nil), nil
	}
	rcode, a, r := s.lookup(qs[0])
	return reply(h, &qs[0], rcode, a), r
}

// lookup decides one question: the name must be on the list, the type A
// (a synthetic address) or AAAA (no address).
func (s *session) lookup(q dnsmessage.Question) (dnsmessage.RCode, *dnsmessage.AResource, *refusal) {
	raw := strings.TrimSuffix(q.Name.String(), ".")
	d, err := sniff.ParseHost(raw)
	switch {
	case err != nil:
		return dnsmessage.RCodeRefused, nil, refuse(raw, wire.DNSPort, schema.EgressProtocol, "DNS query for what is not a host name")
	case d.IsIP:
		return dnsmessage.RCodeRefused, nil, refuse(d.Host, wire.DNSPort, schema.EgressIPLiteral, "DNS query for a name that reads as an IP address")
	case !s.allowsName(d.Host):
		return dnsmessage.RCodeRefused, nil, refuse(d.Host, wire.DNSPort, schema.EgressNotAllowed, "%s is not on this job's egress list", d.Host)
	case q.Class != dnsmessage.ClassINET:
		return dnsmessage.RCodeRefused, nil, refuse(d.Host, wire.DNSPort, schema.EgressProtocol, "DNS class %v; only IN is answered", q.Class)
	case q.Type == dnsmessage.TypeAAAA:
		return dnsmessage.RCodeSuccess, nil, nil // the sandbox is IPv4 only
	case q.Type != dnsmessage.TypeA:
		return dnsmessage.RCodeRefused, nil, refuse(d.Host, wire.DNSPort, schema.EgressProtocol, "DNS type %v; only A and AAAA are answered", q.Type)
	}
	a, ok := s.names.addr(d.Host)
	if !ok {
		return dnsmessage.RCodeRefused, nil, refuse(d.Host, wire.DNSPort, schema.EgressLimit, "more than %d names in one job", MaxNames)
	}
	return dnsmessage.RCodeSuccess, &dnsmessage.AResource{A: a.As4()}, nil
}

// reply builds the answer to query h: q echoed as asked (letter case
// included), a as its one record when set.
func reply(h dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, a *dnsmessage.AResource) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	// The Builder fails only on misuse or a name it cannot pack; q was
	// unpacked by the same package, so neither happens.
	_ = b.StartQuestions()
	if q != nil {
		_ = b.Question(*q)
	}
	if a != nil {
		_ = b.StartAnswers()
		_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: SyntheticTTL}, *a)
	}
	out, _ := b.Finish()
	return out
}
