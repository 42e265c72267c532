package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// Tenant records (docs/design.md §10.3) live in the KV bucket
// schema.TenantsBucket, one JSON schema.Tenant per name. Admin credentials
// write them (brig tenant, brig dev); dispatchers read them.

// ErrNoTenant is returned for a tenant without a record (bus.ErrNoTenant).
var ErrNoTenant = bus.ErrNoTenant

// Tenants reads and writes tenant records.
type Tenants struct {
	kv jetstream.KeyValue
}

// OpenTenants returns the tenant records, in the bucket bus.TenantsConfig
// describes. replicas <= 0 uses the bucket as it is when it exists (so an
// admin command never changes a cluster's replication) and creates it with
// one replica when it does not, as functions.Open.
func OpenTenants(ctx context.Context, js jetstream.JetStream, replicas int) (*Tenants, error) {
	if replicas <= 0 {
		kv, err := js.KeyValue(ctx, schema.TenantsBucket)
		if err == nil {
			return &Tenants{kv: kv}, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("open bucket %s: %w", schema.TenantsBucket, err)
		}
	}
	kv, err := bus.OpenTenants(ctx, js, replicas)
	if err != nil {
		return nil, err
	}
	return &Tenants{kv: kv}, nil
}

// ExistingTenants returns the tenant records without creating the bucket:
// an error wrapping ErrNoTenant when there is none (no tenant was ever
// added).
func ExistingTenants(ctx context.Context, js jetstream.JetStream) (*Tenants, error) {
	kv, err := js.KeyValue(ctx, schema.TenantsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("no bucket %s: %w", schema.TenantsBucket, ErrNoTenant)
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", schema.TenantsBucket, err)
	}
	return &Tenants{kv: kv}, nil
}

// Get returns the record of tenant name, or an error wrapping ErrNoTenant.
func (t *Tenants) Get(ctx context.Context, name string) (schema.Tenant, error) {
	rec, _, err := t.get(ctx, name)
	return rec, err
}

func (t *Tenants) get(ctx context.Context, name string) (schema.Tenant, uint64, error) {
	if !schema.ValidTenant(name) {
		return schema.Tenant{}, 0, fmt.Errorf("tenant %q: %w", name, ErrNoTenant)
	}
	entry, err := t.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return schema.Tenant{}, 0, fmt.Errorf("tenant %q: %w", name, ErrNoTenant)
	}
	if err != nil {
		return schema.Tenant{}, 0, fmt.Errorf("get tenant %q: %w", name, err)
	}
	rec, err := decodeTenant(entry)
	return rec, entry.Revision(), err
}

func decodeTenant(entry jetstream.KeyValueEntry) (schema.Tenant, error) {
	rec, err := schema.DecodeTenant(entry.Key(), entry.Value())
	if err != nil {
		return rec, fmt.Errorf("stored record (revision %d): %w", entry.Revision(), err)
	}
	return rec, nil
}

// List returns every tenant's record, sorted by name.
func (t *Tenants) List(ctx context.Context) ([]schema.Tenant, error) {
	return bus.ListKV(ctx, t.kv, ">", decodeTenant, func(r schema.Tenant) string { return r.Name })
}

// Update applies edit to tenant name's record (exists false: a zero
// record named name) and stores it, retrying when another writer changed
// the record meanwhile, so concurrent updates all take effect. It returns
// the stored record and whether the tenant existed before.
func (t *Tenants) Update(ctx context.Context, name string, edit func(rec *schema.Tenant, exists bool) error) (_ schema.Tenant, existed bool, _ error) {
	if !schema.ValidTenant(name) {
		return schema.Tenant{}, false, fmt.Errorf("invalid tenant name %q (1-%d of a-z, 0-9 and -, starting with a letter)", name, schema.MaxTenantLen)
	}
	for {
		rec, rev, err := t.get(ctx, name)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNoTenant) {
			return schema.Tenant{}, false, err
		}
		if !exists {
			rec = schema.Tenant{Name: name}
		}
		if err := edit(&rec, exists); err != nil {
			return schema.Tenant{}, exists, err
		}
		rec.Name = name
		data, err := json.Marshal(rec)
		if err != nil {
			return schema.Tenant{}, exists, err
		}
		if exists {
			_, err = t.kv.Update(ctx, name, data, rev)
		} else {
			_, err = t.kv.Create(ctx, name, data)
		}
		if err == nil {
			return rec, exists, nil
		}
		if !isWrongRevision(err) {
			return schema.Tenant{}, exists, fmt.Errorf("store tenant %q: %w", name, err)
		}
		if ctx.Err() != nil {
			return schema.Tenant{}, exists, ctx.Err()
		}
	}
}

// isWrongRevision reports whether a KV update lost a race with another
// writer.
func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Delete removes tenant name's record and returns it (its users are the
// keys to revoke), or an error wrapping ErrNoTenant.
func (t *Tenants) Delete(ctx context.Context, name string) (schema.Tenant, error) {
	for {
		rec, rev, err := t.get(ctx, name)
		if err != nil {
			return rec, err
		}
		err = t.kv.Delete(ctx, name, jetstream.LastRevision(rev))
		if err == nil {
			return rec, nil
		}
		if !isWrongRevision(err) || ctx.Err() != nil {
			return rec, fmt.Errorf("delete tenant %q: %w", name, err)
		}
	}
}
