package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// Caller runs a child job in tenant and returns its terminal event
// (function.call). It must submit the job as tenant's (on
// schema.SubmitSubject(tenant, fn), keyed schema.JobKey(tenant, job.ID)),
// and refuse, with an error, a job whose key brig has seen before, never
// answer with that job's events: a child's answer comes only from the
// child the call started (docs/design.md §4.3).
type Caller func(ctx context.Context, tenant string, job schema.Job) (*schema.Event, error)

// Canceller cancels tenant's job jobID (a job id, not a key), queued or
// running (brig.cancel.<tenant>.<id>). An error matching sdk.ErrNotFound
// (brig has no event of the job yet) is retried for a while: the child's
// submission may still be on its way to a dispatcher.
type Canceller func(ctx context.Context, tenant, jobID string) error

// Config of a Gateway.
type Config struct {
	// JS performs the calls. Required.
	JS jetstream.JetStream
	// Keys finds the dispatcher's public keys. Required.
	Keys func(ctx context.Context) token.KeyFunc
	// Conn, when set, runs function.call: each child is submitted,
	// followed and cancelled through an sdk.Client of the calling job's
	// tenant, made on first use (sdk.New(Conn, sdk.WithTenant(tenant)))
	// and closed by Stop. The connection must be allowed to submit,
	// replay and cancel in every tenant and to subscribe to _INBOX.> (a
	// worker's is, docs/design.md §10.2). Call and Cancel replace it.
	Conn *nats.Conn
	// Call runs child jobs, instead of Conn. Without both, function.call
	// fails.
	Call Caller
	// Cancel ends a child whose call ended before it did: the call timed
	// out, or its job's binding was reset or closed. Required with Call.
	Cancel Canceller
	// Replicas of the dict buckets and queue streams it creates (default 1).
	Replicas int
	Logger   *slog.Logger
	// Now is the clock of the sessions' request rate (default time.Now);
	// tests set one they advance by hand.
	Now func() time.Time
}

// Gateway serves jobs' sockets.
type Gateway struct {
	cfg       Config
	resources *resources
	children  *children // with Conn: the tenants' SDK clients

	mu      sync.Mutex
	stopped bool
	cancels sync.WaitGroup // cancelChild's goroutines
}

// New returns a gateway. Stop it when it is done with, after closing its
// listeners.
func New(cfg Config) (*Gateway, error) {
	if cfg.JS == nil || cfg.Keys == nil {
		return nil, errors.New("gateway: JS and Keys are required")
	}
	if cfg.Call != nil && cfg.Cancel == nil {
		return nil, errors.New("gateway: Call needs Cancel, to end the children of calls that end first")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: cfg, resources: newResources(cfg.JS, max(cfg.Replicas, 1), cfg.Logger)}
	if cfg.Call == nil && cfg.Conn != nil {
		g.children = newChildren(cfg.Conn, cfg.Logger)
		g.cfg.Call, g.cfg.Cancel = g.children.run, g.children.cancel
	}
	return g, nil
}

// now is the clock of the request rate: cfg.Now, else time.Now.
func (g *Gateway) now() time.Time {
	if g.cfg.Now != nil {
		return g.cfg.Now()
	}
	return time.Now()
}

// Stop waits, until ctx ends, for the cancellation of children whose calls
// ended first, then closes the tenants' SDK clients: a call after Stop
// fails. Call it once every listener is closed. Safe to call twice.
func (g *Gateway) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.cancels.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("gateway: stopped before every child of an ended call was cancelled: %w", ctx.Err())
	}
	if g.children != nil {
		g.children.close()
	}
	return err
}

// startCancel counts one child cancellation for Stop to wait for; false
// once the gateway has stopped.
func (g *Gateway) startCancel() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.cancels.Add(1)
	return true
}

// Binding ties a socket to one job.
type Binding struct {
	// JobID is the job's key (schema.JobKey): every call acts inside its
	// tenant.
	JobID string
	// Deadline bounds every call (the job's timeout plus a grace).
	Deadline time.Time
	// Quotas bound what the job may create and start; zero fields take
	// the defaults.
	Quotas schema.Quotas
	// OnDenied is told of every denied call, at once.
	OnDenied func(schema.AuthError)
	// OnQuotaExceeded, when set, is told of every call refused for a
	// quota or the request rate, at once.
	OnQuotaExceeded func(*gatewayproto.Error)
}

// Listener is one job's socket.
type Listener struct {
	g    *Gateway
	ln   net.Listener
	path string
	// ctx lives until Close; each binding's session derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection
	slots  chan struct{}
	mu     sync.Mutex
	cur    *session
	conns  map[net.Conn]chan struct{} // closed once the connection's slot is free
	closed bool
	once   sync.Once
}

// session is one binding's life on a listener: every call made under it
// runs with its context, which Reset, a later Bind and Close end, and
// counts against its rate and quotas.
type session struct {
	b       Binding
	tenant  string // the tenant of b's job key; "" when unbound
	q       schema.Quotas
	ctx     context.Context
	cancel  context.CancelFunc
	rate    *tokenBucket
	calls   sync.WaitGroup // requests being handled
	pending atomic.Int64   // how many

	mu       sync.Mutex
	created  int64 // dicts and queues created
	children int64 // child jobs started
}

func (l *Listener) newSession(b Binding) *session {
	ctx, cancel := context.WithCancel(l.ctx)
	// A binding whose key is not valid gets no tenant; authorize denies its
	// calls anyway, since no token names an invalid key.
	tenant, _, _ := schema.SplitJobKey(b.JobID)
	return &session{b: b, tenant: tenant, q: b.Quotas.WithDefaults(), ctx: ctx, cancel: cancel,
		rate: newTokenBucket(gatewayproto.RequestRate, gatewayproto.RequestBurst, l.g.now())}
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
	l := &Listener{g: g, ln: ln, path: path, ctx: lctx, cancel: cancel,
		slots: make(chan struct{}, gatewayproto.MaxConns), conns: map[net.Conn]chan struct{}{}}
	l.cur = l.newSession(b)
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Bind ties an unbound listener (Listen with a zero Binding, for a
// prewarmed container) to its job. Until then every call is denied. Calls
// still running under an earlier binding are ended.
func (l *Listener) Bind(b Binding) {
	l.mu.Lock()
	old := l.cur
	l.cur = l.newSession(b)
	l.mu.Unlock()
	old.cancel()
}

// Reset unbinds the listener and ends everything the bound job started:
// between two jobs of a reused sandbox, nothing the first job opened may
// speak for the second or hold what the second needs. Every call in flight
// is ended (its children cancelled, a queue value it took offered again)
// and every connection closed; Reset returns once their handlers have
// returned and their connection slots are free, so the next job's calls
// work at once.
func (l *Listener) Reset() {
	l.mu.Lock()
	old := l.cur
	l.cur = l.newSession(Binding{})
	var freed []chan struct{}
	for c, done := range l.conns {
		c.Close()
		freed = append(freed, done)
	}
	l.mu.Unlock()
	old.cancel()
	old.calls.Wait()
	for _, done := range freed {
		<-done
	}
}

// session returns the current session, counting one request on it; the
// caller calls done when the request is answered.
func (l *Listener) session() *session {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.cur
	s.calls.Add(1)
	s.pending.Add(1)
	return s
}

// done ends a request that session counted.
func (s *session) done() {
	s.pending.Add(-1)
	s.calls.Done()
}

// binding is the current binding.
func (l *Listener) binding() Binding {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur.b
}

// Close stops serving, ends every call and connection and removes the
// socket. Safe to call twice.
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
			l.refuse(conn)
			continue
		}
		done := make(chan struct{})
		l.mu.Lock()
		if l.closed { // accepted while Close ran: it will not see this one
			l.mu.Unlock()
			conn.Close()
			<-l.slots
			continue
		}
		l.conns[conn] = done
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(conn)
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
			conn.Close()
			<-l.slots
			close(done)
		}()
	}
}

// refuse answers a connection past gatewayproto.MaxConns with one
// QuotaExceeded response, which the job's binding hears of like any other
// refusal.
func (l *Listener) refuse(conn net.Conn) {
	resp := &gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrQuotaExceeded,
		Message: fmt.Sprintf("more than %d connections to the gateway at once", gatewayproto.MaxConns)}}
	l.mu.Lock()
	s := l.cur
	l.mu.Unlock()
	if s != nil {
		s.overQuota(resp)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = conn.Write(encodeResponse(resp))
	conn.Close()
}

// serve answers requests on one connection in order. A job that hangs up
// before its answer is written loses nothing: a queue value is acked only
// once its response is written, and offered again otherwise. The next
// request is read only once that ack is confirmed, so a job that took a
// value finds the room it made (settleGet).
func (l *Listener) serve(conn net.Conn) {
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), gatewayproto.MaxLineBytes)
	for sc.Scan() {
		s := l.session()
		r := l.handle(s, sc.Bytes())
		_, err := conn.Write(encodeResponse(r.Response))
		if r.settle != nil {
			r.settle(s.ctx, err == nil)
		}
		s.done()
		if err != nil {
			return
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		_, _ = conn.Write(encodeResponse(&gatewayproto.Response{Error: &gatewayproto.Error{Type: gatewayproto.ErrInvalidRequest, Message: fmt.Sprintf("request longer than %d bytes", gatewayproto.MaxLineBytes)}}))
	}
}

// encodeResponse is resp as one line (gatewayproto.EncodeResponse).
func encodeResponse(resp *gatewayproto.Response) []byte {
	data, err := gatewayproto.EncodeResponse(resp)
	if err != nil { // a Value that is not JSON: never stored by a gateway
		data, _ = gatewayproto.EncodeResponse(&gatewayproto.Response{ID: resp.ID, Error: &gatewayproto.Error{Type: gatewayproto.ErrCallFailed, Message: "cannot encode the response: " + err.Error()}})
	}
	return data
}
