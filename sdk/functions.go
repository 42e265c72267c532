package sdk

import (
	"context"
	"errors"
	"time"

	"github.com/brig-dev/brig/schema"
)

// The functions API (docs/design.md §3, §10.3): a tenant lists and reads
// the functions its jobs resolve, and deploys and deletes its own. The
// dispatchers answer it on brig.functions.<tenant>, as they answer status.

// ErrForbidden: the request needs an admin (a field only an admin may set,
// a global or built-in function to change or delete).
var ErrForbidden = errors.New("Forbidden")

// Owners of a FunctionInfo.
const (
	OwnerTenant  = "tenant"  // the tenant's own: it may deploy and delete it
	OwnerGlobal  = "global"  // deployed by an admin for every tenant
	OwnerBuiltin = "builtin" // brig's own (python, echo)
)

// FunctionInfo is one function as a tenant sees it: what its jobs of that
// name resolve to.
type FunctionInfo struct {
	Name string `json:"name"`
	// Owner is OwnerTenant, OwnerGlobal or OwnerBuiltin.
	Owner string `json:"owner"`
	// Revision and Updated are the stored definition's (zero for a
	// built-in); an unchanged deploy keeps both.
	Revision uint64          `json:"revision,omitempty"`
	Updated  time.Time       `json:"updated,omitzero"`
	Function schema.Function `json:"function"`
}

// FunctionError is a functions request brig refused or failed. It matches
// ErrNotFound, ErrForbidden, ErrBusy or ErrRejected (an invalid
// definition; Field names the field) with errors.Is.
type FunctionError struct {
	Type    schema.ErrorType
	Field   string
	Message string
}

// Functions manages the client's tenant's functions.
type Functions struct{ c *Client }

// Functions returns the client's functions API.
func (c *Client) Functions() *Functions { return &Functions{c: c} }

var errNotYet = errors.New("sdk: functions API not implemented yet")

// List returns every function the tenant's jobs resolve, sorted by name.
func (f *Functions) List(ctx context.Context) ([]FunctionInfo, error) { return nil, errNotYet }

// Get returns the function name resolves to for the tenant's jobs.
func (f *Functions) Get(ctx context.Context, name string) (*FunctionInfo, error) {
	return nil, errNotYet
}

// Deploy creates or replaces the tenant's own function fn.Name.
func (f *Functions) Deploy(ctx context.Context, fn schema.Function) (*FunctionInfo, error) {
	return nil, errNotYet
}

// Delete removes the tenant's own function name.
func (f *Functions) Delete(ctx context.Context, name string) error { return errNotYet }
