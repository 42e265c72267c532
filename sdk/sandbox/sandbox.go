// Package sandbox is the client for Go code running inside a brig job: it
// reaches the dicts, queues and functions the job's credential grants,
// through the job's gateway socket. (Code outside brig uses package sdk.)
//
//	n := 0
//	found, err := sandbox.Dict("cache").Get(ctx, "count", &n)
//	var ae *sandbox.AuthError
//	if errors.As(err, &ae) { ... } // not granted dict:cache:read
//	err = sandbox.Dict("cache").Put(ctx, "count", n+1)
//	err = sandbox.Queue("jobs").Put(ctx, map[string]int{"n": 1})
//	found, err = sandbox.Queue("jobs").Get(ctx, 5*time.Second, &job)
//	ev, err := sandbox.Call(ctx, "resize", "", args, 30*time.Second)
//
// The package-level functions use a client made by New: the socket named by
// $BRIG_GATEWAY (default /run/brig/gateway.sock) and the token in
// $BRIG_TOKEN, read at every call. Values are encoded with encoding/json.
//
// A failed call returns an *Error (Type TypeInvalidRequest, TypeTimeout,
// TypeInfrastructure, TypeQuotaExceeded or TypeRateLimited; the last two
// match ErrQuotaExceeded and ErrRateLimited with errors.Is), or an
// *AuthError when the credential does not allow it; an *AuthError also
// matches *Error with errors.As. When ctx ends first the call returns
// ctx's error.
package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/schema"
)

// Environment a brig job runs with.
const (
	EnvGateway = "BRIG_GATEWAY"
	EnvToken   = "BRIG_TOKEN"
)

// maxConns caps a client's connections to the gateway, which serves at
// most gatewayproto.MaxConns per job: the rest stay for the job's other
// processes.
const maxConns = gatewayproto.MaxConns / 2

// Client talks to a job's gateway. It is safe for concurrent use: calls
// share up to a few connections, opened when needed.
type Client struct {
	path     string
	token    string
	envToken bool
	ids      atomic.Int64
	slots    chan struct{}
	mu       sync.Mutex
	idle     []*conn
	closed   bool
}

// New returns a client of the gateway named by $BRIG_GATEWAY (default
// gatewayproto.Socket) that sends the token in $BRIG_TOKEN as it is at each call.
// It connects at the first call.
func New() *Client {
	path := os.Getenv(EnvGateway)
	if path == "" {
		path = gatewayproto.Socket
	}
	c := newClient(path)
	c.envToken = true
	return c
}

// NewWith returns a client of the gateway at socketPath that sends token.
func NewWith(socketPath, token string) *Client {
	c := newClient(socketPath)
	c.token = token
	return c
}

func newClient(path string) *Client {
	return &Client{path: path, slots: make(chan struct{}, maxConns)}
}

// Close closes the client's connections. Calls after Close fail.
func (c *Client) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, cn := range idle {
		cn.Close()
	}
	return nil
}

var defaultClient = sync.OnceValue(New)

// Dict is Dict of the default client.
func Dict(name string) *DictClient { return defaultClient().Dict(name) }

// Queue is Queue of the default client.
func Queue(name string) *QueueClient { return defaultClient().Queue(name) }

// Call is Call of the default client.
func Call(ctx context.Context, function, code string, args any, timeout time.Duration) (*schema.Event, error) {
	return defaultClient().Call(ctx, function, code, args, timeout)
}

// DictClient is one shared dict (scopes dict:<name>:read and
// dict:<name>:write). Keys are letters, digits, - / _ = and inner dots.
type DictClient struct {
	c    *Client
	name string
}

// Dict returns the dict called name.
func (c *Client) Dict(name string) *DictClient { return &DictClient{c: c, name: name} }

// Get decodes the value stored under key into v (unless v is nil) and
// reports whether there was one.
func (d *DictClient) Get(ctx context.Context, key string, v any) (bool, error) {
	resp, err := d.c.do(ctx, &gatewayproto.Request{Op: gatewayproto.OpDictGet, Name: d.name, Key: key})
	if err != nil {
		return false, err
	}
	return decode(resp, v)
}

// Put stores v, encoded as JSON, under key.
func (d *DictClient) Put(ctx context.Context, key string, v any) error {
	data, err := marshal(v)
	if err != nil {
		return err
	}
	_, err = d.c.do(ctx, &gatewayproto.Request{Op: gatewayproto.OpDictPut, Name: d.name, Key: key, Value: data})
	return err
}

// Delete removes key; removing a missing key is not an error.
func (d *DictClient) Delete(ctx context.Context, key string) error {
	_, err := d.c.do(ctx, &gatewayproto.Request{Op: gatewayproto.OpDictDelete, Name: d.name, Key: key})
	return err
}

// QueueClient is one shared work queue (scopes queue:<name>:put and
// queue:<name>:get): every value put is got once.
type QueueClient struct {
	c    *Client
	name string
}

// Queue returns the queue called name.
func (c *Client) Queue(name string) *QueueClient { return &QueueClient{c: c, name: name} }

// Put appends v, encoded as JSON.
func (q *QueueClient) Put(ctx context.Context, v any) error {
	data, err := marshal(v)
	if err != nil {
		return err
	}
	_, err = q.c.do(ctx, &gatewayproto.Request{Op: gatewayproto.OpQueuePut, Name: q.name, Value: data})
	return err
}

// Get takes the next value, waiting up to timeout (and no longer than ctx
// allows) for one, decodes it into v (unless v is nil) and reports whether
// there was one. A zero timeout only looks briefly (about a second). When
// ctx ends first, Get returns ctx's error and hangs up, which tells the
// gateway to give up the get.
func (q *QueueClient) Get(ctx context.Context, timeout time.Duration, v any) (bool, error) {
	resp, err := q.c.do(ctx, &gatewayproto.Request{Op: gatewayproto.OpQueueGet, Name: q.name, TimeoutMS: waitMS(ctx, timeout)})
	if err != nil {
		return false, err
	}
	return decode(resp, v)
}

// Call runs a job of function with code (may be empty) and args (nil for
// none; anything else is encoded as JSON) and waits up to timeout (zero:
// as long as this job may) for its terminal event, which it returns
// whatever the child's status (scope function:<name>:call). The child is
// granted at most this job's scopes.
func (c *Client) Call(ctx context.Context, function, code string, args any, timeout time.Duration) (*schema.Event, error) {
	req := &gatewayproto.Request{Op: gatewayproto.OpCall, Name: function, Code: code, TimeoutMS: waitMS(ctx, timeout)}
	if args != nil {
		data, err := marshal(args)
		if err != nil {
			return nil, err
		}
		req.Args = data
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	var ev schema.Event
	if err := json.Unmarshal(resp.Value, &ev); err != nil {
		return nil, &Error{Type: TypeInfrastructure, Message: "the gateway answered a call with a bad event: " + err.Error(), Err: err}
	}
	return &ev, nil
}

// waitMS is the timeout_ms to send: timeout, cut so that the gateway
// answers before ctx ends.
func waitMS(ctx context.Context, timeout time.Duration) int64 {
	const margin = 100 * time.Millisecond
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl) - margin
		if (timeout == 0 && left < time.Second) || timeout > left {
			timeout = max(left, time.Millisecond)
		}
	}
	if timeout <= 0 {
		return 0
	}
	return max(timeout.Milliseconds(), 1)
}

func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("brig: encode value: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func decode(resp *gatewayproto.Response, v any) (bool, error) {
	if !resp.Found {
		return false, nil
	}
	if v != nil {
		if err := json.Unmarshal(resp.Value, v); err != nil {
			return true, fmt.Errorf("brig: decode value: %w", err)
		}
	}
	return true, nil
}

// conn is one connection to the gateway.
type conn struct {
	net.Conn
	rd *bufio.Reader
}

// do sends req (its ID and Token set here) and returns the gateway's
// successful response.
func (c *Client) do(ctx context.Context, req *gatewayproto.Request) (*gatewayproto.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req.ID = c.ids.Add(1)
	req.Token = c.token
	if c.envToken {
		req.Token = os.Getenv(EnvToken)
	}
	line, err := gatewayproto.EncodeRequest(req)
	if err != nil {
		return nil, fmt.Errorf("brig: encode request: %w", err)
	}
	if len(line) > gatewayproto.MaxLineBytes {
		return nil, &Error{Type: TypeInvalidRequest, Message: fmt.Sprintf("request of %d bytes is longer than the gateway's limit of %d", len(line), gatewayproto.MaxLineBytes)}
	}

	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.slots }()
	cn, reused, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	data, err := cn.roundTrip(ctx, line)
	if err != nil && reused && errors.Is(err, errSend) && ctx.Err() == nil {
		// The gateway closed an idle connection: nothing was sent.
		cn.Close()
		if cn, err = c.dial(ctx); err != nil {
			return nil, err
		}
		data, err = cn.roundTrip(ctx, line)
	}
	if err != nil {
		cn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &Error{Type: TypeInfrastructure, Message: "gateway: " + err.Error(), Err: err}
	}
	var resp gatewayproto.Response
	if err := json.Unmarshal(data, &resp); err != nil {
		cn.Close()
		return nil, &Error{Type: TypeInfrastructure, Message: "gateway: bad response: " + err.Error(), Err: err}
	}
	if resp.ID != req.ID {
		// 0 answers a request the gateway could not read at all.
		cn.Close()
		if resp.ID != 0 || resp.OK {
			return nil, &Error{Type: TypeInfrastructure, Message: fmt.Sprintf("gateway: response %d to request %d", resp.ID, req.ID)}
		}
	} else {
		c.put(cn)
	}
	if !resp.OK {
		return nil, responseError(resp.Error)
	}
	return &resp, nil
}

var errSend = errors.New("send")

// roundTrip writes one request line and reads one response line, within
// ctx. After an error the connection is unusable.
func (cn *conn) roundTrip(ctx context.Context, line []byte) ([]byte, error) {
	dl, _ := ctx.Deadline() // zero: none
	if err := cn.SetDeadline(dl); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = cn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := cn.Write(line); err != nil {
		// A gateway past its connection limit says so, then closes.
		_ = cn.SetReadDeadline(time.Now().Add(time.Second))
		if data, rerr := cn.rd.ReadBytes('\n'); rerr == nil {
			return data, nil
		}
		return nil, fmt.Errorf("%w: %w", errSend, err)
	}
	data, err := cn.rd.ReadBytes('\n')
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the gateway closed the connection")
	}
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	return data, nil
}

// get returns an idle connection, or a new one.
func (c *Client) get(ctx context.Context) (*conn, bool, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, &Error{Type: TypeInfrastructure, Message: "client closed"}
	}
	if n := len(c.idle); n > 0 {
		cn := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cn, true, nil
	}
	c.mu.Unlock()
	cn, err := c.dial(ctx)
	return cn, false, err
}

func (c *Client) put(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.Close()
		return
	}
	c.idle = append(c.idle, cn)
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, os.ErrNotExist):
		return nil, &Error{Type: TypeInfrastructure, Message: fmt.Sprintf("no brig gateway at %s (set %s; brig provides it to every job)", c.path, EnvGateway), Err: err}
	case err != nil:
		return nil, &Error{Type: TypeInfrastructure, Message: fmt.Sprintf("cannot connect to the brig gateway at %s: %v", c.path, err), Err: err}
	}
	return &conn{Conn: nc, rd: bufio.NewReader(nc)}, nil
}
