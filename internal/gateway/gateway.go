package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// Caller runs a child job and returns its terminal event (function.call).
type Caller func(ctx context.Context, job schema.Job) (*schema.Event, error)

// Config of a Gateway.
type Config struct {
	// JS performs the calls. Required.
	JS jetstream.JetStream
	// Keys finds the dispatcher's public keys. Required.
	Keys func(ctx context.Context) token.KeyFunc
	// Call runs child jobs. Required for function.call.
	Call Caller
	// Replicas of the dict buckets and queue streams it creates (default 1).
	Replicas int
	Logger   *slog.Logger
}

// Gateway serves jobs' sockets.
type Gateway struct {
	cfg       Config
	resources *resources
}

// New returns a gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.JS == nil || cfg.Keys == nil {
		return nil, errors.New("gateway: JS and Keys are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gateway{cfg: cfg, resources: newResources(cfg.JS, max(cfg.Replicas, 1))}, nil
}

// Binding ties a socket to one job.
type Binding struct {
	JobID string
	// Deadline bounds every call (the job's timeout plus a grace).
	Deadline time.Time
	// OnDenied is told of every denied call, at once.
	OnDenied func(schema.AuthError)
}

// Listener is one job's socket.
type Listener struct {
	g      *Gateway
	ln     net.Listener
	b      Binding
	path   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	calls  int
	once   sync.Once
}

// Listen creates the socket at path (mode 0666, so that the job's uid may
// connect) and serves it for b until Close.
func (g *Gateway) Listen(ctx context.Context, path string, b Binding) (*Listener, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("gateway socket for job %s: %w", b.JobID, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("gateway socket for job %s: %w", b.JobID, err)
	}
	// Calls are bounded by the binding's deadline; the listener itself
	// lives until Close (a prewarmed container's socket waits for its job).
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Listener{g: g, ln: ln, b: b, path: path, ctx: lctx, cancel: cancel,
		slots: make(chan struct{}, MaxConns), conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Bind ties an unbound listener (Listen with a zero Binding, for a
// prewarmed container) to its job. Until then every call is denied.
func (l *Listener) Bind(b Binding) {
	l.mu.Lock()
	l.b = b
	l.mu.Unlock()
}

// Reset unbinds the listener and ends its open connections: between two
// jobs of a reused sandbox, nothing the first job opened may speak for the
// second. Calls already authorized finish as the first job's.
func (l *Listener) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = Binding{}
	for c := range l.conns {
		c.Close()
	}
}

func (l *Listener) binding() Binding {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b
}

// Close stops serving, ends every connection and removes the socket. Safe
// to call twice.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.ln.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
		_ = os.Remove(l.path)
	})
	return nil
}

func (l *Listener) accept() {
	defer l.wg.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		select {
		case l.slots <- struct{}{}:
		default: // too many connections: refuse rather than queue
			conn.Close()
			continue
		}
		l.mu.Lock()
		if l.closed { // accepted while Close ran: it will not see this one
			l.mu.Unlock()
			conn.Close()
			<-l.slots
			continue
		}
		l.conns[conn] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.slots }()
			l.serve(conn)
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
			conn.Close()
		}()
	}
}

// serve answers requests on one connection in order. A job that hangs up
// before its answer is written loses nothing: a queue value is acked only
// once its response is written, and offered again otherwise.
func (l *Listener) serve(conn net.Conn) {
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	enc := json.NewEncoder(conn)
	for sc.Scan() {
		resp := l.handle(l.ctx, sc.Bytes())
		err := enc.Encode(resp)
		if resp.settle != nil {
			resp.settle(err == nil)
		}
		if err != nil {
			return
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		_ = enc.Encode(Response{Error: &Error{Type: ErrInvalidRequest, Message: fmt.Sprintf("request longer than %d bytes", MaxLineBytes)}})
	}
}
