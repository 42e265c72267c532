package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
)

// acceptRetryPause is the wait after a failed Accept (out of file
// descriptors, say) before the next.
const acceptRetryPause = 50 * time.Millisecond

// Binding is the job a Listener serves.
type Binding struct {
	JobID string
	// List is the job's egress list; nil allows nothing.
	List *allow.List
	// OnDenied is called once per refusal, from any goroutine; it must
	// not call the Listener's Bind, Reset or Close.
	OnDenied func(schema.EgressDenial)
}

// session is one binding while it lasts: its names, and a context whose
// end closes its every connection.
type session struct {
	b      Binding
	ports  []int // b.List.Ports()
	names  *names
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // its connections' goroutines
}

// deny reports r to the binding, unless the binding has ended (the
// refusal is then an artefact of closing its connections).
func (s *session) deny(r *refusal) {
	if s.ctx.Err() != nil {
		return
	}
	s.log.Debug("egress refused", "reason", r.reason, "target", r.target(), "msg", r.msg)
	if s.b.OnDenied != nil {
		s.b.OnDenied(r.denial())
	}
}

// allowsName reports whether the list allows name on any port.
func (s *session) allowsName(name string) bool {
	return slices.ContainsFunc(s.ports, func(p int) bool { return s.b.List.AllowsName(name, p) })
}

// end cancels the session and waits until its connections are closed.
func (s *session) end() {
	s.cancel()
	s.wg.Wait()
}

// Listener serves one sandbox's egress socket.
type Listener struct {
	p      *Proxy
	ln     *net.UnixListener
	path   string
	ctx    context.Context // ends with Close or Listen's ctx
	cancel context.CancelFunc
	seq    syntheticSeq
	wg     sync.WaitGroup // the accept loop and unbound connections

	mu      sync.Mutex
	cur     *session
	pending int // connections waiting for their header
	tcp     int
	dns     int
	closed  bool
}

// Listen creates a unix socket at path (mode 0666: the sandbox's uid
// 65534 connects), bound to no job: until Bind, every DNS query is refused
// and every connection closed. It serves until Close or the end of ctx.
func (p *Proxy) Listen(ctx context.Context, path string) (*Listener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("egress proxy: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("egress proxy: chmod %s: %w", path, err)
	}
	l := &Listener{p: p, ln: ln, path: path}
	l.ctx, l.cancel = context.WithCancel(ctx)
	context.AfterFunc(l.ctx, func() { ln.Close() })
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Bind makes the Listener serve b. A binding still in place is Reset
// first. After Close, Bind does nothing.
func (l *Listener) Bind(b Binding) {
	sctx, cancel := context.WithCancel(l.ctx)
	s := &session{
		b: b, ports: b.List.Ports(), names: newNames(&l.seq),
		log: l.p.log.With("job", b.JobID), ctx: sctx, cancel: cancel,
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		cancel()
		return
	}
	old := l.cur
	l.cur = s
	l.mu.Unlock()
	if old != nil {
		old.end()
	}
}

// Reset unbinds the Listener: every connection of the old binding ends
// and its synthetic names are forgotten. It returns once they are closed.
func (l *Listener) Reset() {
	l.mu.Lock()
	old := l.cur
	l.cur = nil
	l.mu.Unlock()
	if old != nil {
		old.end()
	}
}

// Close stops serving, ends every connection and removes the socket. It
// is safe to call twice.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	old := l.cur
	l.cur = nil
	l.mu.Unlock()
	l.cancel()
	if old != nil {
		old.end()
	}
	l.wg.Wait()
	if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("egress proxy: remove %s: %w", l.path, err)
	}
	return nil
}

func (l *Listener) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			l.p.log.Warn("egress proxy: accept", "path", l.path, "err", err)
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(acceptRetryPause):
			}
			continue
		}
		l.admit(c)
	}
}

// admit starts serving c, unless MaxPendingConns others wait for their
// header.
func (l *Listener) admit(c net.Conn) {
	l.mu.Lock()
	s, full := l.cur, l.pending >= MaxPendingConns
	if !full {
		l.pending++
	}
	wg := &l.wg
	if s != nil {
		wg = &s.wg
	}
	wg.Add(1)
	l.mu.Unlock()
	if full {
		c.Close()
		if s != nil {
			s.deny(refuse("", 0, schema.EgressLimit, "more than %d connections waiting to send their header", MaxPendingConns))
		}
		wg.Done()
		return
	}
	go func() {
		defer wg.Done()
		l.serve(c, s)
	}()
}

// serve reads c's header and hands it on; s is the binding c was
// accepted under, nil for none.
func (l *Listener) serve(c net.Conn, s *session) {
	defer c.Close()
	ctx := l.ctx
	if s != nil {
		ctx = s.ctx
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	_ = c.SetDeadline(time.Now().Add(l.p.wait.header))
	br := bufio.NewReader(c)
	h, dst, err := wire.Read(br)
	l.release(&l.pending)
	if err != nil {
		if s != nil && !errors.Is(err, io.EOF) {
			s.deny(refuse("", 0, schema.EgressProtocol, "bad egress header: %v", err))
		}
		return
	}
	_ = c.SetDeadline(time.Time{})
	if h.Kind == wire.KindDNS {
		if l.acquire(&l.dns, MaxDNSConns, s, "", wire.DNSPort, "DNS") {
			defer l.release(&l.dns)
			l.serveDNS(c, br, s)
		}
		return
	}
	if s == nil {
		return
	}
	host := dst.Addr().String()
	if name, ok := s.names.name(dst.Addr()); ok {
		host = name
	}
	if l.acquire(&l.tcp, MaxTCPConns, s, host, int(dst.Port()), "TCP") {
		defer l.release(&l.tcp)
		cl := &client{Conn: c, br: br, s: s, p: l.p}
		cl.serveTCP(s.ctx, dst)
	}
}

// acquire takes one of max slots counted by n, or refuses (limit).
func (l *Listener) acquire(n *int, max int, s *session, host string, port int, what string) bool {
	l.mu.Lock()
	ok := *n < max
	if ok {
		*n++
	}
	l.mu.Unlock()
	if !ok && s != nil {
		s.deny(refuse(host, port, schema.EgressLimit, "more than %d %s connections at once", max, what))
	}
	return ok
}

func (l *Listener) release(n *int) {
	l.mu.Lock()
	*n--
	l.mu.Unlock()
}
