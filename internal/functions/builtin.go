package functions

import (
	"context"
	"fmt"

	"github.com/brig-dev/brig/schema"
)

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
	return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
}
