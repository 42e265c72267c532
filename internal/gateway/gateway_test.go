package gateway

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// The socket's job: testID of testTenant, whose key is testJob. testJob2
// is a job of the same tenant.
const (
	testTenant = "acme"
	testID     = "job-1"
	testJob    = testTenant + "." + testID
	testJob2   = testTenant + ".job-2"
)

// testEnv is a gateway on an embedded NATS, serving one socket for testJob;
// its Keys mint the tokens.
type testEnv struct {
	*natstest.Keys
	t    *testing.T
	js   jetstream.JetStream
	g    *Gateway
	ln   *Listener
	sock string

	extra []*Listener // listenAs's

	mu        sync.Mutex
	denied    []schema.AuthError
	cancelled chan string // the keys of the jobs Cancel was called with
}

// startEnv starts NATS, publishes a signer and listens; edit may change the
// gateway's config and the binding first.
func startEnv(t *testing.T, edit func(*Config, *Binding)) *testEnv {
	t.Helper()
	_, _, js := natstest.Start(t)
	e := &testEnv{Keys: natstest.PublishKeys(t, js), t: t, js: js, cancelled: make(chan string, 100)}
	cfg := Config{JS: js, Keys: e.Ring.Func, Cancel: func(_ context.Context, tenant, id string) error {
		e.cancelled <- schema.JobKey(tenant, id)
		return nil
	}}
	b := Binding{JobID: testJob, Deadline: time.Now().Add(time.Minute), OnDenied: func(ae schema.AuthError) {
		e.mu.Lock()
		e.denied = append(e.denied, ae)
		e.mu.Unlock()
	}}
	if edit != nil {
		edit(&cfg, &b)
	}
	var err error
	if e.g, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.sock = filepath.Join(dir, "s.sock")
	if e.ln, err = e.g.Listen(t.Context(), e.sock, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ln.Close() })
	return e
}

func (e *testEnv) denials() []schema.AuthError {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]schema.AuthError(nil), e.denied...)
}

// rawConn speaks the protocol by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func (e *testEnv) dial() *rawConn { e.t.Helper(); return dialSock(e.t, e.sock) }

// dialSock connects to the socket at path.
func dialSock(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, rd: bufio.NewReader(c)}
}

// listenAs opens another socket on the env's gateway, bound to the job
// with key, and returns its path.
func (e *testEnv) listenAs(key string) string {
	e.t.Helper()
	path := filepath.Join(filepath.Dir(e.sock), fmt.Sprintf("%d.sock", len(e.extra)))
	ln, err := e.g.Listen(e.t.Context(), path, Binding{JobID: key, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.extra = append(e.extra, ln)
	e.t.Cleanup(func() { ln.Close() })
	return path
}

// send writes one line (a newline is added).
func (r *rawConn) send(line string) {
	r.t.Helper()
	if _, err := r.c.Write([]byte(line + "\n")); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// recv reads one gatewayproto.Response, or returns the read error.
func (r *rawConn) recv() (*gatewayproto.Response, error) {
	line, err := r.rd.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var resp gatewayproto.Response
	if err := json.Unmarshal(line, &resp); err != nil {
		r.t.Fatalf("response %q: %v", line, err)
	}
	return &resp, nil
}

func (r *rawConn) mustRecv() *gatewayproto.Response {
	r.t.Helper()
	resp, err := r.recv()
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	return resp
}

// do sends req and returns its response.
func (r *rawConn) do(req gatewayproto.Request) *gatewayproto.Response {
	r.t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(string(data))
	return r.mustRecv()
}

func wantError(t *testing.T, resp *gatewayproto.Response, typ, contains string) {
	t.Helper()
	if resp.OK || resp.Error == nil {
		t.Fatalf("response %+v: want a %s error", resp, typ)
	}
	if resp.Error.Type != typ || !strings.Contains(resp.Error.Message, contains) {
		t.Fatalf("error %+v: want type %s, message containing %q", resp.Error, typ, contains)
	}
}

func wantOK(t *testing.T, resp *gatewayproto.Response) {
	t.Helper()
	if !resp.OK || resp.Error != nil {
		t.Fatalf("response %+v (error %+v): want ok", resp, resp.Error)
	}
}

func TestDictRoundTrip(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:read", "dict:d:write")
	resp := c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"})
	wantOK(t, resp)
	if resp.ID != 1 || resp.Found {
		t.Fatalf("get before put: %+v", resp)
	}
	wantOK(t, c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: json.RawMessage(`{"a":[1,2]}`)}))
	resp = c.do(gatewayproto.Request{ID: 3, Token: tok, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"})
	wantOK(t, resp)
	if resp.ID != 3 || !resp.Found || string(resp.Value) != `{"a":[1,2]}` {
		t.Fatalf("get after put: %+v value %s", resp, resp.Value)
	}
	wantOK(t, c.do(gatewayproto.Request{ID: 4, Token: tok, Op: gatewayproto.OpDictDelete, Name: "d", Key: "k"}))
	if resp := c.do(gatewayproto.Request{ID: 5, Token: tok, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"}); !resp.OK || resp.Found {
		t.Fatalf("get after delete: %+v", resp)
	}
	if d := e.denials(); len(d) != 0 {
		t.Fatalf("denials: %+v", d)
	}
}

func TestUnknownOp(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:read")
	for _, op := range []string{"dict.list", "", "DICT.GET", "dict.get ", strings.Repeat("x", 1000)} {
		resp := c.do(gatewayproto.Request{ID: 7, Token: tok, Op: op, Name: "d", Key: "k"})
		wantError(t, resp, gatewayproto.ErrInvalidRequest, "unknown operation")
		if resp.ID != 7 {
			t.Errorf("op %q: id %d, want 7", op, resp.ID)
		}
		if len(resp.Error.Message) > 200 {
			t.Errorf("op %q: message not clipped: %d bytes", op, len(resp.Error.Message))
		}
	}
	if d := e.denials(); len(d) != 0 {
		t.Fatalf("an invalid request was reported as a denial: %+v", d)
	}
}

func TestInvalidName(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:read", "dict:d:write", "queue:q:put", "queue:q:get", "function:f:call")
	for _, tt := range []struct{ op, name string }{
		{gatewayproto.OpDictGet, "d.x"}, {gatewayproto.OpDictPut, "d.x"}, {gatewayproto.OpDictDelete, "a.b"},
		{gatewayproto.OpDictGet, ""}, {gatewayproto.OpDictGet, "-d"}, {gatewayproto.OpDictGet, "d*"}, {gatewayproto.OpDictGet, ">"}, {gatewayproto.OpDictGet, "d x"},
		{gatewayproto.OpDictGet, strings.Repeat("d", 65)}, {gatewayproto.OpDictGet, "dé"},
		{gatewayproto.OpQueuePut, "q.x"}, {gatewayproto.OpQueueGet, "q.>"}, {gatewayproto.OpCall, "f.g"}, {gatewayproto.OpCall, ""},
	} {
		resp := c.do(gatewayproto.Request{ID: 3, Token: tok, Op: tt.op, Name: tt.name, Key: "k", Value: json.RawMessage(`1`)})
		wantError(t, resp, gatewayproto.ErrInvalidRequest, "is not valid")
	}
	if d := e.denials(); len(d) != 0 {
		t.Fatalf("an invalid request was reported as a denial: %+v", d)
	}
}

func TestInvalidKey(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:read", "dict:d:write")
	bad := []string{"", ".", ".k", "k.", "a..b", "a b", "*", ">", "a.*", "a.>", "é", "a\nb", strings.Repeat("k", gatewayproto.MaxKeyLen+1)}
	for _, key := range bad {
		for _, op := range []string{gatewayproto.OpDictGet, gatewayproto.OpDictPut, gatewayproto.OpDictDelete} {
			resp := c.do(gatewayproto.Request{ID: 4, Token: tok, Op: op, Name: "d", Key: key, Value: json.RawMessage(`1`)})
			wantError(t, resp, gatewayproto.ErrInvalidRequest, "is not valid")
		}
	}
	for _, key := range []string{"a.b", "x/y=z_-1", strings.Repeat("k", gatewayproto.MaxKeyLen)} {
		wantOK(t, c.do(gatewayproto.Request{ID: 5, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: key, Value: json.RawMessage(`1`)}))
		if resp := c.do(gatewayproto.Request{ID: 6, Token: tok, Op: gatewayproto.OpDictGet, Name: "d", Key: key}); !resp.OK || !resp.Found {
			t.Fatalf("key %q: %+v", key, resp)
		}
	}
}

func TestUnknownFieldAndGarbage(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:read")
	c.send(`{"id":9,"token":"` + tok + `","op":"dict.get","name":"d","key":"k","scopes":["dict:x:write"]}`)
	wantError(t, c.mustRecv(), gatewayproto.ErrInvalidRequest, "unknown field")
	for _, line := range []string{"not json", "", "[1,2]", `{"id":"x"}`, `{"id":1`, "\x00\xff"} {
		c.send(line)
		resp := c.mustRecv()
		wantError(t, resp, gatewayproto.ErrInvalidRequest, "malformed request")
	}
	// The connection still works.
	resp := c.do(gatewayproto.Request{ID: 10, Token: tok, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"})
	wantOK(t, resp)
	if resp.ID != 10 {
		t.Fatalf("id %d, want 10", resp.ID)
	}
}

func TestValueSize(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:write", "queue:q:put")
	value := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`) }
	wantOK(t, c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: value(gatewayproto.MaxValueBytes)}))
	wantOK(t, c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: value(gatewayproto.MaxValueBytes)}))
	wantError(t, c.do(gatewayproto.Request{ID: 3, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: value(gatewayproto.MaxValueBytes + 1)}), gatewayproto.ErrInvalidRequest, "larger than")
	wantError(t, c.do(gatewayproto.Request{ID: 4, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: value(gatewayproto.MaxValueBytes + 1)}), gatewayproto.ErrInvalidRequest, "larger than")
	wantError(t, c.do(gatewayproto.Request{ID: 5, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k"}), gatewayproto.ErrInvalidRequest, "not JSON")
}

func TestLineTooLong(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:write")
	// Write from another goroutine: the gateway stops reading at the limit.
	go func() {
		_, _ = c.c.Write([]byte(`{"id":1,"token":"` + tok + `","op":"dict.put","name":"d","key":"k","value":"` + strings.Repeat("x", gatewayproto.MaxLineBytes) + "\"}\n"))
	}()
	resp := c.mustRecv()
	wantError(t, resp, gatewayproto.ErrInvalidRequest, "longer than")
	if _, err := c.recv(); err == nil {
		t.Fatal("the connection stayed open after an over-long line")
	}
	// Other connections are unaffected.
	wantOK(t, e.dial().do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: json.RawMessage(`1`)}))
}

func TestDenials(t *testing.T) {
	e := startEnv(t, nil)
	other, err := signing.Generate() // never published
	if err != nil {
		t.Fatal(err)
	}
	unknownKey, err := token.Mint(other.Key, token.Claims{JobID: testJob, Function: "python", Scopes: []string{"dict:d:read"},
		IssuedAt: time.Now().UnixMilli(), Expiry: time.Now().Add(time.Minute).UnixMilli(), KeyID: other.ID})
	if err != nil {
		t.Fatal(err)
	}
	good := e.Mint(testJob, "dict:d:read")
	i := len("v1.") + 5
	tampered := good[:i] + string(good[i]^1) + good[i+1:]
	for _, tt := range []struct{ name, tok, want string }{
		{"no token", "", "no token"},
		{"garbage", "abc", "malformed"},
		{"tampered", tampered, "token"},
		{"unknown key", unknownKey, "signature invalid"},
		{"another job", e.Mint(testJob2, "dict:d:read"), "another job"},
		{"expired", e.MintUntil(testJob, time.Now().Add(-time.Second), "dict:d:read"), "expired"},
		{"no scope", e.Mint(testJob), "not granted"},
		{"other scope", e.Mint(testJob, "dict:d:write", "dict:e:read", "queue:d:get"), "not granted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.denials())
			resp := e.dial().do(gatewayproto.Request{ID: 8, Token: tt.tok, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"})
			wantError(t, resp, gatewayproto.ErrAuthError, tt.want)
			if resp.ID != 8 || resp.Error.Resource != "dict:d" || resp.Error.Action != "read" {
				t.Fatalf("denial %+v", resp.Error)
			}
			d := e.denials()
			if len(d) != before+1 || d[before].Resource != "dict:d" || d[before].Action != "read" {
				t.Fatalf("OnDenied calls: %+v", d[before:])
			}
		})
	}
	_ = ed25519.PublicKeySize
}

func TestCall(t *testing.T) {
	var got schema.Job
	var gotTenant string
	e := startEnv(t, func(c *Config, _ *Binding) {
		c.Call = func(ctx context.Context, tenant string, job schema.Job) (*schema.Event, error) {
			got, gotTenant = job, tenant
			return &schema.Event{JobID: job.ID, Type: schema.EventResult, Status: schema.StatusSucceeded, Output: json.RawMessage(`{"r":1}`)}, nil
		}
	})
	c := e.dial()
	tok := e.Mint(testJob, "function:f:call", "dict:d:read")
	resp := c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpCall, Name: "f", Code: "print(1)", Args: json.RawMessage(`[1]`), TimeoutMS: 5000})
	wantOK(t, resp)
	var ev schema.Event
	if err := json.Unmarshal(resp.Value, &ev); err != nil || ev.Status != schema.StatusSucceeded || string(ev.Output) != `{"r":1}` {
		t.Fatalf("event %s: %v", resp.Value, err)
	}
	if gotTenant != testTenant {
		t.Fatalf("child called in tenant %q, want the caller's, %q", gotTenant, testTenant)
	}
	if got.Function != "f" || got.Code != "print(1)" || string(got.Args) != "[1]" || !isChildID(got.ID, testID) ||
		strings.Join(got.Scopes, ",") != "dict:d:read" || got.Restricted == nil || *got.Restricted ||
		got.TimeoutMS > 5000 || got.TimeoutMS < 4000 {
		t.Fatalf("child job %+v", got)
	}
	wantError(t, c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpCall, Name: "g"}), gatewayproto.ErrAuthError, "not granted")
	// A caller with only function scopes makes a restricted child.
	wantOK(t, c.do(gatewayproto.Request{ID: 3, Token: e.Mint(testJob, "function:f:call"), Op: gatewayproto.OpCall, Name: "f"}))
	if !isChildID(got.ID, testID) || len(got.Scopes) != 0 || got.Restricted == nil || !*got.Restricted {
		t.Fatalf("child job %+v", got)
	}
}

func TestCallWithoutCaller(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	wantError(t, c.do(gatewayproto.Request{ID: 1, Token: e.Mint(testJob, "function:f:call"), Op: gatewayproto.OpCall, Name: "f"}), gatewayproto.ErrCallFailed, "not available")
	wantError(t, c.do(gatewayproto.Request{ID: 2, Token: e.Mint(testJob), Op: gatewayproto.OpCall, Name: "f"}), gatewayproto.ErrAuthError, "not granted")
}

func TestQueue(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "queue:q:put", "queue:q:get")
	for i, v := range []string{`1`, `"two"`, `{"three":3}`} {
		wantOK(t, c.do(gatewayproto.Request{ID: int64(i), Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(v)}))
	}
	for _, want := range []string{`1`, `"two"`, `{"three":3}`} {
		resp := c.do(gatewayproto.Request{ID: 9, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q", TimeoutMS: 2000})
		wantOK(t, resp)
		if !resp.Found || string(resp.Value) != want {
			t.Fatalf("get: %+v %s, want %s", resp, resp.Value, want)
		}
	}
	start := time.Now()
	resp := c.do(gatewayproto.Request{ID: 10, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q", TimeoutMS: 300})
	wantOK(t, resp)
	if resp.Found {
		t.Fatalf("get on an empty queue: %+v", resp)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("get on an empty queue with a 300ms timeout took %v", d)
	}
}

func TestMaxConns(t *testing.T) {
	var quota quotaRecorder
	e := startEnv(t, quota.bind)
	tok := e.Mint(testJob)
	var conns []*rawConn
	for range gatewayproto.MaxConns {
		c := e.dial()
		// A round trip proves the gateway took the connection.
		wantError(t, c.do(gatewayproto.Request{ID: 1, Token: tok, Op: "nope", Name: "d"}), gatewayproto.ErrInvalidRequest, "unknown operation")
		conns = append(conns, c)
	}
	// One more is told why, and closed.
	extra := e.dial()
	_, _ = extra.c.Write([]byte(`{"id":1,"op":"nope","name":"d"}` + "\n")) // may fail: refused
	resp, err := extra.recv()
	if err != nil {
		t.Fatalf("connection %d: no answer (%v), want a QuotaExceeded one", gatewayproto.MaxConns+1, err)
	}
	wantError(t, resp, gatewayproto.ErrQuotaExceeded, "connections")
	if resp, err := extra.recv(); err == nil {
		t.Fatalf("connection %d was served: %+v", gatewayproto.MaxConns+1, resp)
	}
	if refused := quota.refusals(); len(refused) != 1 || refused[0].Type != gatewayproto.ErrQuotaExceeded {
		t.Errorf("the binding heard of %v, want the one refused connection (QuotaExceeded blame)", refused)
	}
	conns[0].c.Close()
	// The freed slot is given back once the gateway sees the close.
	waitFor(t, func() bool { return e.ln.openConns() < gatewayproto.MaxConns })
	c := e.dial()
	wantError(t, c.do(gatewayproto.Request{ID: 2, Op: "nope", Name: "d"}), gatewayproto.ErrInvalidRequest, "unknown operation")
}

func TestClose(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "queue:q:get", "queue:q:put")
	wantOK(t, c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(`1`)}))
	wantOK(t, c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q"}))
	// One connection idle, one waiting in a long queue.get.
	waiting := e.dial()
	waiting.send(`{"id":3,"token":"` + tok + `","op":"queue.get","name":"q","timeout_ms":8000}`)
	waitFor(t, func() bool { return e.ln.inFlight() == 1 })
	done := make(chan struct{})
	go func() { e.ln.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close waits for a pending queue.get (8s) instead of ending it")
	}
	if _, err := os.Stat(e.sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after Close: %v", err)
	}
	if resp, err := c.recv(); err == nil {
		t.Fatalf("idle connection still open after Close: %+v", resp)
	}
	// The waiting get may be answered (a timeout) before its connection
	// ends, but the connection must end.
	for {
		if _, err := waiting.recv(); err != nil {
			break
		}
	}
	if err := e.ln.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.Dial("unix", e.sock); err == nil {
		t.Fatal("dial after Close succeeded")
	}
}

// TestCloseWhileConnecting closes listeners while clients connect: Close
// must never wait for a connection the client keeps open.
func TestCloseWhileConnecting(t *testing.T) {
	e := startEnv(t, nil)
	for i := range 60 {
		ln, err := e.g.Listen(t.Context(), e.sock, Binding{JobID: testJob, Deadline: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		connected := make(chan struct{}) // closed at the first connection of the round
		var once sync.Once
		var wg sync.WaitGroup
		var mu sync.Mutex
		var held []net.Conn
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.Dial("unix", e.sock)
					if err != nil {
						continue
					}
					mu.Lock()
					held = append(held, c) // kept open until the round ends
					mu.Unlock()
					once.Do(func() { close(connected) })
				}
			})
		}
		// Close while the clients are connecting, not before they begin.
		<-connected
		done := make(chan struct{})
		go func() { ln.Close(); close(done) }()
		var hung bool
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			hung = true
		}
		close(stop)
		wg.Wait()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		<-done
		if hung {
			t.Fatalf("round %d: Close waited for a connection accepted while it ran", i)
		}
	}
}

// TestNonJSONStoredValue: a dict entry or queue message written by
// something other than a gateway (a host tool, the Go SDK) may not be JSON.
// The job must get an answer, not a silently closed connection.
func TestNonJSONStoredValue(t *testing.T) {
	e := startEnv(t, nil)
	c := e.dial()
	tok := e.Mint(testJob, "dict:d:read", "dict:d:write")
	wantOK(t, c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: json.RawMessage(`1`)}))
	kv, err := e.js.KeyValue(t.Context(), bus.DictBucket(testTenant, "d"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	c.send(`{"id":2,"token":"` + tok + `","op":"dict.get","name":"d","key":"k"}`)
	resp, err := c.recv()
	if err != nil {
		t.Fatalf("dict.get of a non-JSON value: no response (%v)", err)
	}
	if resp.ID != 2 {
		t.Fatalf("response %+v", resp)
	}

	qtok := e.Mint(testJob, "queue:q:put", "queue:q:get")
	wantOK(t, c.do(gatewayproto.Request{ID: 3, Token: qtok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(`1`)}))
	wantOK(t, c.do(gatewayproto.Request{ID: 4, Token: qtok, Op: gatewayproto.OpQueueGet, Name: "q"}))
	if _, err := e.js.Publish(t.Context(), bus.QueueSubject(testTenant, "q"), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	c.send(`{"id":5,"token":"` + qtok + `","op":"queue.get","name":"q","timeout_ms":1000}`)
	resp, err = c.recv()
	if err != nil {
		t.Fatalf("queue.get of a non-JSON value: no response (%v)", err)
	}
	if resp.ID != 5 {
		t.Fatalf("response %+v", resp)
	}
}

// TestQueueGetBeforeFirstPut: a consumer that starts before its producer
// has put anything must wait for the value like on any empty queue.
func TestQueueGetBeforeFirstPut(t *testing.T) {
	e := startEnv(t, nil)
	tok := e.Mint(testJob, "queue:fresh:put", "queue:fresh:get")
	consumer := e.dial()
	consumer.send(`{"id":2,"token":"` + tok + `","op":"queue.get","name":"fresh","timeout_ms":3000}`)
	// The get has made the queue and waits on its consumer: put only now.
	waitFor(t, func() bool {
		_, err := e.js.Consumer(t.Context(), bus.QueueStream(testTenant, "fresh"), bus.QueueConsumer)
		return err == nil
	})
	producer := e.dial()
	wantOK(t, producer.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpQueuePut, Name: "fresh", Value: json.RawMessage(`42`)}))
	resp := consumer.mustRecv()
	wantOK(t, resp)
	if resp.ID != 2 || !resp.Found || string(resp.Value) != "42" {
		t.Fatalf("queue.get with a 3s timeout on a queue not yet created, then put 42: %+v", resp)
	}
}

// TestHugeTimeout: a timeout_ms beyond what is left means "until the
// job's deadline", not an overflowed duration.
func TestHugeTimeout(t *testing.T) {
	e := startEnv(t, func(_ *Config, b *Binding) { b.Deadline = time.Now().Add(1500 * time.Millisecond) })
	c := e.dial()
	tok := e.Mint(testJob, "queue:q:put", "queue:q:get")
	wantOK(t, c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(`1`)}))
	wantOK(t, c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q"}))
	for _, ms := range []int64{math.MaxInt64, math.MaxInt64 / 1000} {
		resp := c.do(gatewayproto.Request{ID: 3, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q", TimeoutMS: ms})
		if resp.Found || resp.Error != nil && resp.Error.Type != gatewayproto.ErrTimeout {
			t.Errorf("timeout_ms %d: %+v %+v, want an empty get (or a Timeout) at the deadline", ms, resp, resp.Error)
		}
	}
}

// TestCallInLongJob: a job of the longest timeout (plus the worker's
// grace) may call functions from its first second.
func TestCallInLongJob(t *testing.T) {
	called := false
	e := startEnv(t, func(c *Config, b *Binding) {
		b.Deadline = time.Now().Add(time.Duration(schema.MaxTimeoutMS)*time.Millisecond + 5*time.Second)
		c.Call = func(ctx context.Context, _ string, job schema.Job) (*schema.Event, error) {
			called = true
			return &schema.Event{JobID: job.ID, Type: schema.EventResult, Status: schema.StatusSucceeded}, nil
		}
	})
	resp := e.dial().do(gatewayproto.Request{ID: 1, Token: e.Mint(testJob, "function:f:call"), Op: gatewayproto.OpCall, Name: "f"})
	if !resp.OK || !called {
		t.Fatalf("call without timeout_ms in a job with an hour left: %+v", resp.Error)
	}
}

// FuzzHandle feeds arbitrary lines to a listener's handle: no panic, and
// nothing that cannot prove it belongs to the socket's job gets through.
// The only tokens that verify belong to another job or are expired, so no
// request reaches perform (which would need NATS).
func FuzzHandle(f *testing.F) {
	signer, err := signing.Generate()
	if err != nil {
		f.Fatal(err)
	}
	mint := func(job string, exp time.Time, scopes ...string) string {
		tok, err := token.Mint(signer.Key, token.Claims{JobID: job, Function: "python", Scopes: scopes,
			IssuedAt: exp.Add(-time.Hour).UnixMilli(), Expiry: exp.UnixMilli(), KeyID: signer.ID})
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	other := mint(testJob2, time.Now().Add(time.Hour), "dict:d:read", "queue:q:get", "function:f:call")
	expired := mint(testJob, time.Now().Add(-time.Minute), "dict:d:read", "dict:d:write")
	for _, s := range []string{
		`{"id":1,"token":"` + other + `","op":"dict.get","name":"d","key":"k"}`,
		`{"id":2,"token":"` + expired + `","op":"dict.put","name":"d","key":"k","value":{"a":1}}`,
		`{"id":3,"token":"` + other + `","op":"function.call","name":"f","args":[1],"code":"x","timeout_ms":5}`,
		`{"id":4,"token":"","op":"queue.get","name":"q","timeout_ms":-1}`,
		`{"id":5,"op":"queue.put","name":"q.x","value":null}`,
		`{"id":6,"op":"nope"}`,
		`{"ID":7,"OP":"dict.get","NAME":"d","x":1}`,
		`not json`, ``, `[]`, `{"id":1e99}`, `{"value":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	pub := signer.Key.Public().(ed25519.PublicKey)
	g := &Gateway{cfg: Config{Keys: func(context.Context) token.KeyFunc {
		return func(kid string) (ed25519.PublicKey, error) {
			if kid == signer.ID {
				return pub, nil
			}
			return nil, token.ErrUnknownKey
		}
	}}}
	f.Fuzz(func(t *testing.T, line []byte) {
		var denied []schema.AuthError
		l := &Listener{g: g, ctx: t.Context()}
		s := l.newSession(Binding{JobID: testJob, Deadline: time.Now().Add(time.Minute),
			OnDenied: func(ae schema.AuthError) { denied = append(denied, ae) }})
		resp := l.handle(s, line).Response
		if resp == nil || resp.OK || resp.Error == nil {
			t.Fatalf("handle(%q) = %+v: want an error", line, resp)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("response cannot be encoded: %v", err)
		}
		switch resp.Error.Type {
		case gatewayproto.ErrAuthError:
			if len(denied) != 1 || denied[0].Resource != resp.Error.Resource || denied[0].Action != resp.Error.Action {
				t.Fatalf("denial %+v, OnDenied %+v", resp.Error, denied)
			}
			sc, err := schema.ParseScope(resp.Error.Resource + ":" + resp.Error.Action)
			if err != nil {
				t.Fatalf("denied resource %q action %q: %v", resp.Error.Resource, resp.Error.Action, err)
			}
			_ = sc
		case gatewayproto.ErrInvalidRequest:
			if len(denied) != 0 {
				t.Fatalf("invalid request reported as denied: %+v", denied)
			}
		default:
			t.Fatalf("unexpected error %+v", resp.Error)
		}

		// requiredScope alone: whatever it accepts is a scope ParseScope
		// accepts, and it names the request's resource.
		var req gatewayproto.Request
		if json.Unmarshal(line, &req) != nil {
			return
		}
		sc, err := requiredScope(&req)
		if err != nil {
			return
		}
		parsed, perr := schema.ParseScope(sc.String())
		if perr != nil || parsed != sc || sc.Name != req.Name {
			t.Fatalf("requiredScope(%+v) = %+v; ParseScope: %+v, %v", req, sc, parsed, perr)
		}
	})
}

// TestAbandonedGetLosesNothing: a job that gives up on a queue.get (its
// client's ctx ended, the process was killed) closes the connection; a
// value put afterwards must still reach the next get, not be taken and
// acked for a connection nobody reads.
func TestAbandonedGetLosesNothing(t *testing.T) {
	e := startEnv(t, nil)
	tok := e.Mint(testJob, "queue:q:put", "queue:q:get")
	c := e.dial()
	wantOK(t, c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(`0`)}))
	wantOK(t, c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q"}))
	abandoned := e.dial()
	abandoned.send(`{"id":3,"token":"` + tok + `","op":"queue.get","name":"q","timeout_ms":1500}`)
	waitFor(t, func() bool { return e.ln.inFlight() == 1 })
	// The gateway learns of the hang-up only when it writes the answer:
	// nothing to wait for before the put, which the abandoned get races.
	abandoned.c.Close()
	wantOK(t, c.do(gatewayproto.Request{ID: 4, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(`42`)}))
	resp := c.do(gatewayproto.Request{ID: 5, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q", TimeoutMS: 3000})
	wantOK(t, resp)
	if !resp.Found || string(resp.Value) != "42" {
		t.Fatalf("the value put after a get was abandoned went to the abandoned get: %+v", resp)
	}
}

// TestHalfClose: a one-shot client (`printf '%s\n' "$req" | nc -U ...`)
// sends its request and shuts down its write side; it must still get the
// answer.
func TestHalfClose(t *testing.T) {
	e := startEnv(t, nil)
	tok := e.Mint(testJob, "dict:d:read", "dict:d:write", "queue:q:put", "queue:q:get")
	for _, req := range []gatewayproto.Request{
		{ID: 1, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: json.RawMessage(`1`)},
		{ID: 2, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(`2`)},
		{ID: 3, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q", TimeoutMS: 2000},
		{ID: 4, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q", TimeoutMS: 300},
	} {
		c := e.dial()
		data, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		c.send(string(data))
		if err := c.c.(*net.UnixConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		resp, err := c.recv()
		if err != nil {
			t.Fatalf("%s after a half-close: no answer (%v)", req.Op, err)
		}
		if !resp.OK || resp.ID != req.ID {
			t.Fatalf("%s after a half-close: %+v %+v", req.Op, resp, resp.Error)
		}
	}
}

// TestResetBetweenJobs: a reused sandbox's socket serves job after job.
// After Reset, a connection the first job opened is gone, its token is
// refused, and nothing is denied in the next job's name until it is bound.
func TestResetBetweenJobs(t *testing.T) {
	e := startEnv(t, nil)
	first := e.Mint(testJob, "dict:d:write", "dict:d:read")
	old := e.dial()
	wantOK(t, old.do(gatewayproto.Request{ID: 1, Token: first, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: json.RawMessage(`1`)}))

	e.ln.Reset()
	if resp, err := old.recv(); err == nil {
		t.Fatalf("the first job's connection still answers after Reset: %+v", resp)
	}
	wantError(t, e.dial().do(gatewayproto.Request{ID: 2, Token: first, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"}), gatewayproto.ErrAuthError, "no job")

	var nextDenied []schema.AuthError
	e.ln.Bind(Binding{JobID: testJob2, Deadline: time.Now().Add(time.Minute),
		OnDenied: func(ae schema.AuthError) { nextDenied = append(nextDenied, ae) }})
	// The first job's token, leaked to the second, speaks for no one.
	wantError(t, e.dial().do(gatewayproto.Request{ID: 3, Token: first, Op: gatewayproto.OpDictGet, Name: "d", Key: "k"}), gatewayproto.ErrAuthError, "another job")
	wantOK(t, e.dial().do(gatewayproto.Request{ID: 4, Token: e.Mint(testJob2, "dict:d:read"), Op: gatewayproto.OpDictGet, Name: "d", Key: "k"}))
	if len(nextDenied) != 1 || len(e.denials()) != 0 {
		t.Errorf("denials: first job %+v, second job %+v; want none and one", e.denials(), nextDenied)
	}
}
