// Package egresstest stands up the outside world for egress tests
// (docs/design.md §12, issue 15 "How to test it here"): a network
// namespace on this machine, joined to the host by a veth pair, with
// HTTPS, HTTP, TCP echo, UDP and DNS servers listening inside it, a CA
// that signs their names, and a resolver map to give a worker's egress
// proxy. No packet leaves the machine: the namespace has no route but its
// own link to the host.
//
// It is test support, imported by tests only (e2e among them, hence not a
// _test file); product code must never import it. It needs root and the
// ip command (iproute2).
//
// The common call:
//
//	n := egresstest.Start(t)
//	cfg := proxy.Config{Resolver: n.Resolver, Policy: allow.Policy{TestPublic: []netip.Prefix{n.PublicPrefix}}}
//	... a job fetches https://ok.test/ trusting n.CAPEM ...
//	if n.Hits().HTTPS == 0 { ... the server was never reached ... }
package egresstest
