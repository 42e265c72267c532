// Package sniff reads the first bytes a sandboxed client sends to its
// worker's filtering proxy and says where the client wants to go: the SNI
// of a TLS ClientHello, the Host of a plain HTTP request, the authority of
// an HTTP CONNECT (docs/design.md §12). It decides nothing: a policy
// matches the Destination against the job's egress list.
//
// The bytes read are returned as raw, whatever the outcome, so that the
// proxy can replay them to the upstream it dials and then copy the rest of
// the connection both ways; each reader consumes exactly raw and nothing
// past it. Input is hostile: lengths are checked against their containers,
// sizes are capped (DefaultMax), ambiguity is refused rather than
// resolved, and no input makes a reader panic (the fuzz tests hold that).
//
// The common call, in the proxy's TLS listener:
//
//	hello, raw, err := sniff.ReadClientHello(conn, 0)
//	if err != nil {
//		return deny(err) // ErrNoSNI, ErrIPLiteral, *MalformedError, ...
//	}
//	dest := sniff.Destination{Host: hello.ServerName, Port: 443}
//	up, err := dialAllowed(ctx, dest) // policy, then resolve and check the address
//	...
//	up.Write(raw)
//
// and for plain HTTP and CONNECT, with ReadHTTPRequestHead on a
// bufio.Reader around the connection, whose buffered remainder must be
// forwarded too. A keep-alive connection may carry a second request to
// another Host: the proxy must read each request's head, or close after
// the first.
//
// The package imports the standard library only.
package sniff
