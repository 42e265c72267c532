package bus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

func TestTenantRecords(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	ctx := t.Context()
	kv, err := bus.OpenTenants(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.OpenTenants(ctx, js, 1); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := bus.GetTenant(ctx, kv, "acme"); !errors.Is(err, bus.ErrNoTenant) {
		t.Fatalf("missing tenant: %v, want ErrNoTenant", err)
	}
	if _, err := bus.GetTenant(ctx, kv, "Not.A.Tenant"); !errors.Is(err, bus.ErrNoTenant) {
		t.Fatalf("invalid name: %v, want ErrNoTenant", err)
	}
	if err := bus.PutTenant(ctx, kv, schema.Tenant{Name: "acme", MaxQueued: 3, Users: []string{"U" + strings.Repeat("A", 55)}}); err != nil {
		t.Fatal(err)
	}
	got, err := bus.GetTenant(ctx, kv, "acme")
	if err != nil || got.Name != "acme" || got.MaxQueued != 3 || len(got.Users) != 1 {
		t.Fatalf("GetTenant = %+v, %v", got, err)
	}
	if _, err := kv.Put(ctx, "broken", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.GetTenant(ctx, kv, "broken"); err == nil || errors.Is(err, bus.ErrNoTenant) {
		t.Errorf("undecodable record: %v, want an error that is not ErrNoTenant", err)
	}
}

// A tenant's active-job stream holds at most max_queued markers and
// refuses the next one with "maximum messages exceeded"; no limit is -1.
func TestActiveStream(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	ctx := t.Context()
	if c := bus.ActiveConfig("acme", 0, 0); c.MaxMsgs != -1 || c.Replicas != 1 || c.Discard != jetstream.DiscardNew {
		t.Errorf("no limit: %+v", c)
	}
	if _, err := js.CreateOrUpdateStream(ctx, bus.ActiveConfig("acme", 2, 1)); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"a", "b", "c"} {
		_, err := js.Publish(ctx, schema.ActiveSubject(schema.JobKey("acme", id)), nil)
		switch {
		case i < 2 && err != nil:
			t.Fatal(err)
		case i == 2 && !bus.IsMaxMessages(err):
			t.Errorf("third marker in a stream of 2: %v; want maximum messages exceeded", err)
		}
	}
	if bus.IsMaxMessages(errors.New("maximum messages exceeded")) {
		t.Error("IsMaxMessages matched an error that is not JetStream's")
	}
	// Another tenant's subjects are not the stream's.
	if _, err := js.Publish(ctx, schema.ActiveSubject(schema.JobKey("other", "a")), nil); err == nil {
		t.Error("a marker of another tenant was stored")
	}
}
