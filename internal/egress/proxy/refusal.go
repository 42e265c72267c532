package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/brig-dev/brig/schema"
)

// refusal is the proxy saying no to one connection or query: it becomes
// the binding's schema.EgressDenial and, on the connection, a 403 or a
// TLS alert.
type refusal struct {
	host   string // as the job gave it; cleaned by denial
	port   int
	reason schema.EgressReason
	msg    string
}

func refuse(host string, port int, reason schema.EgressReason, format string, args ...any) *refusal {
	return &refusal{host: host, port: port, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (r *refusal) Error() string {
	return fmt.Sprintf("egress refused (%s) %s: %s", r.reason, r.target(), r.msg)
}

// target is host:port as text fit for a denial or a 403.
func (r *refusal) target() string {
	h := cleanHost(r.host)
	if r.port == 0 {
		return h
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(r.port)
}

func (r *refusal) denial() schema.EgressDenial {
	return schema.EgressDenial{
		Host:    cleanHost(r.host),
		Port:    r.port,
		Reason:  r.reason,
		Message: schema.ClipText(printable(r.msg), schema.MaxEventTextBytes),
	}
}

// cleanHost makes a job-controlled host fit for an event: printable ASCII
// of at most schema.MaxEgressHostBytes.
func cleanHost(h string) string {
	return schema.ClipText(printable(h), schema.MaxEgressHostBytes)
}

// printable replaces every byte outside printable ASCII with '?'.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// upstreamError is a failure past the checks: the name did not resolve,
// no address answered. It is no refusal (nothing is reported), but an
// HTTP client gets a 502 saying so.
type upstreamError struct{ err error }

func (e *upstreamError) Error() string { return e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// style is how a refusal is told to the client: as it spoke.
type style int

const (
	styleNone style = iota // close, say nothing
	styleTLS               // a fatal access_denied alert
	styleHTTP              // 403 Forbidden
)

// styleOf guesses from a connection's first byte how it will understand a
// refusal: 22 opens a TLS handshake record, a letter an HTTP method.
func styleOf(first byte) style {
	switch {
	case first == 22:
		return styleTLS
	case 'A' <= first && first <= 'Z' || 'a' <= first && first <= 'z':
		return styleHTTP
	}
	return styleNone
}

// alertAccessDenied is a TLS record (type 21, alert; version 3.3) holding
// a fatal (2) access_denied (49) alert, RFC 8446 §6.
var alertAccessDenied = []byte{21, 3, 3, 0, 2, 2, 49}

// tell writes the refusal (or upstream failure) to c in st's form.
func tell(c net.Conn, st style, err error) {
	var b []byte
	switch st {
	case styleTLS:
		var r *refusal
		if !errors.As(err, &r) {
			return
		}
		b = alertAccessDenied
	case styleHTTP:
		b = httpError(err)
	default:
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, _ = c.Write(b)
}

// httpError is the response for a refusal (403) or an upstream failure
// (502).
func httpError(err error) []byte {
	status, body := "502 Bad Gateway", "brig egress: could not reach the upstream: "+printable(err.Error())+"\n"
	var r *refusal
	if errors.As(err, &r) {
		status = "403 Forbidden"
		body = fmt.Sprintf("brig egress refused %s (%s): %s\n", r.target(), r.reason, printable(r.msg))
	}
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, len(body), body)
}

// errClientGone marks a client that went away before saying anything:
// nothing to refuse.
var errClientGone = errors.New("client closed the connection")

// isTimeout reports a deadline that ran out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// quietEOF turns a clean end of the client's stream into errClientGone.
func quietEOF(err error, read int) error {
	if read == 0 && errors.Is(err, io.EOF) {
		return errClientGone
	}
	return err
}
