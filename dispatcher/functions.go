package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/brig-dev/brig/schema"
)

// ErrFunctionNotFound is returned by a Resolver for an unknown name.
var ErrFunctionNotFound = errors.New("function not found")

// Resolver looks up function definitions.
type Resolver interface {
	Resolve(ctx context.Context, name string) (*schema.Function, error)
}

// Builtin resolves brig's built-in functions (today: python).
type Builtin struct{}

// Resolve implements Resolver.
func (Builtin) Resolve(_ context.Context, name string) (*schema.Function, error) {
	if name == "python" {
		fn := schema.Python()
		return &fn, nil
	}
	return nil, fmt.Errorf("%q: %w", name, ErrFunctionNotFound)
}
