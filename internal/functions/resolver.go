package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/brig-dev/brig/schema"
)

// Resolver looks a function up in the store, then in Fallback (a
// dispatcher's built-ins). Each call reads the bucket, so a deploy or a
// delete applies to the next call.
type Resolver struct {
	// Store holds the deployed definitions; nil resolves Fallback only.
	Store *Store
	// Fallback returns a definition the store does not have; nil means
	// none.
	Fallback func(name string) (*schema.Function, bool)
}

// Resolve returns the definition of name, or an error wrapping
// ErrNotFound when neither the store nor Fallback has one. A stored
// definition that is invalid is an *InvalidStoredError (ErrInvalidStored),
// permanent, and Fallback is not asked: a broken deployed python must not
// turn into the built-in one, whose scopes may be wider. Other errors are
// the platform's and worth retrying.
func (r Resolver) Resolve(ctx context.Context, name string) (*schema.Function, error) {
	if r.Store != nil {
		fn, err := r.Store.Get(ctx, name)
		if err == nil {
			return fn, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if r.Fallback != nil {
		if fn, ok := r.Fallback(name); ok {
			return fn, nil
		}
	}
	return nil, fmt.Errorf("function %q: %w", name, ErrNotFound)
}
