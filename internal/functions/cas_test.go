package functions_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// revisions counts the messages the bucket's stream holds for key, delete
// markers included.
func revisions(t *testing.T, js jetstream.JetStream, key string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), "KV_"+functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	subject := "$KV." + functions.Bucket + "." + key
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// Identical deploys at once write once: every one reports the same
// revision, and exactly one of them changed the key.
func TestDeployConcurrentIdentical(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	for _, tenant := range []string{"", "acme"} {
		const n = 8
		var wg sync.WaitGroup
		revs, changed, errs := make([]uint64, n), make([]bool, n), make([]error, n)
		for i := range n {
			wg.Go(func() { revs[i], changed[i], errs[i] = store.Deploy(t.Context(), tenant, grader()) })
		}
		wg.Wait()
		writes := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("tenant %q: deploy %d: %v", tenant, i, errs[i])
			}
			if revs[i] != revs[0] {
				t.Errorf("tenant %q: deploy %d got revision %d, deploy 0 %d", tenant, i, revs[i], revs[0])
			}
			if changed[i] {
				writes++
			}
		}
		if writes != 1 {
			t.Errorf("tenant %q: %d deploys wrote, want 1", tenant, writes)
		}
		if got := revisions(t, js, functions.Key(tenant, "grader")); got != 1 {
			t.Errorf("tenant %q: %d revisions stored, want 1", tenant, got)
		}
	}
}

// Different deploys at once are each written, one after the other: none
// fails, and the key ends as one of them.
func TestDeployConcurrentDifferent(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			fn := grader()
			fn.TimeoutMS = int64(1000 * (i + 1))
			_, _, errs[i] = store.Deploy(t.Context(), "", fn)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(t.Context(), "grader")
	if err != nil {
		t.Fatal(err)
	}
	if got.TimeoutMS%1000 != 0 || got.TimeoutMS < 1000 || got.TimeoutMS > 4000 {
		t.Errorf("stored timeout %d, want one of the deploys'", got.TimeoutMS)
	}
	if n := revisions(t, js, "grader"); n != 4 {
		t.Errorf("%d revisions of a global key, want 4 (its history)", n)
	}
}

// A tenant's key keeps one revision, and a delete leaves nothing behind,
// not even a marker; a global key keeps its history and a marker. Both
// can be deployed again after a delete.
func TestTenantKeyKeepsOneRevision(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	for _, timeout := range []int64{1000, 2000, 3000} {
		fn := grader()
		fn.TimeoutMS = timeout
		for _, tenant := range []string{"", "acme"} {
			if _, _, err := store.Deploy(ctx, tenant, fn); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a, g := revisions(t, js, "acme.grader"), revisions(t, js, "grader"); a != 1 || g != 3 {
		t.Errorf("after 3 deploys: tenant key %d revisions, global %d; want 1 and 3", a, g)
	}
	if got, err := store.GetFor(ctx, "acme", "grader"); err != nil || got.TimeoutMS != 3000 {
		t.Errorf("tenant's after 3 deploys: %+v, %v", got, err)
	}
	for _, tenant := range []string{"", "acme"} {
		if err := store.DeleteFor(ctx, tenant, "grader"); err != nil {
			t.Fatal(err)
		}
		if err := store.DeleteFor(ctx, tenant, "grader"); !errors.Is(err, functions.ErrNotFound) {
			t.Errorf("tenant %q: second delete: %v, want ErrNotFound", tenant, err)
		}
	}
	if a, g := revisions(t, js, "acme.grader"), revisions(t, js, "grader"); a != 0 || g != 4 {
		t.Errorf("after delete: tenant key %d messages, global %d; want 0 and 4 (history and marker)", a, g)
	}
	for _, tenant := range []string{"", "acme"} {
		if _, changed, err := store.Deploy(ctx, tenant, grader()); err != nil || !changed {
			t.Errorf("tenant %q: deploy after delete: changed %v, %v", tenant, changed, err)
		}
		if _, err := store.GetFor(ctx, tenant, "grader"); err != nil {
			t.Errorf("tenant %q: get after redeploy: %v", tenant, err)
		}
	}
}

// DeployOwn refuses what only an admin may set, naming the field, and an
// invalid definition with its *schema.FieldError; what a tenant may set
// is stored under its own key.
func TestDeployOwnRefusals(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	vetted := grader()
	vetted.Name, vetted.Image = "vetted", "registry.example/vetted:1"
	if _, err := store.Put(ctx, vetted); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, field string
		edit        func(*schema.Function)
	}{
		{"network", "network", func(f *schema.Function) { f.Network = schema.Ptr(true) }},
		{"pool", "pool", func(f *schema.Function) { f.Pool = "gpu" }},
		{"runtime", "runtime", func(f *schema.Function) { f.Runtime = schema.RuntimeRunsc }},
		{"runc too", "runtime", func(f *schema.Function) { f.Runtime = schema.RuntimeRunc }},
		{"prewarm", "prewarm", func(f *schema.Function) { f.Prewarm = 1 }},
		{"dict quota", "quotas.dict_mb", func(f *schema.Function) { f.Quotas.DictMB = schema.DefaultDictMB + 1 }},
		{"calls quota", "quotas.calls", func(f *schema.Function) { f.Quotas.Calls = schema.DefaultCalls + 1 }},
		{"own image", "image", func(f *schema.Function) { f.Image = "brig/worker:latest" }},
		{"tag of a vetted image", "image", func(f *schema.Function) { f.Image = "registry.example/vetted:2" }},
		{"egress address", "egress", func(f *schema.Function) { f.Egress = []string{"api.example.com", "203.0.113.7:443"} }},
	} {
		fn := grader()
		tt.edit(&fn)
		_, _, err := store.DeployOwn(ctx, "acme", fn)
		var fe *functions.ForbiddenError
		if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, functions.ErrForbidden) {
			t.Errorf("%s: %v, want Forbidden on %s", tt.name, err, tt.field)
		}
	}
	bad := grader()
	bad.Image = ""
	var field *schema.FieldError
	if _, _, err := store.DeployOwn(ctx, "acme", bad); !errors.As(err, &field) || field.Field != "image" {
		t.Errorf("invalid definition: %v, want a FieldError on image", err)
	}
	if entries, _ := store.Entries(ctx); len(entries) != 1 {
		t.Errorf("refused deploys stored something: %+v", entries)
	}
	ok := grader()
	ok.Image, ok.Pool, ok.Network, ok.Prewarm = vetted.Image, schema.DefaultPool, schema.Ptr(false), 0
	ok.Quotas = schema.Quotas{DictMB: 1, Calls: schema.DefaultCalls}
	ok.Egress = []string{"api.example.com", "*.example.org:8443"}
	e, changed, err := store.DeployOwn(ctx, "acme", ok)
	if err != nil || !changed || e.Tenant != "acme" || e.Revision == 0 {
		t.Fatalf("allowed deploy: %+v, %v, %v", e, changed, err)
	}
	if _, err := store.Get(ctx, "grader"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("a tenant's deploy wrote the global key: %v", err)
	}
	if got, err := store.GetFor(ctx, "acme", "grader"); err != nil || !slices.Equal(got.Egress, ok.Egress) {
		t.Errorf("the tenant's egress list did not round-trip: %+v, %v", got, err)
	}
}

// A tenant owns at most MaxTenantFunctions functions and
// MaxTenantFunctionBytes of them; replacing one counts its difference
// only, and another tenant has its own quota.
func TestDeployOwnQuota(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	named := func(i int) schema.Function { fn := schema.Python(); fn.Name = fmt.Sprintf("f%d", i); return fn }
	for i := range functions.MaxTenantFunctions {
		if _, _, err := store.DeployOwn(ctx, "acme", named(i)); err != nil {
			t.Fatalf("function %d: %v", i, err)
		}
	}
	if _, _, err := store.DeployOwn(ctx, "acme", named(functions.MaxTenantFunctions)); !errors.Is(err, functions.ErrQuotaExceeded) {
		t.Errorf("one past MaxTenantFunctions: %v, want ErrQuotaExceeded", err)
	}
	again := named(0)
	again.TimeoutMS = 5000
	if _, changed, err := store.DeployOwn(ctx, "acme", again); err != nil || !changed {
		t.Errorf("replacing an owned function at the quota: %v, %v", changed, err)
	}
	if _, _, err := store.DeployOwn(ctx, "other", named(0)); err != nil {
		t.Errorf("another tenant: %v", err)
	}

	// Bytes: definitions near MaxFunctionBytes, a few of which fill
	// MaxTenantFunctionBytes.
	big := func(i int) schema.Function {
		fn := named(i)
		fn.Env = map[string]string{"PAD": strings.Repeat("p", schema.MaxFunctionBytes/2)}
		return fn
	}
	per := schema.MaxFunctionBytes / 2
	fits := functions.MaxTenantFunctionBytes / per
	for i := range fits - 1 {
		if _, _, err := store.DeployOwn(ctx, "bytes", big(i)); err != nil {
			t.Fatalf("large function %d: %v", i, err)
		}
	}
	if _, _, err := store.DeployOwn(ctx, "bytes", big(fits)); !errors.Is(err, functions.ErrQuotaExceeded) || !strings.Contains(err.Error(), "MaxTenantFunctionBytes") {
		t.Errorf("past MaxTenantFunctionBytes: %v, want ErrQuotaExceeded", err)
	}
}
