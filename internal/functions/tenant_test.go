package functions_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

func TestKey(t *testing.T) {
	if got := functions.Key("", "grader"); got != "grader" {
		t.Errorf("Key global = %q", got)
	}
	if got := functions.Key("acme", "grader"); got != "acme.grader" {
		t.Errorf("Key tenant = %q", got)
	}
}

// TestResolveTenant: a tenant's own definition, then the global one,
// then the built-in; another tenant's never.
func TestResolveTenant(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	r := functions.KVResolver{Store: store}
	with := func(timeout int64) schema.Function { fn := grader(); fn.TimeoutMS = timeout; return fn }

	if _, err := store.Put(ctx, with(1_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutFor(ctx, "acme", with(2_000)); err != nil {
		t.Fatal(err)
	}
	ownPython := schema.Python()
	ownPython.TimeoutMS = 3_000
	if _, err := store.PutFor(ctx, "acme", ownPython); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tenant, name string
		timeout      int64
	}{
		{"acme", "grader", 2_000}, {"beta", "grader", 1_000}, {"", "grader", 1_000},
		{"acme", "python", 3_000}, {"beta", "python", 0},
	} {
		fn, err := r.Resolve(ctx, tc.tenant, tc.name)
		if err != nil || fn.TimeoutMS != tc.timeout || fn.Name != tc.name {
			t.Errorf("Resolve(%q, %q) = %+v, %v; want %s with timeout %d", tc.tenant, tc.name, fn, err, tc.name, tc.timeout)
		}
	}
	if fn, err := r.Resolve(ctx, "", "grader"); err != nil || fn.TimeoutMS != 1_000 {
		t.Errorf("Resolve(grader) = %+v, %v; want the global one", fn, err)
	}
	// Keys are not names: a tenant's function is not reachable as a name.
	for _, name := range []string{"acme.grader", "acme.python"} {
		if _, err := r.Resolve(ctx, "beta", name); !errors.Is(err, functions.ErrNotFound) {
			t.Errorf("Resolve(beta, %s): %v, want ErrNotFound", name, err)
		}
		if _, err := store.Get(ctx, name); !errors.Is(err, functions.ErrNotFound) {
			t.Errorf("Get(%s): %v, want ErrNotFound", name, err)
		}
	}
	if fns, err := store.List(ctx); err != nil || len(fns) != 1 || fns[0].TimeoutMS != 1_000 {
		t.Errorf("List = %+v, %v; want the global grader only", fns, err)
	}
	if fns, err := store.ListFor(ctx, "acme"); err != nil || len(fns) != 2 || fns[0].Name != "grader" || fns[1].Name != "python" {
		t.Errorf("ListFor(acme) = %+v, %v; want acme's grader and python", fns, err)
	}
	if _, err := store.PutFor(ctx, "Bad.Tenant", grader()); err == nil {
		t.Error("PutFor an invalid tenant gave no error")
	}

	// Deleting the tenant's own brings the global one back for it.
	if err := store.DeleteFor(ctx, "acme", "grader"); err != nil {
		t.Fatal(err)
	}
	if fn, err := r.Resolve(ctx, "acme", "grader"); err != nil || fn.TimeoutMS != 1_000 {
		t.Errorf("Resolve(acme, grader) after DeleteFor = %+v, %v; want the global one", fn, err)
	}
	if err := store.DeleteFor(ctx, "acme", "grader"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("second DeleteFor: %v, want ErrNotFound", err)
	}
}

// TestInvalidTenantDefinition: a tenant's broken definition is permanent
// for that tenant, and hides neither the global one nor the built-in from
// anyone else.
func TestInvalidTenantDefinition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	kv, err := js.KeyValue(ctx, functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	r := functions.KVResolver{Store: store}
	if _, err := store.Put(ctx, grader()); err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]string{
		"acme.grader": `{garbage}`,
		"acme.python": `{"name":"acme.python","image":"x","command":["x"]}`,
	} {
		rev, err := kv.Put(ctx, key, []byte(value))
		if err != nil {
			t.Fatal(err)
		}
		_, name, _ := strings.Cut(key, ".")
		_, err = r.Resolve(ctx, "acme", name)
		var ise *functions.InvalidStoredError
		if !errors.As(err, &ise) || ise.Name != key || ise.Revision != rev {
			t.Errorf("Resolve(acme, %s) = %v, want an InvalidStoredError for %s revision %d", name, err, key, rev)
		}
		if fn, err := r.Resolve(ctx, "beta", name); err != nil || fn.Name != name {
			t.Errorf("Resolve(beta, %s) = %+v, %v; want the global or built-in one", name, fn, err)
		}
	}
	if _, err := store.ListFor(ctx, "acme"); !errors.Is(err, functions.ErrInvalidStored) {
		t.Errorf("ListFor(acme): %v, want ErrInvalidStored", err)
	}
	if fns, err := store.List(ctx); err != nil || len(fns) != 1 {
		t.Errorf("List = %+v, %v; want the global grader, untouched by acme's", fns, err)
	}
}
