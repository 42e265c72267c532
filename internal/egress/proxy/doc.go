// Package proxy is the worker side of a sandbox's egress: the filtering
// proxy behind the unix socket the worker mounts at wire.SocketPath
// (docs/design.md §12). It is the security boundary. The relay inside the
// sandbox, and every header it sends, is untrusted: a job may speak the
// wire protocol itself.
//
// The common call, once per sandbox:
//
//	p, err := proxy.New(proxy.Config{Policy: policy, Logger: log})
//	l, err := p.Listen(ctx, socketPath) // mode 0666; refuses everything until Bind
//	l.Bind(proxy.Binding{JobID: id, List: list, OnDenied: publish})
//	...
//	l.Reset() // the job ended: its connections end, its names are forgotten
//	l.Close() // the sandbox is gone: the socket is removed
//
// # DNS (wire.KindDNS)
//
// Queries in RFC 1035 TCP framing, each of at most MaxDNSMessage bytes
// with exactly one question. A name (lower-cased, one trailing dot
// dropped, a host name by sniff.ParseHost) that the binding's list allows
// on any port gets, for type A, a synthetic address from wire.Synthetic:
// one per name per binding, stable while the binding lasts, never handed
// to another name by the same Listener until 2^22 names have gone by. AAAA
// for such a name is an empty NOERROR (the sandbox is IPv4 only), any
// other type REFUSED (protocol). A name not on the list is REFUSED
// (not_allowed, port 53); past MaxNames names, REFUSED (limit). Nothing is
// ever forwarded to a real resolver. A DNS connection idle for
// DNSIdleTimeout is closed.
//
// # TCP (wire.KindTCP)
//
// The header's Dst decides:
//   - a synthetic address handed out to a name: the port must be allowed
//     for that name (not_allowed); the first bytes must be a TLS
//     ClientHello whose SNI is that name, or HTTP/1.x request heads whose
//     Host is that name (mismatch; no SNI or Host is a mismatch too, ECH,
//     CONNECT, Upgrade and anything else are protocol);
//   - 127.0.0.1:wire.ProxyPort, the explicit proxy: one HTTP request head,
//     CONNECT host:port (a name on the list, or an IP literal that an
//     admin's address entry allows, else not_allowed or ip_literal; then
//     "200 Connection established" and, for a name, the tunnel's first
//     bytes checked as above) or an absolute-form http:// request, passed
//     as plain HTTP to its host;
//   - anything else (an unassigned synthetic address, 127.0.0.1:443...):
//     ip_literal.
//
// Then the proxy resolves the name itself (Config.Resolver), keeps the
// addresses Policy allows that are not this host's own (LocalAddrs;
// Policy.TestPublic excepted), dials them in order, re-checking each in
// the dialer's Control hook, replays the bytes it read and copies the
// rest both ways. No usable address: not_public, and nothing is dialled.
//
// On plain HTTP every request head of a keep-alive connection is read and
// checked: a later request to another Host is refused, and so is a body
// framed other than by Content-Length or chunked Transfer-Encoding, and
// a framing field spelt with '_' (some servers read it as '-'). The
// proxy walks request bodies to find the next head and never looks at
// responses. On the explicit proxy every request, the later ones of a
// keep-alive connection too, must be absolute-form http://; any other form,
// https:// included, is refused (protocol): HTTPS goes through CONNECT.
//
// # Refusals and bounds
//
// A refusal answers "403 Forbidden" with a short text (Connection: close)
// where the client spoke HTTP, a fatal access_denied alert where it spoke
// TLS, and nothing otherwise; then the connection closes, and the
// binding's OnDenied gets a schema.EgressDenial whose Host is clipped to
// schema.MaxEgressHostBytes of printable ASCII. A Listener holds at most
// MaxTCPConns TCP and MaxDNSConns DNS connections, and MaxPendingConns
// whose header has not arrived; past them the connection is closed at once
// (limit). The header must arrive within HeaderTimeout, the first
// ClientHello or request head within SniffTimeout, and an upstream must
// answer within DialTimeout. A server-speaks-first protocol therefore
// cannot pass: the proxy needs the client's first bytes.
//
// Until Bind, and after Reset, the Listener serves no job: a DNS query is
// answered REFUSED and the connection closed, a TCP connection closed at
// once, and nothing is reported.
package proxy
