package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Resolver looks up the definition of a function for a job of a tenant
// (docs/design.md §3, §10.3). A dispatcher branches on its error: one
// matching ErrNotFound rejects the job (NotFound), one matching
// ErrInvalidStored ends it at once, as brig's fault (Infrastructure); any
// other is the platform's, and the submission is retried.
type Resolver interface {
	Resolve(ctx context.Context, tenant, name string) (*schema.Function, error)
}

// KVResolver resolves the functions deployed with `brig deploy` (the
// Bucket), then the built-ins: for tenant T, the tenant's own T.name, then
// the global name, then the built-in (docs/design.md §3, §10.3); a
// deployed definition named python replaces the built-in one. Each call
// reads the bucket, so a deploy or a delete applies to the next job.
type KVResolver struct {
	// Store holds the deployed definitions; nil resolves the built-ins
	// only.
	Store *Store
}

// OpenKVResolver opens the function bucket on nc, creating it when it is
// missing, with replicas as in Open.
func OpenKVResolver(ctx context.Context, nc *nats.Conn, replicas int) (KVResolver, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return KVResolver{}, fmt.Errorf("functions: jetstream: %w", err)
	}
	store, err := Open(ctx, js, replicas)
	if err != nil {
		return KVResolver{}, fmt.Errorf("functions: %w", err)
	}
	return KVResolver{Store: store}, nil
}

// Resolve implements Resolver; tenant "" asks for the global definition,
// then the built-in. It returns an error wrapping ErrNotFound when no one
// has a definition of name. A stored definition that is invalid is an
// *InvalidStoredError (ErrInvalidStored), permanent, and nothing after it
// is asked: a broken deployed python must not turn into the global or
// built-in one, whose scopes may be wider. Other errors are the
// platform's and worth retrying. The definition's name is the bare name.
func (r KVResolver) Resolve(ctx context.Context, tenant, name string) (*schema.Function, error) {
	e, err := r.Lookup(ctx, tenant, name)
	if err != nil {
		return nil, err
	}
	return &e.Function, nil
}

// Lookup is Resolve that also says where the definition came from: the
// tenant's own (Entry.Tenant), the global one, or the built-in
// (Entry.Builtin), with its revision (`brig functions show`).
func (r KVResolver) Lookup(ctx context.Context, tenant, name string) (Entry, error) {
	if r.Store != nil {
		tenants := []string{""}
		if tenant != "" {
			tenants = []string{tenant, ""}
		}
		for _, t := range tenants {
			e, err := r.Store.EntryFor(ctx, t, name)
			if err == nil {
				return e, nil
			}
			if !errors.Is(err, ErrNotFound) {
				return Entry{}, err
			}
		}
	}
	if fn, ok := BuiltinFunction(name); ok {
		return Entry{Name: name, Builtin: true, Function: *fn}, nil
	}
	return Entry{}, fmt.Errorf("function %q: %w", name, ErrNotFound)
}
