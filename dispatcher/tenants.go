package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// Tenants (docs/design.md §10.3). The tenant of a submission is the tenant
// token of its subject, which the bus lets only that tenant's credentials
// publish; its record in schema.TenantsBucket says that it exists and what
// its quotas are. max_queued is kept by JetStream itself: each job accepted
// and not yet ended holds one marker in the tenant's stream
// BRIG_ACTIVE_<tenant>, whose MaxMsgs is max_queued and which discards new
// messages, so of submissions racing across dispatchers exactly as many
// are accepted as there is room. internal/events purges a job's marker
// when its terminal event is stored.

// tenantTTL is how long a dispatcher uses a tenant record before it reads
// it again: a new max_queued applies within it.
const tenantTTL = 5 * time.Second

// tenantEntry is a cached tenant record and the max_queued its active
// stream was last set to.
type tenantEntry struct {
	rec    *schema.Tenant
	readAt time.Time
	// streams holds, by name, the MaxMsgs this dispatcher set each of the
	// tenant's streams to (BRIG_ACTIVE_<t> for max_queued, BRIG_RUNNING_<t>
	// for max_running), so that a stream is created or updated once per
	// limit, not per job.
	streams map[string]int64
}

// tenantCache holds the records of the tenants this dispatcher has seen.
type tenantCache struct {
	mu sync.Mutex
	m  map[string]*tenantEntry
}

// tenant returns the record of a tenant, read at most every tenantTTL; a
// tenant without one is a *rejection (NotFound). A tenant without a record
// is not cached: it may be added at any moment.
func (d *Dispatcher) tenant(ctx context.Context, job *schema.Job, tenant string) (*schema.Tenant, error) {
	d.tenants.mu.Lock()
	e := d.tenants.m[tenant]
	if e != nil && time.Since(e.readAt) < d.cfg.tenantTTL {
		rec := e.rec
		d.tenants.mu.Unlock()
		return rec, nil
	}
	d.tenants.mu.Unlock()
	rec, err := bus.GetTenant(ctx, d.tenantKV, tenant)
	if errors.Is(err, bus.ErrNoTenant) {
		d.tenants.mu.Lock()
		delete(d.tenants.m, tenant)
		d.tenants.mu.Unlock()
		return nil, invalid(job, schema.ErrNotFound, "tenant %s does not exist", tenant)
	}
	if err != nil {
		return nil, err
	}
	d.tenants.mu.Lock()
	if d.tenants.m == nil {
		d.tenants.m = map[string]*tenantEntry{}
	}
	if e = d.tenants.m[tenant]; e == nil {
		e = &tenantEntry{}
		d.tenants.m[tenant] = e
	}
	e.rec, e.readAt = rec, time.Now()
	d.tenants.mu.Unlock()
	return rec, nil
}

// ensureActive creates the tenant's active stream, or sets its MaxMsgs to
// the record's max_queued, when this dispatcher has not yet done so for
// that value. Lowering the limit below what the stream holds drops no
// marker: the stream refuses new ones until enough jobs end.
func (d *Dispatcher) ensureActive(ctx context.Context, rec *schema.Tenant) error {
	return d.ensureStream(ctx, rec.Name, bus.ActiveConfig(rec.Name, rec.MaxQueued, d.cfg.Streams.WithDefaults().Replicas))
}

// ensureStream creates or updates one of tenant's streams to cfg, once for
// each MaxMsgs this dispatcher sees.
func (d *Dispatcher) ensureStream(ctx context.Context, tenant string, cfg jetstream.StreamConfig) error {
	d.tenants.mu.Lock()
	e := d.tenants.m[tenant]
	set, ok := int64(0), false
	if e != nil {
		set, ok = e.streams[cfg.Name]
	}
	d.tenants.mu.Unlock()
	if ok && set == cfg.MaxMsgs {
		return nil
	}
	if _, err := d.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	d.tenants.mu.Lock()
	if e := d.tenants.m[tenant]; e != nil {
		if e.streams == nil {
			e.streams = map[string]int64{}
		}
		e.streams[cfg.Name] = cfg.MaxMsgs
	}
	d.tenants.mu.Unlock()
	return nil
}

// forgetStream makes the next ensureStream of a tenant's stream set it up
// again: it was removed under us (an admin's cleanup).
func (d *Dispatcher) forgetStream(tenant, name string) {
	d.tenants.mu.Lock()
	if e := d.tenants.m[tenant]; e != nil {
		delete(e.streams, name)
	}
	d.tenants.mu.Unlock()
}

// hold takes the job's place in its tenant's max_queued: a marker on
// brig.active.<key> (Nats-Msg-Id the key, so a redelivery takes no second
// place). A full stream is a *rejection (QuotaExceeded). fresh reports
// that the marker was stored now (not a duplicate).
func (d *Dispatcher) hold(ctx context.Context, job *schema.Job, rec *schema.Tenant, key string) (fresh bool, err error) {
	if err := d.ensureActive(ctx, rec); err != nil {
		return false, err
	}
	msg := &nats.Msg{Subject: schema.ActiveSubject(key), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, key)
	ack, err := d.js.PublishMsg(ctx, msg)
	switch {
	case bus.IsMaxMessages(err):
		return false, invalid(job, schema.ErrQuotaExceeded, "tenant %s has %d jobs queued or running, its max-queued", rec.Name, rec.MaxQueued)
	case errors.Is(err, jetstream.ErrNoStreamResponse), isStreamNotFound(err):
		d.forgetStream(rec.Name, schema.ActiveStream(rec.Name))
		return false, fmt.Errorf("hold a place for job %s: %w", key, err)
	case err != nil:
		return false, fmt.Errorf("hold a place for job %s: %w", key, err)
	}
	return !ack.Duplicate, nil
}

// unhold gives back a place taken for a submission that turned out to be a
// duplicate, when the job of its key has ended (so the marker is no one's).
func (d *Dispatcher) unhold(ctx context.Context, key string) {
	if ended, err := d.events.Terminal(ctx, key); err != nil || ended == nil {
		return
	}
	tenant, _, _ := schema.SplitJobKey(key)
	stream, err := d.js.Stream(ctx, schema.ActiveStream(tenant))
	if err == nil {
		err = stream.Purge(ctx, jetstream.WithPurgeSubject(schema.ActiveSubject(key)))
	}
	if err != nil {
		d.log.Warn("give back a duplicate submission's place in max_queued", "job", key, "err", err)
	}
}

func isStreamNotFound(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound
}
