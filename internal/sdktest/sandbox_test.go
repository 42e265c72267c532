package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/gatewaytest"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk/sandbox"
)

// The tests of sdk/sandbox, the in-container client, that need a gateway
// on NATS; sdk/sandbox keeps those that need no server.

// gatewayEnv is a gateway on an embedded NATS serving one job's socket.
type gatewayEnv struct {
	*gatewaytest.Env
	t *testing.T
}

func startGateway(t *testing.T, call gateway.Caller) *gatewayEnv {
	return &gatewayEnv{Env: gatewaytest.Start(t, call), t: t}
}

// client returns a client with a token of scopes.
func (e *gatewayEnv) client(scopes ...string) *sandbox.Client {
	c := sandbox.NewWith(e.Sock, e.Token(scopes...))
	e.t.Cleanup(func() { c.Close() })
	return c
}

func callCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantSandboxAuth fails t unless err is a *sandbox.AuthError, also matched
// as a *sandbox.Error, for resource and action with a message holding msg.
func wantSandboxAuth(t *testing.T, err error, resource, action, msg string) {
	t.Helper()
	var ae *sandbox.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want an *AuthError", err, err)
	}
	if ae.Resource != resource || ae.Action != action || !strings.Contains(ae.Message, msg) {
		t.Fatalf("AuthError %+v, want %s %s %q", ae, resource, action, msg)
	}
	var be *sandbox.Error
	if !errors.As(err, &be) || be.Type != sandbox.TypeAuth {
		t.Fatalf("AuthError %v does not match *Error of type AuthError", err)
	}
}

// wantSandboxError fails t unless err is a *sandbox.Error, not an
// AuthError, of type typ with a message holding msg.
func wantSandboxError(t *testing.T, err error, typ, msg string) {
	t.Helper()
	var ae *sandbox.AuthError
	if errors.As(err, &ae) {
		t.Fatalf("error %v is an AuthError, want %s", err, typ)
	}
	var be *sandbox.Error
	if !errors.As(err, &be) || be.Type != typ || !strings.Contains(be.Message, msg) {
		t.Fatalf("error %v (%T), want *Error %s %q", err, err, typ, msg)
	}
}

type dictItem struct {
	A []int          `json:"a"`
	S string         `json:"s"`
	M map[string]any `json:"m,omitempty"`
}

func TestSandboxDict(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	d := e.client("dict:d:read", "dict:d:write").Dict("d")
	var got dictItem
	if found, err := d.Get(ctx, "k", &got); err != nil || found {
		t.Fatalf("Get before Put = %v, %v", found, err)
	}
	want := dictItem{A: []int{1, 2}, S: "é<&>", M: map[string]any{"x": nil}}
	if err := d.Put(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	if found, err := d.Get(ctx, "k", &got); err != nil || !found || got.S != want.S || len(got.A) != 2 || len(got.M) != 1 {
		t.Fatalf("Get = %v, %v, %+v", found, err, got)
	}
	if found, err := d.Get(ctx, "k", nil); err != nil || !found {
		t.Fatalf("Get(nil) = %v, %v", found, err)
	}
	var n int
	if found, err := d.Get(ctx, "k", &n); !found || err == nil {
		t.Fatalf("Get into the wrong type = %v, %v: want a decode error", found, err)
	}
	if err := d.Put(ctx, "raw", json.RawMessage(`[1, 2]`)); err != nil {
		t.Fatal(err)
	}
	var raw json.RawMessage
	if _, err := d.Get(ctx, "raw", &raw); err != nil || string(raw) != "[1,2]" {
		t.Fatalf("raw = %s, %v", raw, err)
	}
	if err := d.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if found, err := d.Get(ctx, "k", &got); err != nil || found {
		t.Fatalf("Get after Delete = %v, %v", found, err)
	}
	if err := d.Delete(ctx, "never"); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "k", func() {}); err == nil {
		t.Fatal("Put of a func succeeded")
	}
	wantSandboxError(t, d.Put(ctx, "a b", 1), sandbox.TypeInvalidRequest, "key")
	if len(e.Denials()) != 0 {
		t.Fatalf("denials: %+v", e.Denials())
	}
}

func TestSandboxReadOnly(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	d := e.client("dict:d:read").Dict("d")
	if _, err := d.Get(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	err := d.Put(ctx, "k", 1)
	wantSandboxAuth(t, err, "dict:d", "write", "not granted")
	if !strings.Contains(err.Error(), "dict:d write") {
		t.Errorf("message %q", err)
	}
	if d := e.Denials(); len(d) != 1 || d[0].Resource != "dict:d" || d[0].Action != "write" {
		t.Fatalf("OnDenied calls %+v", d)
	}
}

func TestSandboxRestricted(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	c := e.client()
	_, err := c.Dict("d").Get(ctx, "k", nil)
	wantSandboxAuth(t, err, "dict:d", "read", "not granted")
	wantSandboxAuth(t, c.Dict("d").Put(ctx, "k", 1), "dict:d", "write", "not granted")
	wantSandboxAuth(t, c.Dict("d").Delete(ctx, "k"), "dict:d", "write", "not granted")
	wantSandboxAuth(t, c.Queue("q").Put(ctx, 1), "queue:q", "put", "not granted")
	_, err = c.Queue("q").Get(ctx, time.Second, nil)
	wantSandboxAuth(t, err, "queue:q", "get", "not granted")
	_, err = c.Call(ctx, "f", "", nil, 0)
	wantSandboxAuth(t, err, "function:f", "call", "not granted")
	if d := e.Denials(); len(d) != 6 {
		t.Fatalf("OnDenied calls %+v, want 6", d)
	}
}

func TestSandboxQueue(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	q := e.client("queue:q:put", "queue:q:get").Queue("q")
	for i := range 3 {
		if err := q.Put(ctx, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		var v map[string]int
		if found, err := q.Get(ctx, 2*time.Second, &v); err != nil || !found || v["n"] != i {
			t.Fatalf("Get %d = %v, %v, %v", i, found, err, v)
		}
	}
	start := time.Now()
	if found, err := q.Get(ctx, 300*time.Millisecond, nil); err != nil || found {
		t.Fatalf("Get on empty = %v, %v", found, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Get(300ms) on an empty queue took %v", d)
	}
	// A ctx shorter than the timeout: the gateway answers before it ends.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	if found, err := q.Get(short, time.Minute, nil); err != nil || found {
		t.Fatalf("Get(1m) within a 500ms ctx = %v, %v", found, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestSandboxCancel(t *testing.T) {
	e := startGateway(t, nil)
	c := e.client("queue:q:put", "queue:q:get", "dict:d:read")
	ctx := callCtx(t)
	if err := c.Queue("q").Put(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Queue("q").Get(ctx, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Queue("q").Get(cctx, 2*time.Second, nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("cancelled Get = %v after %v", err, time.Since(start))
	}
	if _, err := c.Dict("d").Get(ctx, "k", nil); err != nil {
		t.Fatalf("call after a cancelled one: %v", err)
	}
	// The abandoned get took nothing. Nothing to wait for first: the
	// client hung up when cctx ended, while the gateway's side of that get
	// polls on for the rest of its 2 s; the put below races it, which is
	// the case under test (a value it takes is offered again).
	if err := c.Queue("q").Put(ctx, 7); err != nil {
		t.Fatal(err)
	}
	var v int
	if found, err := c.Queue("q").Get(ctx, 2*time.Second, &v); err != nil || !found || v != 7 {
		t.Fatalf("Get after an abandoned Get = %v, %v, %d", found, err, v)
	}
	if _, err := c.Dict("d").Get(cctx, "k", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("call with a done ctx: %v", err)
	}
}

// TestSandboxConcurrent: calls from many goroutines, while one waits in a long
// queue get, share a few connections.
func TestSandboxConcurrent(t *testing.T) {
	e := startGateway(t, nil)
	c := e.client("queue:q:put", "queue:q:get", "dict:d:read", "dict:d:write")
	ctx := callCtx(t)
	if err := c.Queue("q").Put(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Queue("q").Get(ctx, time.Second, nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() {
		var v int
		_, err := c.Queue("q").Get(ctx, 10*time.Second, &v)
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			key := "k" + string(rune('a'+i%26))
			for j := range 5 {
				if err := c.Dict("d").Put(ctx, key, j); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Dict("d").Get(ctx, key, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := c.Queue("q").Put(ctx, 42); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != 42 {
		t.Fatalf("waiting Get got %d", v)
	}
}

func TestSandboxBadTokens(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	good := e.Token("dict:d:read")
	i := len("v1.") + 10
	tampered := good[:i] + string(good[i]^1) + good[i+1:]
	for _, tt := range []struct{ name, tok, msg string }{
		{"tampered", tampered, "token"},
		{"another job", e.Mint(schema.JobKey(gatewaytest.Tenant, "job-2"), "dict:d:read"), "another job"},
		{"same id, another tenant", e.Mint(schema.JobKey("other", gatewaytest.JobID), "dict:d:read"), "another job"},
		{"expired", e.MintUntil(gatewaytest.JobKey, time.Now().Add(-time.Second), "dict:d:read"), "expired"},
		{"none", "", "no token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := sandbox.NewWith(e.Sock, tt.tok)
			defer c.Close()
			_, err := c.Dict("d").Get(ctx, "k", nil)
			wantSandboxAuth(t, err, "dict:d", "read", tt.msg)
		})
	}
}

// TestSandboxEnv: New reads the socket path once and the token at every call.
func TestSandboxEnv(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	t.Setenv(sandbox.EnvGateway, e.Sock)
	t.Setenv(sandbox.EnvToken, "")
	os.Unsetenv(sandbox.EnvToken)
	c := sandbox.New()
	defer c.Close()
	_, err := c.Dict("d").Get(ctx, "k", nil)
	wantSandboxAuth(t, err, "dict:d", "read", "no token")
	os.Setenv(sandbox.EnvToken, e.Token())
	_, err = c.Dict("d").Get(ctx, "k", nil)
	wantSandboxAuth(t, err, "dict:d", "read", "not granted")
	os.Setenv(sandbox.EnvToken, e.Token("dict:d:read", "dict:d:write"))
	if _, err := c.Dict("d").Get(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	// The package-level functions use such a client.
	if err := sandbox.Dict("d").Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	var v string
	if found, err := sandbox.Dict("d").Get(ctx, "k", &v); err != nil || !found || v != "v" {
		t.Fatalf("default client Get = %v, %v, %q", found, err, v)
	}
	_, err = sandbox.Call(ctx, "f", "", nil, 0)
	wantSandboxAuth(t, err, "function:f", "call", "not granted")
	err = sandbox.Queue("q").Put(ctx, 1)
	wantSandboxAuth(t, err, "queue:q", "put", "not granted")
}

func TestSandboxCallWithoutCaller(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	c := e.client("function:f:call")
	_, err := c.Call(ctx, "f", "print(1)", nil, 0)
	wantSandboxError(t, err, sandbox.TypeInfrastructure, "not available")
	_, err = c.Call(ctx, "g", "", nil, 0)
	wantSandboxAuth(t, err, "function:g", "call", "not granted")
}

func TestSandboxCall(t *testing.T) {
	e := startGateway(t, func(ctx context.Context, tenant string, job schema.Job) (*schema.Event, error) {
		return &schema.Event{JobID: schema.JobKey(tenant, job.ID), Type: schema.EventResult, Status: schema.StatusFailed, ExitCode: 3,
			Output: json.RawMessage(`{"sum":3}`), Error: &schema.ErrorInfo{Type: schema.ErrNonZeroExit, Message: "exit 3"}}, nil
	})
	ctx := callCtx(t)
	c := e.client("function:add:call")
	ev, err := c.Call(ctx, "add", "x", map[string]int{"a": 1}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if calls := e.Calls(); len(calls) != 1 || ev.JobID != schema.JobKey(gatewaytest.Tenant, calls[0].ID) || e.CallTenants()[0] != gatewaytest.Tenant || ev.Status != schema.StatusFailed || ev.ExitCode != 3 || string(ev.Output) != `{"sum":3}` ||
		ev.Error == nil || ev.Error.Type != schema.ErrNonZeroExit {
		t.Fatalf("event %+v", ev)
	}
	if calls := e.Calls(); len(calls) != 1 || calls[0].Code != "x" || string(calls[0].Args) != `{"a":1}` || calls[0].TimeoutMS > 5000 {
		t.Fatalf("child jobs %+v", calls)
	}
}

func TestSandboxHugeValue(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	c := e.client("dict:d:read", "dict:d:write")
	wantSandboxError(t, c.Dict("d").Put(ctx, "k", strings.Repeat("x", 300<<10)), sandbox.TypeInvalidRequest, "larger than")
	wantSandboxError(t, c.Dict("d").Put(ctx, "k", strings.Repeat("x", 2<<20)), sandbox.TypeInvalidRequest, "longer than")
	if err := c.Dict("d").Put(ctx, "k", strings.Repeat("x", gatewayproto.MaxValueBytes-2)); err != nil {
		t.Fatal(err)
	}
	var s string
	if _, err := c.Dict("d").Get(ctx, "k", &s); err != nil || len(s) != gatewayproto.MaxValueBytes-2 {
		t.Fatalf("Get = %d bytes, %v", len(s), err)
	}
}

// TestSandboxReconnect: a client outlives its connection (the socket re-bound,
// as for a prewarmed container).
func TestSandboxReconnect(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	c := e.client("dict:d:read")
	if _, err := c.Dict("d").Get(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	e.Listener.Close()
	e.Listen()
	if _, err := c.Dict("d").Get(ctx, "k", nil); err != nil {
		t.Fatalf("Get after the socket was re-created: %v", err)
	}
	c.Close()
	if _, err := c.Dict("d").Get(ctx, "k", nil); err == nil {
		t.Fatal("Get after Close succeeded")
	}
}

// TestSandboxLimits: a full dict or queue, too many resources and too fast a
// request rate are *Errors of their own types, matched by the sentinels.
func TestSandboxLimits(t *testing.T) {
	e := startGateway(t, nil)
	e.Listener.Bind(gateway.Binding{JobID: gatewaytest.JobKey, Deadline: time.Now().Add(time.Minute),
		Quotas: schema.Quotas{DictMB: 1, QueueMessages: 2, Resources: 2}})
	ctx := callCtx(t)
	c := e.client("dict:d:write", "queue:q:put", "dict:other:write")
	big := strings.Repeat("x", 100<<10)
	var err error
	for i := 0; err == nil && i < 100; i++ {
		err = c.Dict("d").Put(ctx, "k"+strings.Repeat("i", i), big)
	}
	wantSandboxError(t, err, sandbox.TypeQuotaExceeded, "dict d is full")
	if !errors.Is(err, sandbox.ErrQuotaExceeded) || errors.Is(err, sandbox.ErrRateLimited) {
		t.Fatalf("errors.Is(%v): wrong sentinel", err)
	}
	for i := 0; i < 3; i++ {
		err = c.Queue("q").Put(ctx, i)
	}
	wantSandboxError(t, err, sandbox.TypeQuotaExceeded, "queue q is full: it holds at most 2 values")
	wantSandboxError(t, c.Dict("other").Put(ctx, "k", 1), sandbox.TypeQuotaExceeded, "at most 2 dicts and queues")
	// Denied calls count against the rate too and never reach NATS, so the
	// loop outruns the refill even on a slow machine; it gives up after 60 s
	// rather than by a count that a slow machine may never trip.
	var denied *sandbox.Error
	err = nil
	for end := time.Now().Add(time.Minute); err == nil || (errors.As(err, &denied) && denied.Type == sandbox.TypeAuth); {
		if time.Now().After(end) {
			t.Fatal("never rate limited")
		}
		var v any
		_, err = c.Dict("nope").Get(ctx, "k", &v)
	}
	wantSandboxError(t, err, sandbox.TypeRateLimited, "requests a second")
	if !errors.Is(err, sandbox.ErrRateLimited) {
		t.Fatalf("errors.Is(%v, ErrRateLimited) = false", err)
	}
}

// TestSandboxTenantsApart: a socket re-bound to a job of another tenant, with the
// same id and the same scopes, reaches that tenant's dict and queue named
// "shared", not the first job's.
func TestSandboxTenantsApart(t *testing.T) {
	e := startGateway(t, nil)
	ctx := callCtx(t)
	scopes := []string{"dict:shared:read", "dict:shared:write", "queue:shared:put", "queue:shared:get"}
	first := e.client(scopes...)
	if err := first.Dict("shared").Put(ctx, "k", "default's"); err != nil {
		t.Fatal(err)
	}
	if err := first.Queue("shared").Put(ctx, 1); err != nil {
		t.Fatal(err)
	}
	other := schema.JobKey("other", gatewaytest.JobID)
	e.Listener.Bind(gateway.Binding{JobID: other, Deadline: time.Now().Add(time.Minute)})
	second := sandbox.NewWith(e.Sock, e.Mint(other, scopes...))
	t.Cleanup(func() { second.Close() })
	var s string
	if found, err := second.Dict("shared").Get(ctx, "k", &s); err != nil || found {
		t.Fatalf("tenant other reads %q (found %v, %v)", s, found, err)
	}
	var n int
	if found, err := second.Queue("shared").Get(ctx, 300*time.Millisecond, &n); err != nil || found {
		t.Fatalf("tenant other takes %d (found %v, %v)", n, found, err)
	}
	if err := second.Dict("shared").Put(ctx, "k", "other's"); err != nil {
		t.Fatal(err)
	}
	// The first job's token speaks for no one on the re-bound socket.
	if _, err := first.Dict("shared").Get(ctx, "k", &s); err == nil {
		t.Fatal("the first job's token still works")
	}
	e.Listener.Bind(gateway.Binding{JobID: gatewaytest.JobKey, Deadline: time.Now().Add(time.Minute)})
	if found, err := first.Dict("shared").Get(ctx, "k", &s); err != nil || !found || s != "default's" {
		t.Fatalf("default's dict holds %q (found %v, %v)", s, found, err)
	}
	if found, err := first.Queue("shared").Get(ctx, 2*time.Second, &n); err != nil || !found || n != 1 {
		t.Fatalf("default's queue gives %d (found %v, %v)", n, found, err)
	}
}
