// Package gatewaytest runs a gateway on an embedded NATS for the tests of
// its clients: one job's socket, a published signing key to mint the job's
// tokens with, and a record of the denials and child jobs. Only test code
// imports it.
package gatewaytest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/natsserver"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/schema"
)

// The job the socket serves: JobID of Tenant, whose key (schema.JobKey)
// is JobKey. Its tokens and binding carry the key; its children's ids
// start with JobID.
const (
	Tenant = schema.DefaultTenant
	JobID  = "job-1"
	JobKey = Tenant + "." + JobID
)

// Env is a gateway serving JobKey's socket; its Keys mint the tokens.
type Env struct {
	*natstest.Keys
	// Sock is the socket's path.
	Sock string
	// Listener is the socket's current listener.
	Listener *gateway.Listener

	t         testing.TB
	g         *gateway.Gateway
	mu        sync.Mutex
	denied    []schema.AuthError
	calls     []schema.Job
	tenants   []string // of calls
	cancelled []string
}

// Start runs a gateway and listens on a short socket path (a unix socket's
// path is limited to about 100 bytes); call, when set, runs child jobs,
// which Calls and CallTenants record.
//
// The server authenticates as brig's do (docs/design.md §10): a
// dispatcher's credential publishes the signing key, and the gateway runs on
// a worker's, as in a worker, so a call that needs a subject the worker
// role may not use fails here as it would in production.
func Start(t testing.TB, call gateway.Caller) *Env {
	t.Helper()
	a, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.Start(t.Context(), natsserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	e := &Env{Keys: natstest.PublishKeys(t, connect(t, a, ns.ClientURL(), auth.RoleDispatcher)), t: t}
	js := connect(t, a, ns.ClientURL(), auth.RoleWorker)
	ring, err := signing.OpenRing(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{JS: js, Keys: ring.Func}
	if call != nil {
		cfg.Call = func(ctx context.Context, tenant string, job schema.Job) (*schema.Event, error) {
			e.mu.Lock()
			e.calls = append(e.calls, job)
			e.tenants = append(e.tenants, tenant)
			e.mu.Unlock()
			return call(ctx, tenant, job)
		}
		cfg.Cancel = func(_ context.Context, tenant, id string) error {
			e.mu.Lock()
			e.cancelled = append(e.cancelled, schema.JobKey(tenant, id))
			e.mu.Unlock()
			return nil
		}
	}
	if e.g, err = gateway.New(cfg); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.Sock = filepath.Join(dir, "s.sock")
	e.Listen()
	return e
}

// Listen (re)opens the job's socket, with a deadline a minute away.
func (e *Env) Listen() {
	e.t.Helper()
	ln, err := e.g.Listen(e.t.Context(), e.Sock, gateway.Binding{JobID: JobKey, Deadline: time.Now().Add(time.Minute),
		OnDenied: func(ae schema.AuthError) {
			e.mu.Lock()
			e.denied = append(e.denied, ae)
			e.mu.Unlock()
		}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.Listener = ln
	e.t.Cleanup(func() { ln.Close() })
}

// Token is a token of JobKey with scopes, valid for a minute.
func (e *Env) Token(scopes ...string) string {
	e.t.Helper()
	return e.Mint(JobKey, scopes...)
}

// Denials returns the denials reported so far.
func (e *Env) Denials() []schema.AuthError {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]schema.AuthError(nil), e.denied...)
}

// Cancelled returns the keys of the child jobs cancelled so far (their
// calls ended first).
func (e *Env) Cancelled() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.cancelled...)
}

// Calls returns the child jobs run so far.
func (e *Env) Calls() []schema.Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]schema.Job(nil), e.calls...)
}

// CallTenants returns the tenant each of Calls was run in.
func (e *Env) CallTenants() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.tenants...)
}

// connect opens a connection with a credential of role, closed with the
// test.
func connect(t testing.TB, a *auth.Authority, url string, role auth.Role) jetstream.JetStream {
	t.Helper()
	token, seed, err := a.UserJWT(auth.User{Role: role})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.Name("gatewaytest-"+string(role)), nats.UserJWTAndSeed(token, string(seed)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
