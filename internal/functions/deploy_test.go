package functions_test

import (
	"errors"
	"testing"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// TestDeployUnchanged: a definition the same as the stored one, however
// its YAML is written, leaves the key's revision and time as they are; a
// changed one, a deleted one deployed again and one over an invalid
// stored value are written.
func TestDeployUnchanged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	kv, err := js.KeyValue(ctx, functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}

	rev1, changed, err := store.Deploy(ctx, "", grader())
	if err != nil || !changed {
		t.Fatalf("first Deploy = %d, %v, %v; want a write", rev1, changed, err)
	}
	before, err := kv.Get(ctx, "grader")
	if err != nil {
		t.Fatal(err)
	}
	// The same definition, other YAML: keys in another order, flow lists,
	// quoted strings.
	same, err := functions.ParseYAML([]byte(`
network: false
scopes: [dict:grades:write, function:python:call]
timeout_ms: 10000
limits: {memory_mb: 128}
env: {LANG: "C.UTF-8"}
command:
  - python3
  - /work/main.py
image: "brig/python:latest"
name: grader
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, fn := range []schema.Function{grader(), same[0]} {
		rev, changed, err := store.Deploy(ctx, "", fn)
		if err != nil || changed || rev != rev1 {
			t.Errorf("redeploy %d = %d, %v, %v; want %d, unchanged", i, rev, changed, err, rev1)
		}
	}
	if rev, err := store.Put(ctx, grader()); err != nil || rev != rev1 {
		t.Errorf("Put of the same = %d, %v; want %d", rev, err, rev1)
	}
	after, err := kv.Get(ctx, "grader")
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision() != before.Revision() || !after.Created().Equal(before.Created()) {
		t.Errorf("key after unchanged deploys: revision %d at %v, want %d at %v", after.Revision(), after.Created(), before.Revision(), before.Created())
	}

	// The same definition for a tenant is another key: written once.
	if rev, changed, err := store.Deploy(ctx, "acme", grader()); err != nil || !changed || rev <= rev1 {
		t.Errorf("Deploy for acme = %d, %v, %v; want a new revision", rev, changed, err)
	}
	if _, changed, err := store.Deploy(ctx, "acme", grader()); err != nil || changed {
		t.Errorf("second Deploy for acme: changed %v, %v; want unchanged", changed, err)
	}

	changedFn := grader()
	changedFn.TimeoutMS = 20_000
	rev2, changed, err := store.Deploy(ctx, "", changedFn)
	if err != nil || !changed || rev2 <= rev1 {
		t.Errorf("changed Deploy = %d, %v, %v; want a new revision", rev2, changed, err)
	}

	if err := store.Delete(ctx, "grader"); err != nil {
		t.Fatal(err)
	}
	rev3, changed, err := store.Deploy(ctx, "", changedFn)
	if err != nil || !changed || rev3 <= rev2 {
		t.Errorf("Deploy after Delete = %d, %v, %v; want a new revision", rev3, changed, err)
	}

	if _, err := kv.Put(ctx, "grader", []byte(`{garbage}`)); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := store.Deploy(ctx, "", changedFn); err != nil || !changed {
		t.Errorf("Deploy over an invalid value: changed %v, %v; want a write", changed, err)
	}
	if fn, err := store.Get(ctx, "grader"); err != nil || fn.TimeoutMS != 20_000 {
		t.Errorf("Get = %+v, %v; want the deployed definition", fn, err)
	}

	bad := grader()
	bad.Image = ""
	var fe *schema.FieldError
	if _, changed, err := store.Deploy(ctx, "", bad); !errors.As(err, &fe) || fe.Field != "image" || changed {
		t.Errorf("invalid Deploy: changed %v, %v; want a field error for image", changed, err)
	}
	if _, _, err := store.Deploy(ctx, "Bad.Tenant", grader()); err == nil {
		t.Error("Deploy for an invalid tenant gave no error")
	}
}
