package functions_test

import (
	"errors"
	"testing"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

func builtinPython(t *testing.T) *schema.Function {
	t.Helper()
	fn, err := functions.Builtin{}.Resolve(t.Context(), schema.DefaultTenant, "python")
	if err != nil {
		t.Fatalf("resolve python: %v", err)
	}
	return fn
}

func TestBuiltinResolve(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "Python", "python3", "nosuch"} {
		fn, err := functions.Builtin{}.Resolve(t.Context(), schema.DefaultTenant, name)
		if !errors.Is(err, functions.ErrNotFound) || fn != nil {
			t.Errorf("Resolve(%q) = %v, %v; want nil, functions.ErrNotFound", name, fn, err)
		}
	}
	// Each call returns a fresh definition: callers may change it.
	a, b := builtinPython(t), builtinPython(t)
	a.Env["X"] = "1"
	a.Scopes[0] = "none"
	if _, ok := b.Env["X"]; ok || b.Scopes[0] != "*" {
		t.Errorf("Resolve returns shared state: %+v", b)
	}
}
