package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

// ErrFunctionNotFound is returned by a Resolver for an unknown name.
var ErrFunctionNotFound = errors.New("function not found")

// ErrFunctionInvalid is matched by a Resolver's error for a function whose
// definition exists but cannot be used; for KVResolver, a stored
// definition that does not decode or validate (functions.ErrInvalidStored).
var ErrFunctionInvalid = functions.ErrInvalidStored

// Resolver looks up function definitions for a tenant's job. An error
// matching ErrFunctionNotFound rejects the job (NotFound), one matching
// ErrFunctionInvalid ends it at once (brokenFunction); any other is the
// platform's, and the submission is retried.
type Resolver interface {
	Resolve(ctx context.Context, tenant, name string) (*schema.Function, error)
}

// BuiltinFunction returns a fresh copy of brig's built-in function of that
// name: python, or echo (queue-only, no container).
func BuiltinFunction(name string) (*schema.Function, bool) {
	var fn schema.Function
	switch name {
	case "python":
		fn = schema.Python()
	case "echo":
		fn = schema.Echo()
	default:
		return nil, false
	}
	return &fn, true
}

// Builtin resolves brig's built-in functions only.
type Builtin struct{}

// Resolve implements Resolver; the built-ins are every tenant's.
func (Builtin) Resolve(_ context.Context, _, name string) (*schema.Function, error) {
	if fn, ok := BuiltinFunction(name); ok {
		return fn, nil
	}
	return nil, fmt.Errorf("%q: %w", name, ErrFunctionNotFound)
}

// KVResolver resolves the functions deployed with `brig deploy` (the
// BRIG_FUNCTIONS bucket), then the built-ins: for tenant T, the tenant's
// own T.name, then the global name, then the built-in (docs/design.md §3,
// §10.3); a deployed definition named python replaces the built-in one. It
// caches nothing, so a deploy applies to the next job.
type KVResolver struct {
	Store *functions.Store
}

// OpenKVResolver opens the function bucket on nc, creating it when it is
// missing, with replicas as in functions.Open.
func OpenKVResolver(ctx context.Context, nc *nats.Conn, replicas int) (KVResolver, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return KVResolver{}, fmt.Errorf("dispatcher: jetstream: %w", err)
	}
	store, err := functions.Open(ctx, js, replicas)
	if err != nil {
		return KVResolver{}, fmt.Errorf("dispatcher: %w", err)
	}
	return KVResolver{Store: store}, nil
}

// Resolve implements Resolver.
func (r KVResolver) Resolve(ctx context.Context, tenant, name string) (*schema.Function, error) {
	fn, err := functions.Resolver{Store: r.Store, Fallback: BuiltinFunction}.ResolveFor(ctx, tenant, name)
	if errors.Is(err, functions.ErrNotFound) {
		return nil, fmt.Errorf("%q: %w", name, ErrFunctionNotFound)
	}
	return fn, err
}

// brokenFunction ends a job whose function's definition cannot be used.
// The job is not at fault, brig's store is, so the status is error and the
// type Infrastructure (docs/design.md §2.4, which operators alert on); but
// reading the definition again gives the same answer, so it ends at once
// rather than after MaxDeliver attempts.
func brokenFunction(job *schema.Job, err error) *rejection {
	r := invalid(job, schema.ErrInfrastructure, "%v; redeploy it with brig deploy", err)
	r.status = schema.StatusError
	return r
}
