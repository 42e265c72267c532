package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/brig-dev/brig/schema"
)

// Resolver looks a function up in the store, the tenant's own then the
// global one, then in Fallback (a dispatcher's built-ins). Each call reads the bucket, so a deploy or a
// delete applies to the next call.
type Resolver struct {
	// Store holds the deployed definitions; nil resolves Fallback only.
	Store *Store
	// Fallback returns a definition the store does not have; nil means
	// none.
	Fallback func(name string) (*schema.Function, bool)
}

// Resolve resolves name for no tenant in particular: the global
// definition, then Fallback (ResolveFor with tenant "").
func (r Resolver) Resolve(ctx context.Context, name string) (*schema.Function, error) {
	return r.ResolveFor(ctx, "", name)
}

// ResolveFor returns the definition of name for a job of tenant
// (docs/design.md §10.3): the tenant's own (<tenant>.<name>), else the
// global one (<name>), else Fallback's; or an error wrapping ErrNotFound
// when none has one. A stored definition that is invalid is an
// *InvalidStoredError (ErrInvalidStored), permanent, and nothing after it
// is asked: a broken deployed python must not turn into the global or
// built-in one, whose scopes may be wider. Other errors are the
// platform's and worth retrying. The definition's name is the bare name.
func (r Resolver) ResolveFor(ctx context.Context, tenant, name string) (*schema.Function, error) {
	if r.Store != nil {
		tenants := []string{""}
		if tenant != "" {
			tenants = []string{tenant, ""}
		}
		for _, t := range tenants {
			fn, err := r.Store.GetFor(ctx, t, name)
			if err == nil {
				return fn, nil
			}
			if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
	}
	if r.Fallback != nil {
		if fn, ok := r.Fallback(name); ok {
			return fn, nil
		}
	}
	return nil, fmt.Errorf("function %q: %w", name, ErrNotFound)
}
