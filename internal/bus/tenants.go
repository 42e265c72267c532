package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Bounds of the tenants bucket (docs/design.md §10.3, §13.7).
const (
	// TenantsMaxMessages caps the tenant records (with history).
	TenantsMaxMessages = 100_000
	// TenantsMaxValueSize caps one record: its users' public keys are the
	// bulk of it.
	TenantsMaxValueSize = 256 << 10
	// TenantsHistory is how many revisions of a record the bucket keeps.
	TenantsHistory = 5
)

// TenantsConfig is the configuration of schema.TenantsBucket; whoever
// opens it first creates it.
func TenantsConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       schema.TenantsBucket,
		Description:  "brig tenants (brig tenant add)",
		History:      TenantsHistory,
		Replicas:     max(replicas, 1),
		Storage:      jetstream.FileStorage,
		MaxValueSize: TenantsMaxValueSize,
	}
}

// ErrNoTenant is returned by GetTenant for a tenant without a record.
var ErrNoTenant = errors.New("tenant does not exist")

// OpenTenants creates or updates the tenants bucket and returns it.
func OpenTenants(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := EnsureBucket(ctx, js, TenantsConfig(replicas), TenantsMaxMessages)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", schema.TenantsBucket, err)
	}
	return kv, nil
}

// GetTenant reads a tenant's record; a tenant without one (or with an
// invalid name) is ErrNoTenant. A record that does not decode is an error
// naming it.
func GetTenant(ctx context.Context, kv jetstream.KeyValue, name string) (*schema.Tenant, error) {
	if !schema.ValidTenant(name) {
		return nil, fmt.Errorf("tenant %q: %w", name, ErrNoTenant)
	}
	e, err := kv.Get(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, fmt.Errorf("tenant %q: %w", name, ErrNoTenant)
	case err != nil:
		return nil, fmt.Errorf("read tenant %q: %w", name, err)
	}
	t, err := schema.DecodeTenant(name, e.Value())
	if err != nil {
		return nil, fmt.Errorf("stored record (revision %d): %w", e.Revision(), err)
	}
	return &t, nil
}

// PutTenant stores a tenant's record (admin tools and tests).
func PutTenant(ctx context.Context, kv jetstream.KeyValue, t schema.Tenant) error {
	if !schema.ValidTenant(t.Name) {
		return fmt.Errorf("invalid tenant name %q", t.Name)
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, t.Name, data); err != nil {
		return fmt.Errorf("store tenant %q: %w", t.Name, err)
	}
	return nil
}

// ActiveMaxAge is the backstop of a tenant's active-job markers: a marker
// whose job's terminal event was stored without purging it (the purge is
// best effort) frees its place after this long.
const ActiveMaxAge = 24 * time.Hour

// ActiveConfig is the configuration of a tenant's active-job stream
// (docs/design.md §10.3): one marker per job accepted and not yet ended,
// at most maxQueued of them (0: no limit), refusing new ones when full.
func ActiveConfig(tenant string, maxQueued, replicas int) jetstream.StreamConfig {
	maxMsgs := int64(maxQueued)
	if maxMsgs <= 0 {
		maxMsgs = -1
	}
	return jetstream.StreamConfig{
		Name:        schema.ActiveStream(tenant),
		Description: "brig: jobs of tenant " + tenant + " accepted and not yet ended (max_queued)",
		Subjects:    []string{schema.ActivePrefix + tenant + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		MaxMsgs:     maxMsgs,
		MaxAge:      ActiveMaxAge,
		Discard:     jetstream.DiscardNew,
		Duplicates:  10 * time.Minute,
	}
}

// IsMaxMessages reports whether err is JetStream refusing a publish to a
// stream that holds its MaxMsgs ("maximum messages exceeded").
func IsMaxMessages(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum messages exceeded")
}
