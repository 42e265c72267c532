package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// The status service (docs/design.md §7, §10.3). A tenant's credential has
// no JetStream API, so it cannot read its own record or count its jobs; it
// asks on brig.status.<tenant>, and the dispatcher that takes the request
// (queue group CancelQueue) answers one StatusReply on the request's reply
// subject, which must be an inbox of that tenant (_INBOX.<tenant>.), as a
// replay's must (§6.1): one tenant never learns of another, and the
// dispatcher never publishes where a client names outside its inboxes.

// Bounds of the status service (docs/design.md §13.7).
const (
	// MaxStatusRequests bounds the status requests one dispatcher has in
	// hand. Each costs a few JetStream lookups; past the bound a request
	// is answered ErrBusy at once, so a flood of them costs a dispatcher a
	// fixed number of goroutines.
	MaxStatusRequests = 64
	// statusLookup bounds the lookups of one request.
	statusLookup = 5 * time.Second
)

// StatusReply answers a request on brig.status.<tenant>: the tenant's
// quotas (0: no limit) and how much of them it uses.
type StatusReply struct {
	Tenant       string `json:"tenant"`
	MaxRunning   int    `json:"max_running"`
	MaxQueued    int    `json:"max_queued"`
	MaxStorageMB int    `json:"max_storage_mb"`
	// Queued counts the tenant's jobs accepted and not yet ended, running
	// ones included: the markers in its stream BRIG_ACTIVE_<tenant>, which
	// max_queued bounds (§10.3).
	Queued uint64 `json:"queued"`
	// Running counts the tenant's jobs routed and not yet ended: the
	// markers of max_running in its stream BRIG_RUNNING_<tenant> (running.go),
	// which a tenant without max_running has not (0, omitted).
	Running uint64 `json:"running,omitempty"`
	// Error says why there is no status: ErrBusy, the tenant has no
	// record (ErrorType schema.ErrNotFound), or brig failed (ErrorType
	// schema.ErrInfrastructure).
	Error     string           `json:"error,omitempty"`
	ErrorType schema.ErrorType `json:"error_type,omitempty"`
}

// statusService returns the handler of brig.status.*, with its own bound
// of MaxStatusRequests in hand.
func (d *Dispatcher) statusService() nats.MsgHandler {
	return d.statusHandler(make(chan struct{}, MaxStatusRequests))
}

// statusHandler answers status requests, each holding a place in inHand
// while it looks; with inHand full it answers ErrBusy.
func (d *Dispatcher) statusHandler(inHand chan struct{}) nats.MsgHandler {
	return tenantService[StatusReply]{
		name: "status", prefix: schema.StatusPrefix, inHand: inHand, budget: statusLookup,
		busy: func(tenant string) StatusReply { return StatusReply{Tenant: tenant, Error: ErrBusy} },
		serve: func(ctx context.Context, tenant string, _ []byte) StatusReply {
			return d.tenantStatus(ctx, tenant)
		},
		answer: d.answerStatus,
	}.handler(d)
}

// tenantStatus reads tenant's record and counts its jobs.
func (d *Dispatcher) tenantStatus(ctx context.Context, tenant string) StatusReply {
	r := StatusReply{Tenant: tenant}
	rec, err := bus.GetTenant(ctx, d.tenantKV, tenant)
	if errors.Is(err, bus.ErrNoTenant) {
		r.Error, r.ErrorType = fmt.Sprintf("tenant %s does not exist", tenant), schema.ErrNotFound
		return r
	}
	if err == nil {
		r.MaxRunning, r.MaxQueued, r.MaxStorageMB = rec.MaxRunning, rec.MaxQueued, rec.MaxStorageMB
		r.Queued, err = d.streamMsgs(ctx, schema.ActiveStream(tenant))
	}
	if err == nil {
		r.Running, err = d.streamMsgs(ctx, bus.RunningStream(tenant))
	}
	if err != nil {
		d.log.Warn("answer a status request", "tenant", tenant, "err", err)
		return StatusReply{Tenant: tenant, Error: headerText("read the tenant's status: " + err.Error()), ErrorType: schema.ErrInfrastructure}
	}
	return r
}

// streamMsgs counts the messages of a stream; one that does not exist has
// none.
func (d *Dispatcher) streamMsgs(ctx context.Context, name string) (uint64, error) {
	s, err := d.js.Stream(ctx, name)
	if isStreamNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	return s.CachedInfo().State.Msgs, nil
}

func (d *Dispatcher) answerStatus(reply string, r StatusReply) {
	data, _ := json.Marshal(r)
	if err := d.cfg.Conn.Publish(reply, data); err != nil {
		d.log.Warn("answer a status request", "reply", reply, "err", err)
	}
}
