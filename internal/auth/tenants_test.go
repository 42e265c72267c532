package auth_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

func TestTenants(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	tenants, err := auth.OpenTenants(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenants.Get(ctx, "acme"); !errors.Is(err, auth.ErrNoTenant) {
		t.Fatalf("Get of a missing tenant: %v, want ErrNoTenant", err)
	}
	rec, existed, err := tenants.Update(ctx, "acme", func(rec *schema.Tenant, exists bool) error {
		rec.MaxQueued = 10
		return nil
	})
	if err != nil || existed || rec.Name != "acme" || rec.MaxQueued != 10 {
		t.Fatalf("Update of a new tenant = %+v, %v, %v", rec, existed, err)
	}
	// Concurrent updates all land.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, existed, err := tenants.Update(ctx, "acme", func(rec *schema.Tenant, exists bool) error {
				rec.Users = append(rec.Users, fmt.Sprintf("U%055d", i))
				return nil
			})
			if err != nil || !existed {
				t.Errorf("concurrent Update: %v, existed %v", err, existed)
			}
		})
	}
	wg.Wait()
	if rec, err = tenants.Get(ctx, "acme"); err != nil || len(rec.Users) != 8 || rec.MaxQueued != 10 {
		t.Fatalf("after concurrent updates: %+v, %v; want 8 users and max_queued 10", rec, err)
	}
	if _, _, err := tenants.Update(ctx, "Bad.Name", func(*schema.Tenant, bool) error { return nil }); err == nil {
		t.Error("Update of an invalid name gave no error")
	}
	if _, _, err := tenants.Update(ctx, "beta", func(*schema.Tenant, bool) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if recs, err := tenants.List(ctx); err != nil || len(recs) != 2 || recs[0].Name != "acme" || recs[1].Name != "beta" {
		t.Fatalf("List = %+v, %v", recs, err)
	}
	if rec, err := tenants.Delete(ctx, "acme"); err != nil || len(rec.Users) != 8 {
		t.Fatalf("Delete = %+v, %v; want the record with its users", rec, err)
	}
	if _, err := tenants.Delete(ctx, "acme"); !errors.Is(err, auth.ErrNoTenant) {
		t.Errorf("second Delete: %v, want ErrNoTenant", err)
	}
	if recs, err := tenants.List(ctx); err != nil || len(recs) != 1 {
		t.Errorf("List after Delete = %+v, %v", recs, err)
	}
}
