//go:build linux

package sandboxinit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/internal/initproto"
)

// The egress relay (docs/design.md §12.1) hands every connection the job
// makes, and every DNS query, to the worker's filtering proxy over the
// egress socket. It is plumbing, not a boundary: the job runs with the same
// uid and may speak to the socket itself; the proxy checks everything. So
// it is kept simple, and bounded against a job that floods it.
const (
	// relayMaxConns bounds the TCP connections relayed at once (DNS over
	// TCP included): past it an accepted connection is closed at once.
	relayMaxConns = 128
	// relayMaxDNS bounds the UDP DNS queries in flight: past it a query is
	// dropped, and the job's resolver asks again (wire.ResolvConf).
	relayMaxDNS = 32
	// relayMaxDNSBytes is the largest UDP DNS query relayed and the
	// largest answer sent back (EDNS's usual buffer); bigger are dropped.
	relayMaxDNSBytes = 4096
	// relayDNSTimeout bounds one UDP DNS query, from the dial of the
	// egress socket to the answer.
	relayDNSTimeout = 5 * time.Second
	// relayHeaderTimeout bounds dialling the egress socket and writing a
	// connection's header.
	relayHeaderTimeout = 5 * time.Second
	// relayMaxPorts bounds the TCP ports one relay listens on: an egress
	// list has at most allow.MaxEntries entries, each naming one port or
	// none (443 and 80), so 65 ports, and wire.ProxyPort.
	relayMaxPorts = allow.MaxEntries + 2
	// relayMaxPause caps the pause after a failed accept or read (out of
	// file descriptors, say), which doubles from relayMinPause.
	relayMinPause, relayMaxPause = 5 * time.Millisecond, time.Second
)

// errEgressRequest marks a request's egress settings the init refuses.
var errEgressRequest = errors.New("egress relay request")

// egressPorts checks e and returns the TCP ports the relay listens on:
// e.Ports and wire.ProxyPort, sorted, each once.
func egressPorts(e *initproto.EgressRelay) ([]int, error) {
	ports := []int{wire.ProxyPort}
	for _, p := range e.Ports {
		if p < 1 || p > 65535 || p == wire.DNSPort {
			return nil, fmt.Errorf("%w: port %d is outside 1-65535 or is DNS's (%d)", errEgressRequest, p, wire.DNSPort)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	if len(ports) > relayMaxPorts {
		return nil, fmt.Errorf("%w: %d ports, more than %d", errEgressRequest, len(ports), relayMaxPorts)
	}
	slices.Sort(ports)
	return ports, nil
}

// relayConfig is where a relay listens and what it dials.
type relayConfig struct {
	host    string // listen address: 0.0.0.0 in a sandbox
	ports   []int  // TCP ports relayed as wire.KindTCP
	dnsPort int    // UDP and TCP port relayed as wire.KindDNS
	socket  string // the egress socket: wire.SocketPath in a sandbox
	// maxConns and maxDNS are relayMaxConns and relayMaxDNS when 0.
	maxConns, maxDNS int
}

// relay is a running egress relay. Stop it with stop.
type relay struct {
	log    *slog.Logger
	socket string
	ctx    context.Context
	cancel context.CancelFunc
	tcp    []net.Listener
	kinds  []wire.Kind // what each of tcp carries
	udp    net.PacketConn
	conns  chan struct{} // one token per TCP connection relayed
	dns    chan struct{} // one token per UDP query in flight
	wg     sync.WaitGroup
	warned atomic.Bool // the socket's first failure is logged, not each
}

// startEgress starts the relay a request asks for, nil if none.
func startEgress(ctx context.Context, log *slog.Logger, e *initproto.EgressRelay) (*relay, error) {
	if e == nil {
		return nil, nil
	}
	ports, err := egressPorts(e)
	if err != nil {
		return nil, err
	}
	return startRelay(ctx, log, relayConfig{host: "0.0.0.0", ports: ports, dnsPort: wire.DNSPort, socket: wire.SocketPath})
}

// startRelay listens as cfg says and serves until ctx ends or stop. The
// egress socket must be there: without it no connection could go out, and
// the job has not started yet (a setup failure, brig's).
func startRelay(ctx context.Context, log *slog.Logger, cfg relayConfig) (*relay, error) {
	if err := checkSocket(cfg.socket); err != nil {
		return nil, err
	}
	r := &relay{
		log:    log,
		socket: cfg.socket,
		conns:  make(chan struct{}, orDefault(cfg.maxConns, relayMaxConns)),
		dns:    make(chan struct{}, orDefault(cfg.maxDNS, relayMaxDNS)),
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	if err := r.listen(cfg); err != nil {
		r.cancel()
		r.closeListeners()
		return nil, err
	}
	context.AfterFunc(r.ctx, r.closeListeners)
	r.wg.Add(len(r.tcp) + 1)
	for i, ln := range r.tcp {
		go r.serveTCP(ln, r.kinds[i])
	}
	go r.serveUDP(r.udp)
	return r, nil
}

// orDefault is n, or def when n is 0.
func orDefault(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// checkSocket fails unless path is a unix socket.
func checkSocket(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("egress socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("egress socket %s is not a socket (%s)", path, fi.Mode().Type())
	}
	return nil
}

// listen opens every listener of cfg, IPv4 only.
func (r *relay) listen(cfg relayConfig) error {
	var lc net.ListenConfig
	addr := func(p int) string { return net.JoinHostPort(cfg.host, strconv.Itoa(p)) }
	for _, p := range append(slices.Clone(cfg.ports), cfg.dnsPort) {
		ln, err := lc.Listen(r.ctx, "tcp4", addr(p))
		if err != nil {
			return fmt.Errorf("egress relay: %w", err)
		}
		r.tcp, r.kinds = append(r.tcp, ln), append(r.kinds, wire.KindTCP)
	}
	r.kinds[len(r.kinds)-1] = wire.KindDNS
	pc, err := lc.ListenPacket(r.ctx, "udp4", addr(cfg.dnsPort))
	if err != nil {
		return fmt.Errorf("egress relay: %w", err)
	}
	r.udp = pc
	return nil
}

func (r *relay) closeListeners() {
	for _, ln := range r.tcp {
		_ = ln.Close()
	}
	if r.udp != nil {
		_ = r.udp.Close()
	}
}

// stop closes the listeners and every connection relayed, and returns
// once all of the relay's goroutines are done. Safe to call twice, and on
// a nil relay.
func (r *relay) stop() {
	if r == nil {
		return
	}
	r.cancel()
	r.closeListeners() // now, not when the AfterFunc gets to it
	r.wg.Wait()
}

// pause waits after a failed accept or read, longer each time in a row
// (prev), and reports false when the relay is stopping instead.
func (r *relay) pause(prev time.Duration, err error) (time.Duration, bool) {
	if errors.Is(err, net.ErrClosed) || r.ctx.Err() != nil {
		return 0, false
	}
	d := min(max(2*prev, relayMinPause), relayMaxPause)
	r.log.Warn("egress relay: accept or read failed", "err", err, "retry_in", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return 0, false
	case <-t.C:
		return d, true
	}
}

// serveTCP relays each connection ln accepts, as kind.
func (r *relay) serveTCP(ln net.Listener, kind wire.Kind) {
	defer r.wg.Done()
	var wait time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ok bool
			if wait, ok = r.pause(wait, err); !ok {
				return
			}
			continue
		}
		wait = 0
		select {
		case r.conns <- struct{}{}:
		default:
			r.log.Debug("egress relay: too many connections; one closed", "limit", cap(r.conns))
			_ = c.Close()
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.conns }()
			r.relayConn(c.(*net.TCPConn), kind)
		}()
	}
}

// relayConn hands c to the proxy: a header, then its bytes both ways. A
// KindTCP header names the address and port the job dialled (c's local
// end: the listeners take any address of 127.0.0.0/8).
func (r *relay) relayConn(c *net.TCPConn, kind wire.Kind) {
	defer c.Close()
	h := wire.Header{V: wire.Version, Kind: kind}
	if kind == wire.KindTCP {
		local := c.LocalAddr().(*net.TCPAddr).AddrPort()
		h.Dst = netip.AddrPortFrom(local.Addr().Unmap(), local.Port()).String()
	}
	up, err := r.dial(r.ctx, h)
	if err != nil {
		return
	}
	defer up.Close()
	r.splice(c, up)
}

// dial opens a connection to the egress socket and writes h.
func (r *relay) dial(ctx context.Context, h wire.Header) (*net.UnixConn, error) {
	d := net.Dialer{Timeout: relayHeaderTimeout}
	c, err := d.DialContext(ctx, "unix", r.socket)
	if err != nil {
		if ctx.Err() == nil && !r.warned.Swap(true) {
			r.log.Warn("egress relay: cannot reach the egress socket (later failures not logged)", "err", err)
		}
		return nil, fmt.Errorf("dial egress socket: %w", err)
	}
	uc := c.(*net.UnixConn)
	_ = uc.SetWriteDeadline(time.Now().Add(relayHeaderTimeout))
	if err := wire.Write(uc, h); err != nil {
		_ = uc.Close()
		return nil, fmt.Errorf("write egress header: %w", err)
	}
	_ = uc.SetWriteDeadline(time.Time{})
	return uc, nil
}

// halfCloser is a connection that can end its writing side alone.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// splice copies bytes both ways between a and b until both directions have
// ended, passing each end of stream on as a half-close so that a request
// and its response can follow each other. Stopping the relay closes both.
func (r *relay) splice(a, b halfCloser) {
	stop := context.AfterFunc(r.ctx, func() { _ = a.Close(); _ = b.Close() })
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); pipe(b, a) }()
	pipe(a, b)
	<-done
}

// pipe copies src to dst until src ends, then half-closes dst. On an error
// it closes both, which ends the other direction too.
func pipe(dst, src halfCloser) {
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	_ = dst.CloseWrite()
}

// serveUDP relays each DNS query pc reads.
func (r *relay) serveUDP(pc net.PacketConn) {
	defer r.wg.Done()
	buf := make([]byte, relayMaxDNSBytes+1) // one more: a bigger query shows
	var wait time.Duration
	for {
		n, src, err := pc.ReadFrom(buf)
		if err != nil {
			var ok bool
			if wait, ok = r.pause(wait, err); !ok {
				return
			}
			continue
		}
		wait = 0
		if n > relayMaxDNSBytes {
			r.log.Debug("egress relay: dns query too large; dropped", "limit", relayMaxDNSBytes)
			continue
		}
		select {
		case r.dns <- struct{}{}:
		default:
			r.log.Debug("egress relay: too many dns queries in flight; one dropped", "limit", cap(r.dns))
			continue
		}
		q := bytes.Clone(buf[:n])
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.dns }()
			r.relayQuery(pc, src, q)
		}()
	}
}

// relayQuery asks the proxy q, on a connection of its own, and sends the
// answer back to src; within relayDNSTimeout, or not at all.
func (r *relay) relayQuery(pc net.PacketConn, src net.Addr, q []byte) {
	ctx, cancel := context.WithTimeout(r.ctx, relayDNSTimeout)
	defer cancel()
	up, err := r.dial(ctx, wire.Header{V: wire.Version, Kind: wire.KindDNS})
	if err != nil {
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { _ = up.Close() })
	defer stop()
	ans, err := exchange(up, q)
	if err != nil {
		r.log.Debug("egress relay: dns query failed", "err", err)
		return
	}
	_, _ = pc.WriteTo(ans, src)
}

// exchange writes q to c and reads one answer, both in RFC 1035's TCP
// framing (a two-byte length first).
func exchange(c io.ReadWriter, q []byte) ([]byte, error) {
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(q)), uint16(len(q)))
	if _, err := c.Write(append(msg, q...)); err != nil {
		return nil, fmt.Errorf("write dns query: %w", err)
	}
	var size [2]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, fmt.Errorf("read dns answer: %w", err)
	}
	n := binary.BigEndian.Uint16(size[:])
	if n > relayMaxDNSBytes {
		return nil, fmt.Errorf("dns answer of %d bytes: more than %d", n, relayMaxDNSBytes)
	}
	ans := make([]byte, n)
	if _, err := io.ReadFull(c, ans); err != nil {
		return nil, fmt.Errorf("read dns answer: %w", err)
	}
	return ans, nil
}
