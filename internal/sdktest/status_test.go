package sdktest

import (
	"errors"
	"testing"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// Status answers the client's own tenant's quotas and use; a tenant
// without a record is ErrNoTenant.
func TestStatus(t *testing.T) {
	t.Parallel()
	f, nc := startFake(t)
	f.addTenant(schema.Tenant{Name: "acme", MaxRunning: 1, MaxQueued: 7, MaxStorageMB: 64})
	c, err := sdk.New(nc, sdk.WithTenant("acme"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.Submit(t.Context(), schema.Job{ID: "st-1", Function: "python", Code: "print(1)"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	f.next() // routed: it holds a place in max_queued and one in max_running
	got, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := sdk.TenantStatus{Tenant: "acme", MaxRunning: 1, MaxQueued: 7, MaxStorageMB: 64, Queued: 1, Running: 1}
	if *got != want {
		t.Errorf("status %+v, want %+v", *got, want)
	}

	ghost, err := sdk.New(nc, sdk.WithTenant("ghost"))
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()
	if _, err := ghost.Status(t.Context()); !errors.Is(err, sdk.ErrNoTenant) {
		t.Errorf("status of a tenant without a record: %v, want ErrNoTenant", err)
	}
}
