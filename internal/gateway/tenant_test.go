package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestTenantsResourcesApart: two jobs of two tenants, with the same id and
// the same scope strings, reach two different dicts and queues named
// "shared"; neither's token speaks on the other's socket.
func TestTenantsResourcesApart(t *testing.T) {
	e := startEnv(t, nil)
	const otherJob = "beta." + testID // the same client id, in tenant beta
	scopes := []string{"dict:shared:read", "dict:shared:write", "queue:shared:put", "queue:shared:get"}
	ta, tb := e.Mint(testJob, scopes...), e.Mint(otherJob, scopes...)
	a, b := e.dial(), dialSock(t, e.listenAs(otherJob))

	wantOK(t, a.do(gatewayproto.Request{ID: 1, Token: ta, Op: gatewayproto.OpDictPut, Name: "shared", Key: "k", Value: json.RawMessage(`"from acme"`)}))
	if resp := b.do(gatewayproto.Request{ID: 2, Token: tb, Op: gatewayproto.OpDictGet, Name: "shared", Key: "k"}); !resp.OK || resp.Found {
		t.Fatalf("beta reads acme's value: %+v %s", resp, resp.Value)
	}
	wantOK(t, b.do(gatewayproto.Request{ID: 3, Token: tb, Op: gatewayproto.OpDictPut, Name: "shared", Key: "k", Value: json.RawMessage(`"from beta"`)}))
	for _, c := range []struct {
		conn *rawConn
		tok  string
		want string
	}{{a, ta, `"from acme"`}, {b, tb, `"from beta"`}} {
		if resp := c.conn.do(gatewayproto.Request{ID: 4, Token: c.tok, Op: gatewayproto.OpDictGet, Name: "shared", Key: "k"}); !resp.Found || string(resp.Value) != c.want {
			t.Fatalf("get: %+v %s, want %s", resp, resp.Value, c.want)
		}
	}
	// beta deleting its key leaves acme's.
	wantOK(t, b.do(gatewayproto.Request{ID: 5, Token: tb, Op: gatewayproto.OpDictDelete, Name: "shared", Key: "k"}))
	if resp := a.do(gatewayproto.Request{ID: 6, Token: ta, Op: gatewayproto.OpDictGet, Name: "shared", Key: "k"}); !resp.Found {
		t.Fatalf("beta's delete reached acme's dict: %+v", resp)
	}

	wantOK(t, a.do(gatewayproto.Request{ID: 7, Token: ta, Op: gatewayproto.OpQueuePut, Name: "shared", Value: json.RawMessage(`1`)}))
	if resp := b.do(gatewayproto.Request{ID: 8, Token: tb, Op: gatewayproto.OpQueueGet, Name: "shared", TimeoutMS: 300}); !resp.OK || resp.Found {
		t.Fatalf("beta takes acme's queue value: %+v %s", resp, resp.Value)
	}
	if resp := a.do(gatewayproto.Request{ID: 9, Token: ta, Op: gatewayproto.OpQueueGet, Name: "shared", TimeoutMS: 2000}); !resp.Found || string(resp.Value) != "1" {
		t.Fatalf("acme's get: %+v %s", resp, resp.Value)
	}

	// A token of one tenant's job is another job on the other's socket,
	// even with the same id.
	wantError(t, a.do(gatewayproto.Request{ID: 10, Token: tb, Op: gatewayproto.OpDictGet, Name: "shared", Key: "k"}), gatewayproto.ErrAuthError, "another job")
	wantError(t, b.do(gatewayproto.Request{ID: 11, Token: ta, Op: gatewayproto.OpDictGet, Name: "shared", Key: "k"}), gatewayproto.ErrAuthError, "another job")

	// On JetStream: one bucket and one stream per tenant, none without one.
	for tenant, want := range map[string]string{testTenant: `"from acme"`, "beta": ""} {
		kv, err := e.js.KeyValue(t.Context(), "BRIG_DICT_"+tenant+"_shared")
		if err != nil {
			t.Fatalf("dict of %s: %v", tenant, err)
		}
		entry, err := kv.Get(t.Context(), "k")
		switch {
		case want == "" && !errors.Is(err, jetstream.ErrKeyNotFound):
			t.Fatalf("%s's dict: %v, want no key", tenant, err)
		case want != "" && (err != nil || string(entry.Value()) != want):
			t.Fatalf("%s's dict: %v, want %s", tenant, err, want)
		}
	}
	if s, err := e.js.Stream(t.Context(), "BRIG_QUEUE_"+testTenant+"_shared"); err != nil ||
		fmt.Sprint(s.CachedInfo().Config.Subjects) != "[brig.queue.acme.shared]" {
		t.Fatalf("acme's queue stream: %v", err)
	}
	if _, err := e.js.KeyValue(t.Context(), "BRIG_DICT_shared"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("a dict outside every tenant: %v", err)
	}
}

// TestCancelRetriesNotFound: a child brig has no event of yet (its
// submission on its way) is cancelled again until a dispatcher knows it.
func TestCancelRetriesNotFound(t *testing.T) {
	started := make(chan string, 1)
	tries := make(chan string, 10)
	var n atomic.Int32
	e := startEnv(t, func(c *Config, _ *Binding) {
		c.Call = blockingCall(started)
		c.Cancel = func(_ context.Context, tenant, id string) error {
			tries <- schema.JobKey(tenant, id)
			if n.Add(1) < 3 {
				return fmt.Errorf("cancel job %s: %w", id, sdk.ErrNotFound)
			}
			return nil
		}
	})
	resp := e.dial().do(gatewayproto.Request{ID: 1, Token: e.Mint(testJob, "function:f:call"), Op: gatewayproto.OpCall, Name: "f", TimeoutMS: 1200})
	wantError(t, resp, gatewayproto.ErrTimeout, "out of time")
	child := <-started
	for i := range 3 {
		select {
		case key := <-tries:
			if key != child {
				t.Fatalf("cancelled %s, want the child %s", key, child)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("cancellation %d of a child not found yet never came", i+1)
		}
	}
	if err := e.g.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(tries) != 0 {
		t.Fatalf("cancelled again after a cancellation succeeded")
	}
}

// TestStopWaitsForCancels: Stop waits for the children of ended calls to
// be cancelled, until its context ends.
func TestStopWaitsForCancels(t *testing.T) {
	started := make(chan string, 1)
	release := make(chan struct{})
	e := startEnv(t, func(c *Config, _ *Binding) {
		c.Call = blockingCall(started)
		c.Cancel = func(ctx context.Context, _, _ string) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	e.dial().send(`{"id":1,"token":"` + e.Mint(testJob, "function:f:call") + `","op":"function.call","name":"f"}`)
	<-started
	e.ln.Close()
	short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := e.g.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a cancellation in flight = %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := e.g.Stop(t.Context()); err != nil {
		t.Fatalf("Stop once the cancellation ended: %v", err)
	}
}

// TestStoppedGatewayCallsFail: after Stop, the tenants' clients are closed
// and a call fails (Infrastructure) instead of starting a child.
func TestStoppedGatewayCallsFail(t *testing.T) {
	_, nc, js := natstest.Start(t)
	keys := natstest.PublishKeys(t, js)
	g, err := New(Config{JS: js, Keys: keys.Ring.Func, Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	if g.cfg.Call == nil || g.cfg.Cancel == nil || g.children == nil {
		t.Fatal("a gateway with Conn has no caller")
	}
	if _, err := g.children.client(testTenant); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	if len(sock) > 100 {
		dir, err := os.MkdirTemp("", "gw")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		sock = filepath.Join(dir, "s.sock")
	}
	ln, err := g.Listen(t.Context(), sock, Binding{JobID: testJob, Deadline: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	resp := dialSock(t, sock).do(gatewayproto.Request{ID: 1, Token: keys.Mint(testJob, "function:f:call"), Op: gatewayproto.OpCall, Name: "f"})
	wantError(t, resp, gatewayproto.ErrCallFailed, "stopping")
}
