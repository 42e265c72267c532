package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/brig-dev/brig/schema"
)

// The functions API (docs/design.md §3.1): a tenant lists and reads
// the functions its jobs resolve, and deploys and deletes its own. The
// dispatchers answer it on brig.functions.<tenant>, as they answer status.

// ErrForbidden: the request needs an admin (a field only an admin may set,
// a global or built-in function to change or delete).
var ErrForbidden = errors.New("Forbidden")

// Owners of a FunctionInfo (schema.FunctionOwner).
const (
	OwnerTenant  = schema.OwnerTenant  // the tenant's own: it may deploy and delete it
	OwnerGlobal  = schema.OwnerGlobal  // deployed by an admin for every tenant
	OwnerBuiltin = schema.OwnerBuiltin // brig's own (python, echo)
)

// FunctionInfo is one function as a tenant sees it: what its jobs of that
// name resolve to. It is the wire's (schema.FunctionInfo).
type FunctionInfo = schema.FunctionInfo

// FunctionError is a functions request brig refused or failed. It matches
// ErrNotFound, ErrForbidden, ErrBusy or ErrRejected (an invalid
// definition; Field names the field) with errors.Is.
type FunctionError struct {
	Type    schema.ErrorType
	Field   string
	Message string
}

func (e *FunctionError) Error() string {
	if e.Field != "" && !strings.HasPrefix(e.Message, e.Field+": ") {
		return fmt.Sprintf("%s: %s: %s", e.Type, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Type, e.Message)
}

// Is matches the sentinel of the error's type.
func (e *FunctionError) Is(target error) bool {
	switch e.Type {
	case schema.ErrNotFound:
		return target == ErrNotFound
	case schema.ErrForbidden:
		return target == ErrForbidden
	case schema.ErrBusy:
		return target == ErrBusy
	case schema.ErrInvalidFunction:
		return target == ErrRejected
	case schema.ErrInfrastructure:
		return target == ErrInfrastructure
	}
	return false
}

// Functions manages the client's tenant's functions.
type Functions struct{ c *Client }

// Functions returns the client's functions API.
func (c *Client) Functions() *Functions { return &Functions{c: c} }

// List returns every function the tenant's jobs resolve, sorted by name.
// A stored definition brig cannot use is left out; Get of its name says
// what is wrong.
func (f *Functions) List(ctx context.Context) ([]FunctionInfo, error) {
	r, err := f.ask(ctx, schema.FunctionsRequest{Op: schema.FunctionsList})
	if err != nil {
		return nil, fmt.Errorf("sdk: list functions of tenant %s: %w", f.c.tenant, err)
	}
	if r.Functions == nil {
		r.Functions = []FunctionInfo{}
	}
	return r.Functions, nil
}

// Get returns the function name resolves to for the tenant's jobs: the
// tenant's own, else the global one, else the built-in. None is a
// *FunctionError matching ErrNotFound.
func (f *Functions) Get(ctx context.Context, name string) (*FunctionInfo, error) {
	r, err := f.ask(ctx, schema.FunctionsRequest{Op: schema.FunctionsGet, Name: name})
	if err == nil && r.Function == nil {
		err = errors.New("bad answer: no function")
	}
	if err != nil {
		return nil, fmt.Errorf("sdk: get function %q: %w", name, err)
	}
	return r.Function, nil
}

// Deploy creates or replaces the tenant's own function fn.Name, which the
// tenant's jobs then resolve before a global or built-in one of that name.
// fn is validated here first; an invalid definition is a *FunctionError
// matching ErrRejected, naming the field, and nothing is sent. Fields only
// an admin may set (network, pool, runtime, quotas above the defaults, an
// image no built-in or global function uses) are refused, matching
// ErrForbidden (docs/design.md §3.1). An unchanged definition keeps its
// revision.
func (f *Functions) Deploy(ctx context.Context, fn schema.Function) (*FunctionInfo, error) {
	if err := fn.Validate(); err != nil {
		return nil, fmt.Errorf("sdk: deploy function %q: %w", fn.Name, invalidFunction(err))
	}
	data, err := schema.Marshal(fn)
	if err != nil {
		return nil, fmt.Errorf("sdk: deploy function %q: %w", fn.Name, err)
	}
	r, err := f.ask(ctx, schema.FunctionsRequest{Op: schema.FunctionsDeploy, Function: data})
	if err == nil && r.Function == nil {
		err = errors.New("bad answer: no function")
	}
	if err != nil {
		return nil, fmt.Errorf("sdk: deploy function %q: %w", fn.Name, err)
	}
	return r.Function, nil
}

// Delete removes the tenant's own function name; a global or built-in one
// of that name then applies to its jobs again. A global or built-in name
// is a *FunctionError matching ErrForbidden, none at all ErrNotFound.
func (f *Functions) Delete(ctx context.Context, name string) error {
	if _, err := f.ask(ctx, schema.FunctionsRequest{Op: schema.FunctionsDelete, Name: name}); err != nil {
		return fmt.Errorf("sdk: delete function %q: %w", name, err)
	}
	return nil
}
