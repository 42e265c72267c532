package functions

import (
	"context"
	"fmt"
	"slices"

	"github.com/brig-dev/brig/schema"
)

// builtins are brig's built-in functions by name (docs/design.md §3).
var builtins = map[string]func() schema.Function{
	"python": schema.Python,
	"echo":   schema.Echo,
}

// BuiltinFunction returns a fresh copy of brig's built-in function of that
// name: python, or echo (queue-only, no container).
func BuiltinFunction(name string) (*schema.Function, bool) {
	def, ok := builtins[name]
	if !ok {
		return nil, false
	}
	fn := def()
	return &fn, true
}

// BuiltinNames lists the built-in functions' names, sorted.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtins))
	for name := range builtins {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
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
