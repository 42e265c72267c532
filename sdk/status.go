package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/brig-dev/brig/schema"
)

// Errors of Status.
var (
	// ErrNoTenant: the client's tenant has no record; brig refuses its
	// jobs.
	ErrNoTenant = errors.New("tenant does not exist")
	// ErrBusy: the dispatcher that took the request had too many in hand;
	// ask again later.
	ErrBusy = errors.New("brig busy")
)

// TenantStatus is a tenant's quotas (0: no limit) and how much of them it
// uses (docs/design.md §10.3).
type TenantStatus struct {
	Tenant       string `json:"tenant"`
	MaxRunning   int    `json:"max_running"`
	MaxQueued    int    `json:"max_queued"`
	MaxStorageMB int    `json:"max_storage_mb"`
	// Queued counts the tenant's jobs accepted and not yet ended, running
	// ones included: what MaxQueued bounds.
	Queued uint64 `json:"queued"`
	// Running counts the tenant's running jobs where brig keeps that count
	// (0 where it does not yet).
	Running uint64 `json:"running"`
}

// Status returns the client's tenant's quotas and use. A tenant's
// credential has no JetStream API, so the dispatchers answer it (one
// request on brig.status.<tenant>, answered on an inbox of the tenant);
// it waits for the answer until ctx ends. A tenant without a record is an
// error matching ErrNoTenant; a dispatcher with too many requests in hand
// answers ErrBusy.
func (c *Client) Status(ctx context.Context) (*TenantStatus, error) {
	msg, err := c.request(ctx, schema.StatusSubject(c.tenant), nil)
	if err != nil {
		return nil, fmt.Errorf("sdk: status of tenant %s: %w", c.tenant, err)
	}
	var r struct {
		TenantStatus
		Error     string           `json:"error"`
		ErrorType schema.ErrorType `json:"error_type"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("sdk: status of tenant %s: bad answer: %w", c.tenant, err)
	}
	switch {
	case r.ErrorType == schema.ErrNotFound:
		return nil, fmt.Errorf("sdk: status of tenant %s: %s: %w", c.tenant, r.Error, ErrNoTenant)
	case r.Error == schema.BusyAnswer:
		return nil, fmt.Errorf("sdk: status of tenant %s: %w", c.tenant, ErrBusy)
	case r.Error != "":
		return nil, fmt.Errorf("sdk: status of tenant %s: %s", c.tenant, r.Error)
	}
	return &r.TenantStatus, nil
}
