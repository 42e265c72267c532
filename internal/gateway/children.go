package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// errStopped fails the calls of a stopped gateway.
var errStopped = errors.New("the worker's gateway is stopping")

// children runs child jobs (function.call) through one SDK client per
// tenant on the gateway's connection: a child is submitted on
// brig.submit.<tenant>.<fn> under the key <tenant>.<id>, followed on the
// tenant's inbox (_INBOX.<tenant>.…) and replays, and cancelled on
// brig.cancel.<tenant>.<id>, so that it is its tenant's job like any other
// (docs/design.md §4.3). The clients live until Gateway.Stop; a tenant's
// costs one inbox subscription.
type children struct {
	nc      *nats.Conn
	log     *slog.Logger
	mu      sync.Mutex
	clients map[string]*sdk.Client
	stopped bool
}

func newChildren(nc *nats.Conn, log *slog.Logger) *children {
	return &children{nc: nc, log: log, clients: map[string]*sdk.Client{}}
}

// client returns tenant's client, made on first use.
func (c *children) client(tenant string) (*sdk.Client, error) {
	if !schema.ValidTenant(tenant) { // never: sessions take it from a verified key
		return nil, fmt.Errorf("invalid tenant %q", tenant)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errStopped
	}
	if cl := c.clients[tenant]; cl != nil {
		return cl, nil
	}
	cl, err := sdk.New(c.nc, sdk.WithTenant(tenant), sdk.WithLogger(c.log.With("tenant", tenant)))
	if err != nil {
		return nil, fmt.Errorf("client of tenant %s: %w", tenant, err)
	}
	c.clients[tenant] = cl
	return cl, nil
}

// run is a Caller. RunNew refuses a key brig has seen before rather than
// answer with that job's events; the child's id is new and unguessable.
func (c *children) run(ctx context.Context, tenant string, job schema.Job) (*schema.Event, error) {
	cl, err := c.client(tenant)
	if err != nil {
		return nil, err
	}
	return cl.RunNew(ctx, job)
}

// cancel is a Canceller.
func (c *children) cancel(ctx context.Context, tenant, jobID string) error {
	cl, err := c.client(tenant)
	if err != nil {
		return err
	}
	_, err = cl.Cancel(ctx, jobID)
	return err
}

// close closes every client; a call after it fails. Safe to call twice.
func (c *children) close() {
	c.mu.Lock()
	c.stopped = true
	clients := c.clients
	c.clients = map[string]*sdk.Client{}
	c.mu.Unlock()
	for _, cl := range clients {
		cl.Close()
	}
}
