package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// A tenant's max_storage_mb (docs/design.md §10.3, §13.5) bounds the sum
// of the MaxBytes of its dicts and queues: what they may hold, not what
// they hold now. Each gateway reserves a new dict's or queue's MaxBytes in
// the ledger bus.StorageBucket (key = tenant) by compare-and-swap before
// it creates the bucket or stream, and gives the reservation back when
// the creation fails or another job's creation of the same name won. So
// however many workers create at once, the buckets that exist never sum
// past the cap: each holds exactly one reservation, and a reservation
// past the cap is never written. A bucket that exists costs nothing.
// brig never deletes a dict or queue, so reservations are never given
// back otherwise. Where an outcome is unknown (a ledger write or a
// creation timed out) the bytes stay counted: a creation keeps its
// reservation unless its bucket is seen not to exist or to be another
// job's. So the ledger may count too much, never too little.
//
// Two creations of one name both reserve until one loses; while they do, a
// creation of another name may be refused although the cap would have had
// room a moment later. The refused job sees QuotaExceeded and may retry.

// TenantTTL is how long a gateway uses a tenant's record before it reads
// it again: a new max_storage_mb applies within it (docs/design.md §13.5).
const TenantTTL = 5 * time.Second

// storage keeps the tenants' storage caps and their ledger.
type storage struct {
	js       jetstream.JetStream
	replicas int
	log      *slog.Logger

	mu      sync.Mutex
	tenants jetstream.KeyValue // schema.TenantsBucket, once it exists
	ledger  jetstream.KeyValue // bus.StorageBucket, once opened
	// caps are the tenants' max_storage_mb in bytes, read at most every
	// TenantTTL; one entry per tenant this worker has created for.
	caps map[string]tenantCap
}

type tenantCap struct {
	bytes  int64 // 0: no limit
	readAt time.Time
}

func newStorage(js jetstream.JetStream, replicas int, log *slog.Logger) *storage {
	return &storage{js: js, replicas: replicas, log: log, caps: map[string]tenantCap{}}
}

// limit is tenant's max_storage_mb in bytes; 0 (no limit) for a tenant
// without a record, or with no limit in it.
// noTenant is limit's answer for a tenant with no record in a bus that has
// tenant records.
const noTenant = -1

func (st *storage) limit(ctx context.Context, tenant string) (int64, error) {
	st.mu.Lock()
	c, ok := st.caps[tenant]
	st.mu.Unlock()
	if ok && time.Since(c.readAt) < TenantTTL {
		return c.bytes, nil
	}
	kv, err := st.tenantsBucket(ctx)
	if err != nil {
		return 0, err
	}
	var limit int64
	if kv != nil {
		rec, err := bus.GetTenant(ctx, kv, tenant)
		switch {
		case errors.Is(err, bus.ErrNoTenant):
			// Removed while its job ran (brig tenant rm): its jobs make
			// nothing more, rather than make it with no cap at all.
			limit = noTenant
		case err != nil:
			return 0, err
		default:
			limit = int64(max(rec.MaxStorageMB, 0)) << 20
		}
	}
	st.mu.Lock()
	st.caps[tenant] = tenantCap{bytes: limit, readAt: time.Now()}
	st.mu.Unlock()
	return limit, nil
}

// tenantsBucket opens the tenant records; nil, nil while no role has made
// the bucket (then no tenant has a record).
func (st *storage) tenantsBucket(ctx context.Context) (jetstream.KeyValue, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tenants != nil {
		return st.tenants, nil
	}
	kv, err := st.js.KeyValue(ctx, schema.TenantsBucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("open bucket %s: %w", schema.TenantsBucket, err)
	}
	st.tenants = kv
	return kv, nil
}

func (st *storage) ledgerBucket(ctx context.Context) (jetstream.KeyValue, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ledger == nil {
		kv, err := bus.OpenStorage(ctx, st.js, st.replicas)
		if err != nil {
			return nil, err
		}
		st.ledger = kv
	}
	return st.ledger, nil
}

// release gives back a reservation; ctx bounds it.
type release func(ctx context.Context)

func noRelease(context.Context) {}

// reserve takes bytes of tenant's max_storage_mb for what (a dict or
// queue, for the refusal's message) before it is created. Past the cap it
// is a quotaError naming the tenant's cap. The caller releases the
// reservation if the creation fails.
func (st *storage) reserve(ctx context.Context, tenant, what string, bytes int64) (release, error) {
	limit, err := st.limit(ctx, tenant)
	switch {
	case err != nil || limit == 0:
		return noRelease, err
	case limit == noTenant:
		return nil, quotaErr("cannot create %s: tenant %s has no record (removed?); its jobs create no dicts or queues", what, tenant)
	}
	kv, err := st.ledgerBucket(ctx)
	if err != nil {
		return nil, err
	}
	err = st.swap(ctx, kv, tenant, func(reserved int64) (int64, error) {
		if reserved+bytes > limit {
			return 0, quotaErr("cannot create %s of %d MiB: tenant %s's dicts and queues may hold at most %d MiB; %d MiB reserved (max_storage_mb)",
				what, bytes>>20, tenant, limit>>20, reserved>>20)
		}
		return reserved + bytes, nil
	})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) {
		if err := st.swap(ctx, kv, tenant, func(reserved int64) (int64, error) { return max(reserved-bytes, 0), nil }); err != nil {
			st.log.Warn("give back a tenant's storage reservation; it stays counted", "tenant", tenant, "resource", what, "bytes", bytes, "err", err)
		}
	}, nil
}

// swap replaces tenant's reserved bytes with next(reserved), by
// compare-and-swap: a conflict (another gateway wrote first) reads again;
// any other failure ends it, since the write may or may not have been
// stored and doing it twice would count it twice.
func (st *storage) swap(ctx context.Context, kv jetstream.KeyValue, tenant string, next func(int64) (int64, error)) error {
	for {
		reserved, rev, err := bus.Reserved(ctx, kv, tenant)
		if err != nil {
			return err
		}
		n, err := next(reserved)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, tenant, bus.EncodeReserved(n))
		} else {
			_, err = kv.Update(ctx, tenant, bus.EncodeReserved(n), rev)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			if ctx.Err() != nil {
				return ctx.Err()
			}
		default:
			return fmt.Errorf("update the storage reserved for tenant %s: %w", tenant, err)
		}
	}
}

// creation is the description of one attempt to create a stream: unique,
// so that of two attempts with otherwise equal configs only one succeeds
// (JetStream takes a create equal to an existing stream as done), and so
// that an attempt whose outcome is unknown can tell whether the stream is
// its own.
func creation(kind, name, job string) string {
	return fmt.Sprintf("brig %s %s, created by job %s (%s)", kind, name, job, nuid.Next())
}

// settle gives back the reservation of a stream whose creation failed,
// unless the stream is there with this attempt's description (the request
// timed out after the server made it), or cannot be looked up: then it
// stays counted.
func (st *storage) settle(ctx context.Context, stream, desc string, rel release) {
	s, err := st.js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		rel(ctx)
	case err == nil && s.CachedInfo().Config.Description != desc:
		rel(ctx) // another job's creation won
	case err != nil:
		st.log.Warn("look up a stream whose creation failed; its storage reservation stays counted", "stream", stream, "err", err)
	}
}
