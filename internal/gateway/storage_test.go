package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// putTenants stores tenant records, as `brig tenant add` does.
func putTenants(t *testing.T, js jetstream.JetStream, recs ...schema.Tenant) {
	t.Helper()
	kv, err := bus.OpenTenants(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := bus.PutTenant(t.Context(), kv, rec); err != nil {
			t.Fatal(err)
		}
	}
}

// reserved is what the ledger holds for tenant, in bytes (0 without an
// entry, or without the ledger).
func reserved(t *testing.T, js jetstream.JetStream, tenant string) int64 {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), bus.StorageBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := bus.Reserved(t.Context(), kv, tenant)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// heldBytes sums the MaxBytes of tenant's dict buckets and queue streams.
func heldBytes(t *testing.T, js jetstream.JetStream, tenant string) (sum int64, n int) {
	t.Helper()
	names := js.StreamNames(t.Context())
	for name := range names.Name() {
		if !strings.HasPrefix(name, "KV_"+bus.DictBucketPrefix+tenant+"_") && !strings.HasPrefix(name, bus.QueueStreamPrefix+tenant+"_") {
			continue
		}
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		sum += s.CachedInfo().Config.MaxBytes
		n++
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return sum, n
}

// TestTenantStorageCap: a tenant whose max_storage_mb is 3 gets three
// dicts or queues of 1 MiB and is refused the fourth, with QuotaExceeded
// naming its cap; what exists still takes writes; the ledger holds what
// exists; a tenant without a record, or with no limit in it, is not
// bounded and writes no ledger entry.
func TestTenantStorageCap(t *testing.T) {
	q := &quotaRecorder{}
	e := startEnv(t, func(c *Config, b *Binding) {
		q.bind(c, b)
		b.Quotas = schema.Quotas{DictMB: 1, QueueMB: 1}
	})
	putTenants(t, e.js, schema.Tenant{Name: testTenant, MaxStorageMB: 3}, schema.Tenant{Name: "zero"})
	c := e.dial()
	tok := e.Mint(testJob, "dict:d0:write", "dict:d1:write", "dict:d2:write", "queue:q0:put", "queue:q1:get")
	put := func(id int64, name string) *gatewayproto.Response {
		return c.do(gatewayproto.Request{ID: id, Token: tok, Op: gatewayproto.OpDictPut, Name: name, Key: "k", Value: json.RawMessage(`1`)})
	}
	wantOK(t, put(1, "d0"))
	wantOK(t, put(2, "d1"))
	wantOK(t, c.do(gatewayproto.Request{ID: 3, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q0", Value: json.RawMessage(`1`)}))
	const refusal = "tenant acme's dicts and queues may hold at most 3 MiB; 3 MiB reserved (max_storage_mb)"
	wantError(t, put(4, "d2"), gatewayproto.ErrQuotaExceeded, refusal)
	// A get creates a queue too, and is refused the same way.
	wantError(t, c.do(gatewayproto.Request{ID: 5, Token: tok, Op: gatewayproto.OpQueueGet, Name: "q1"}), gatewayproto.ErrQuotaExceeded, refusal)
	if got := q.refusals(); len(got) != 2 {
		t.Errorf("the binding heard of %d refusals, want 2", len(got))
	}
	// What exists costs nothing more.
	wantOK(t, put(6, "d0"))
	wantOK(t, c.do(gatewayproto.Request{ID: 7, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q0", Value: json.RawMessage(`2`)}))
	if _, err := e.js.KeyValue(t.Context(), bus.DictBucket(testTenant, "d2")); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("dict past the cap: %v, want no bucket", err)
	}
	if sum, n := heldBytes(t, e.js, testTenant); sum != 3<<20 || n != 3 || reserved(t, e.js, testTenant) != sum {
		t.Errorf("%d buckets of %d bytes in all, %d reserved; want 3, 3 MiB, 3 MiB", n, sum, reserved(t, e.js, testTenant))
	}

	// A tenant with no record (removed while its job ran): nothing is made.
	{
		key := "beta.j"
		cc := dialSock(t, listenOn(t, e.g, key, Binding{Quotas: schema.Quotas{DictMB: 1}}))
		resp := cc.do(gatewayproto.Request{ID: 1, Token: e.Mint(key, "dict:d0:write"), Op: gatewayproto.OpDictPut, Name: "d0", Key: "k", Value: json.RawMessage(`1`)})
		if resp.Error == nil || resp.Error.Type != gatewayproto.ErrQuotaExceeded || !strings.Contains(resp.Error.Message, "no record") {
			t.Errorf("a dict of a tenant with no record: %+v, want QuotaExceeded", resp.Error)
		}
		if _, err := e.js.KeyValue(t.Context(), bus.DictBucket("beta", "d0")); !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Errorf("a dict of a tenant with no record: %v, want no bucket", err)
		}
	}
	// A tenant whose record sets no limit.
	for _, tenant := range []string{"zero"} {
		key := tenant + ".j"
		cc := dialSock(t, listenOn(t, e.g, key, Binding{Quotas: schema.Quotas{DictMB: 1}}))
		var scopes []string
		for i := range 5 {
			scopes = append(scopes, fmt.Sprintf("dict:d%d:write", i))
		}
		tok := e.Mint(key, scopes...)
		for i := range 5 {
			wantOK(t, cc.do(gatewayproto.Request{ID: int64(i), Token: tok, Op: gatewayproto.OpDictPut, Name: fmt.Sprint("d", i), Key: "k", Value: json.RawMessage(`1`)}))
		}
		if n := reserved(t, e.js, tenant); n != 0 {
			t.Errorf("tenant %s without a limit: %d bytes reserved, want no entry", tenant, n)
		}
	}
	if n := reserved(t, e.js, testTenant); n != 3<<20 {
		t.Errorf("other tenants' dicts changed acme's reservation: %d", n)
	}
}

// TestTenantStorageFailedCreation: a creation JetStream refuses gives its
// reservation back.
func TestTenantStorageFailedCreation(t *testing.T) {
	e := startEnv(t, func(_ *Config, b *Binding) { b.Quotas = schema.Quotas{DictMB: 1, QueueMB: 2} })
	putTenants(t, e.js, schema.Tenant{Name: testTenant, MaxStorageMB: 3})
	// A stream that already takes the queue's subject: creating the
	// queue's own stream fails (subjects overlap).
	if _, err := e.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "squatter", Subjects: []string{bus.QueueSubject(testTenant, "q")}}); err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	tok := e.Mint(testJob, "queue:q:put", "dict:d:write", "queue:r:put")
	wantOK(t, c.do(gatewayproto.Request{ID: 1, Token: tok, Op: gatewayproto.OpDictPut, Name: "d", Key: "k", Value: json.RawMessage(`1`)}))
	if resp := c.do(gatewayproto.Request{ID: 2, Token: tok, Op: gatewayproto.OpQueuePut, Name: "q", Value: json.RawMessage(`1`)}); resp.OK {
		t.Fatalf("queue over another stream's subject: %+v", resp)
	}
	if n := reserved(t, e.js, testTenant); n != 1<<20 {
		t.Fatalf("after a failed creation %d bytes reserved, want the dict's 1 MiB", n)
	}
	// The 2 MiB it held are free again.
	wantOK(t, c.do(gatewayproto.Request{ID: 3, Token: tok, Op: gatewayproto.OpQueuePut, Name: "r", Value: json.RawMessage(`1`)}))
	if n := reserved(t, e.js, testTenant); n != 3<<20 {
		t.Fatalf("%d bytes reserved, want 3 MiB", n)
	}
}

// TestTenantStorageConcurrent: jobs of two tenants on three gateways (as
// on three workers, each with its own connection and cache) create dicts
// and queues at once. Each tenant gets exactly as many as its cap has room
// for, the ledger holds exactly what exists, and neither tenant's
// creations touch the other's. Then jobs of two more tenants race on the
// same few names: a name another job made costs nothing, and a creation
// that lost gives its reservation back, so the ledger still matches what
// exists.
func TestTenantStorageConcurrent(t *testing.T) {
	url, _, js := natstest.Start(t)
	keys := natstest.PublishKeys(t, js)
	var gateways []*Gateway
	for range 3 {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		wjs, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(Config{JS: wjs, Keys: keys.Ring.Func})
		if err != nil {
			t.Fatal(err)
		}
		gateways = append(gateways, g)
	}
	caps := map[string]int{"acme": 3, "beta": 5, "gamma": 1, "delta": 2, "omega": 20}
	for tenant, limit := range caps {
		putTenants(t, js, schema.Tenant{Name: tenant, MaxStorageMB: limit})
	}
	const perTenant = 10
	type outcome struct {
		tenant string
		resp   *gatewayproto.Response
	}
	// round has perTenant jobs of each tenant write at once, job i to the
	// dict or queue name(i): a dict for even i, a queue for odd.
	round := func(tenants []string, name func(i int) string) []outcome {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			out []outcome
		)
		start := make(chan struct{})
		for _, tenant := range tenants {
			for i := range perTenant {
				key, n := fmt.Sprintf("%s.job-%d", tenant, i), name(i)
				c := dialSock(t, listenOn(t, gateways[i%len(gateways)], key, Binding{Quotas: schema.Quotas{DictMB: 1, QueueMB: 1}}))
				req := gatewayproto.Request{ID: 1, Op: gatewayproto.OpDictPut, Name: n, Key: "k", Value: json.RawMessage(`1`), Token: keys.Mint(key, "dict:"+n+":write")}
				if i%2 == 1 {
					req = gatewayproto.Request{ID: 1, Op: gatewayproto.OpQueuePut, Name: n, Value: json.RawMessage(`1`), Token: keys.Mint(key, "queue:"+n+":put")}
				}
				wg.Go(func() {
					<-start
					resp := c.do(req)
					mu.Lock()
					out = append(out, outcome{tenant, resp})
					mu.Unlock()
				})
			}
		}
		close(start)
		wg.Wait()
		return out
	}
	check := func(tenants ...string) {
		t.Helper()
		for _, tenant := range tenants {
			sum, _ := heldBytes(t, js, tenant)
			if r := reserved(t, js, tenant); r != sum || sum > int64(caps[tenant])<<20 {
				t.Errorf("tenant %s has buckets of %d MiB in all and %d MiB reserved; its cap is %d MiB", tenant, sum>>20, r>>20, caps[tenant])
			}
		}
	}

	ok := map[string]int{}
	for _, o := range round([]string{"acme", "beta"}, func(i int) string { return fmt.Sprint("n", i) }) {
		switch {
		case o.resp.OK:
			ok[o.tenant]++
		case o.resp.Error == nil || o.resp.Error.Type != gatewayproto.ErrQuotaExceeded:
			t.Errorf("tenant %s: %+v, want ok or QuotaExceeded", o.tenant, o.resp.Error)
		}
	}
	for _, tenant := range []string{"acme", "beta"} {
		if ok[tenant] != caps[tenant] {
			t.Errorf("tenant %s with a cap of %d MiB made %d of %d buckets of 1 MiB", tenant, caps[tenant], ok[tenant], perTenant)
		}
	}
	check("acme", "beta")

	// Two dict names and two queue names per tenant, two or three jobs on
	// each. Omega's cap has room for every job's reservation, so the
	// creations that lose must give theirs back: it ends with exactly the
	// four buckets' 4 MiB reserved.
	for _, o := range round([]string{"gamma", "delta", "omega"}, func(i int) string { return fmt.Sprint("same", i%4) }) {
		if !o.resp.OK && (o.resp.Error == nil || o.resp.Error.Type != gatewayproto.ErrQuotaExceeded || o.tenant == "omega") {
			t.Errorf("tenant %s: %+v, want ok or QuotaExceeded", o.tenant, o.resp.Error)
		}
	}
	check("gamma", "delta", "omega")
	for _, tenant := range []string{"gamma", "delta"} {
		if sum, _ := heldBytes(t, js, tenant); sum == 0 {
			t.Errorf("tenant %s made nothing", tenant)
		}
	}
	if sum, n := heldBytes(t, js, "omega"); n != 4 || sum != 4<<20 {
		t.Errorf("omega: %d buckets of %d MiB in all, want 4 of 1 MiB", n, sum>>20)
	}
}

// listenOn opens a socket on g bound to the job with key, its deadline a
// minute away, and returns its path.
func listenOn(t *testing.T, g *Gateway, key string, b Binding) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b.JobID, b.Deadline = key, time.Now().Add(time.Minute)
	path := filepath.Join(dir, "s.sock")
	ln, err := g.Listen(t.Context(), path, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return path
}
