package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// TestTenantStorage: a tenant's max_storage_mb bounds what its dicts and
// queues may hold (docs/design.md §10.3, §13.5). A job of a tenant with 2
// MiB, running the tenant's own function whose dicts hold 1 MiB each,
// fills dicts a and b and is refused c with brig.QuotaExceeded, which it
// catches; a and b still take writes, c was never made, and the ledger
// holds the 2 MiB of a and b.
func TestTenantStorage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	u := newTenant(ctx, t, schema.Tenant{Name: "storage-" + randomHex(3), MaxStorageMB: 2})
	fn := schema.Python()
	fn.Name = newID("storage")
	fn.Quotas = schema.Quotas{DictMB: 1}
	deployFor(ctx, t, u.name, fn)

	job := scopedJob("storage", `import brig, json
out = {}
brig.Dict("a").put("k", "x" * (100 << 10))
brig.Dict("b").put("k", 1)
try:
    brig.Dict("c").put("k", 1)
    out["c"] = "created"
except brig.QuotaExceeded as e:
    out["c"] = {"type": e.type, "message": e.message, "brig": isinstance(e, brig.BrigError)}
brig.Dict("a").put("k2", 2)
out["a"] = brig.Dict("a").get("k2")
json.dump(out, open("/work/out/result.json", "w"))
`, "dict:a:write", "dict:a:read", "dict:b:write", "dict:c:write")
	job.Function = fn.Name
	ev, err := u.run(t, job)
	if err != nil || ev.Status != schema.StatusSucceeded {
		t.Fatalf("job: %v (%s)", err, brief(ev))
	}
	var out struct {
		C struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Brig    bool   `json:"brig"`
		} `json:"c"`
		A int `json:"a"`
	}
	probeOutput(t, ev, &out)
	if out.C.Type != string(schema.ErrQuotaExceeded) || !out.C.Brig ||
		!strings.Contains(out.C.Message, "tenant "+u.name+"'s dicts and queues may hold at most 2 MiB; 2 MiB reserved") {
		t.Errorf("dict c: %+v; want brig.QuotaExceeded naming the tenant's 2 MiB", out.C)
	}
	if out.A != 2 {
		t.Errorf("dict a after the refusal: %d, want 2", out.A)
	}

	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(ctx, bus.DictBucket(u.name, "c")); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("dict c: %v, want no bucket", err)
	}
	ledger, err := js.KeyValue(ctx, bus.StorageBucket)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := bus.Reserved(ctx, ledger, u.name); err != nil || n != 2<<20 {
		t.Errorf("reserved for tenant %s: %d bytes (%v), want 2 MiB", u.name, n, err)
	}
}
