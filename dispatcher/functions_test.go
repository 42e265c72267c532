package dispatcher

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

// functionsRig is a rig whose dispatcher resolves the function bucket, as
// brig dispatcher's does, with the store the tests look into.
func functionsRig(t *testing.T) (*rig, *functions.Store) {
	t.Helper()
	var store *functions.Store
	r := newRig(t, func(c *Config) {
		js, err := jetstream.New(c.Conn)
		if err != nil {
			t.Fatal(err)
		}
		if store, err = functions.Open(t.Context(), js, 1); err != nil {
			t.Fatal(err)
		}
		c.Functions = functions.KVResolver{Store: store}
	})
	return r, store
}

// askFunctions sends req as a client of tenant and decodes the answer.
func (r *rig) askFunctions(tenant string, req any) schema.FunctionsReply {
	r.t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		r.t.Fatal(err)
	}
	m, err := tenantConn(r.t, r.url, tenant).RequestWithContext(r.t.Context(), schema.FunctionsSubject(tenant), data)
	if err != nil {
		r.t.Fatalf("functions request of %s: %v", tenant, err)
	}
	return decodeFunctions(r.t, m)
}

func decodeFunctions(t *testing.T, m *nats.Msg) schema.FunctionsReply {
	t.Helper()
	var fr schema.FunctionsReply
	if err := json.Unmarshal(m.Data, &fr); err != nil {
		t.Fatalf("functions answer %q: %v", m.Data, err)
	}
	return fr
}

func deployReq(t *testing.T, fn schema.Function) schema.FunctionsRequest {
	t.Helper()
	data, err := schema.Marshal(fn)
	if err != nil {
		t.Fatal(err)
	}
	return schema.FunctionsRequest{Op: schema.FunctionsDeploy, Function: data}
}

// tenantFn is a definition a tenant may deploy: the built-in python's
// image, nothing only an admin may set.
func tenantFn(name string) schema.Function {
	fn := schema.Python()
	fn.Name, fn.Env = name, map[string]string{"GRADER": name}
	return fn
}

func names(infos []schema.FunctionInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, string(i.Owner)+":"+i.Name)
	}
	return out
}

// Every operation, as a tenant makes it: list and get what its jobs
// resolve, deploy its own (an unchanged one keeps its revision), delete
// its own; a global or built-in one is an admin's.
func TestFunctionsOps(t *testing.T) {
	t.Parallel()
	r, store := functionsRig(t)
	shared := tenantFn("shared")
	if _, err := store.Put(t.Context(), shared); err != nil {
		t.Fatal(err)
	}
	list := r.askFunctions("acme", schema.FunctionsRequest{Op: schema.FunctionsList})
	if got, want := names(list.Functions), []string{"builtin:echo", "builtin:python", "global:shared"}; !slices.Equal(got, want) || list.Error != "" {
		t.Errorf("list before deploying: %v %q, want %v", got, list.Error, want)
	}
	dep := r.askFunctions("acme", deployReq(t, tenantFn("grader")))
	if dep.Error != "" || !dep.Changed || dep.Function == nil || dep.Function.Owner != schema.OwnerTenant || dep.Function.Revision == 0 || dep.Function.Updated.IsZero() {
		t.Fatalf("deploy: %+v", dep)
	}
	again := r.askFunctions("acme", deployReq(t, tenantFn("grader")))
	if again.Error != "" || again.Changed || again.Function.Revision != dep.Function.Revision {
		t.Errorf("unchanged deploy: %+v, want revision %d unchanged", again, dep.Function.Revision)
	}
	if _, err := store.GetFor(t.Context(), "acme", "grader"); err != nil {
		t.Errorf("the deploy is not acme's own key: %v", err)
	}
	got := r.askFunctions("acme", schema.FunctionsRequest{Op: schema.FunctionsGet, Name: "grader"})
	if got.Function == nil || got.Function.Function.Env["GRADER"] != "grader" || got.Function.Owner != schema.OwnerTenant {
		t.Errorf("get: %+v", got)
	}
	if g := r.askFunctions("acme", schema.FunctionsRequest{Op: schema.FunctionsGet, Name: "shared"}); g.Function == nil || g.Function.Owner != schema.OwnerGlobal {
		t.Errorf("get of a global: %+v", g)
	}
	list = r.askFunctions("acme", schema.FunctionsRequest{Op: schema.FunctionsList})
	if got, want := names(list.Functions), []string{"builtin:echo", "tenant:grader", "builtin:python", "global:shared"}; !slices.Equal(got, want) {
		t.Errorf("list after deploying: %v, want %v", got, want)
	}
	if d := r.askFunctions("acme", schema.FunctionsRequest{Op: schema.FunctionsDelete, Name: "grader"}); d.Error != "" {
		t.Errorf("delete: %+v", d)
	}
	for _, name := range []string{"grader", "nope", "a.b", "*", ">"} {
		for _, op := range []schema.FunctionsOp{schema.FunctionsGet, schema.FunctionsDelete} {
			if g := r.askFunctions("acme", schema.FunctionsRequest{Op: op, Name: name}); g.ErrorType != schema.ErrNotFound {
				t.Errorf("%s %q: %+v, want NotFound", op, name, g)
			}
		}
	}
	for _, name := range []string{"python", "shared"} {
		d := r.askFunctions("acme", schema.FunctionsRequest{Op: schema.FunctionsDelete, Name: name})
		if d.ErrorType != schema.ErrForbidden || !strings.Contains(d.Error, "only an admin") {
			t.Errorf("delete %s: %+v, want Forbidden", name, d)
		}
	}
	if _, err := store.Get(t.Context(), "shared"); err != nil {
		t.Errorf("the global function after a tenant's delete: %v", err)
	}
}

// What a tenant may not deploy is refused, naming the field, and nothing
// is stored; a malformed request is refused the same way.
func TestFunctionsRefusals(t *testing.T) {
	t.Parallel()
	r, store := functionsRig(t)
	for _, tt := range []struct {
		name  string
		edit  func(*schema.Function)
		typ   schema.ErrorType
		field string
	}{
		{"invalid", func(f *schema.Function) { f.Command = nil }, schema.ErrInvalidFunction, "command"},
		{"network", func(f *schema.Function) { f.Network = schema.Ptr(true) }, schema.ErrForbidden, "network"},
		{"pool", func(f *schema.Function) { f.Pool = "gpu" }, schema.ErrForbidden, "pool"},
		{"runtime", func(f *schema.Function) { f.Runtime = schema.RuntimeRunsc }, schema.ErrForbidden, "runtime"},
		{"quota", func(f *schema.Function) { f.Quotas.Resources = schema.MaxResources }, schema.ErrForbidden, "quotas.resources"},
		{"image", func(f *schema.Function) { f.Image = "brig/worker:latest" }, schema.ErrForbidden, "image"},
	} {
		fn := tenantFn("x")
		tt.edit(&fn)
		got := r.askFunctions("acme", deployReq(t, fn))
		if got.ErrorType != tt.typ || got.Field != tt.field {
			t.Errorf("%s: %+v, want %s on %s", tt.name, got, tt.typ, tt.field)
		}
	}
	huge := strings.Repeat("a", MaxFunctionsRequestBytes)
	for _, tt := range []struct {
		name, req, field string
	}{
		{"unknown op", `{"op":"drop"}`, "op"},
		{"unknown field", `{"op":"list","tenant":"other"}`, "(message)"},
		{"unknown function field", `{"op":"deploy","function":{"name":"x","image":"brig/python:latest","command":["a"],"admin":true}}`, "admin"},
		{"function without deploy", `{"op":"get","name":"x","function":{}}`, "function"},
		{"deploy without function", `{"op":"deploy"}`, "function"},
		{"not JSON", `list`, "(message)"},
		{"too large", `{"op":"get","name":"` + huge + `"}`, "(message)"},
	} {
		m, err := tenantConn(t, r.url, "acme").RequestWithContext(t.Context(), schema.FunctionsSubject("acme"), []byte(tt.req))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := decodeFunctions(t, m); got.ErrorType != schema.ErrInvalidFunction || got.Field != tt.field {
			t.Errorf("%s: %+v, want InvalidFunction on %s", tt.name, got, tt.field)
		}
	}
	if entries, err := store.Entries(t.Context()); err != nil || len(entries) != 0 {
		t.Errorf("refused requests stored %+v, %v", entries, err)
	}
}

// Tenants are apart: one cannot list, get, delete or overwrite another's
// function; deploying a name another tenant has writes its own key.
func TestFunctionsTenantsApart(t *testing.T) {
	t.Parallel()
	r, store := functionsRig(t)
	a := r.askFunctions("acme", deployReq(t, tenantFn("x")))
	if a.Error != "" {
		t.Fatal(a.Error)
	}
	if l := r.askFunctions("other", schema.FunctionsRequest{Op: schema.FunctionsList}); slices.Contains(names(l.Functions), "tenant:x") {
		t.Errorf("other lists acme's function: %v", names(l.Functions))
	}
	for _, op := range []schema.FunctionsOp{schema.FunctionsGet, schema.FunctionsDelete} {
		if g := r.askFunctions("other", schema.FunctionsRequest{Op: op, Name: "x"}); g.ErrorType != schema.ErrNotFound {
			t.Errorf("other's %s of acme's x: %+v, want NotFound", op, g)
		}
	}
	mine := tenantFn("x")
	mine.Env["GRADER"] = "other's"
	if b := r.askFunctions("other", deployReq(t, mine)); b.Error != "" || b.Function.Function.Env["GRADER"] != "other's" {
		t.Fatalf("other's deploy: %+v", b)
	}
	e, err := store.EntryFor(t.Context(), "acme", "x")
	if err != nil || e.Revision != a.Function.Revision || e.Function.Env["GRADER"] != "x" {
		t.Errorf("acme's x after other's deploy: %+v, %v; want revision %d untouched", e, err, a.Function.Revision)
	}
	if _, err := store.Get(t.Context(), "x"); err == nil {
		t.Error("a tenant's deploy wrote the global key")
	}
}

// Past MaxTenantFunctions a deploy of a new name is QuotaExceeded.
func TestFunctionsQuota(t *testing.T) {
	t.Parallel()
	r, _ := functionsRig(t)
	for i := range functions.MaxTenantFunctions {
		if got := r.askFunctions("acme", deployReq(t, tenantFn(fmt.Sprintf("f%d", i)))); got.Error != "" {
			t.Fatalf("function %d: %+v", i, got)
		}
	}
	got := r.askFunctions("acme", deployReq(t, tenantFn("one-more")))
	if got.ErrorType != schema.ErrQuotaExceeded || !strings.Contains(got.Error, "MaxTenantFunctions") {
		t.Errorf("past the quota: %+v", got)
	}
}

// A request whose reply subject is not an inbox of the subject's tenant
// gets no answer, and neither does one on a subject of no valid tenant.
func TestFunctionsOnlyToInboxes(t *testing.T) {
	t.Parallel()
	r, _ := functionsRig(t)
	wantAnswersOnlyToInboxes(t, r.nc, schema.FunctionsPrefix, []byte(`{"op":"list"}`), func() {
		if got := r.askFunctions("acme", schema.FunctionsRequest{Op: schema.FunctionsList}); got.Error != "" {
			t.Fatalf("acme's own request: %+v", got)
		}
	})
}

// With MaxFunctionsRequests in hand, a request is answered busy at once.
func TestFunctionsBusy(t *testing.T) {
	t.Parallel()
	r, _ := functionsRig(t)
	full := make(chan struct{}, 1)
	full <- struct{}{}
	reply := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(reply)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r.d.functionsHandler(full)(&nats.Msg{Subject: schema.FunctionsSubject(schema.DefaultTenant), Reply: reply, Data: []byte(`{"op":"list"}`)})
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeFunctions(t, m); got.Error != schema.BusyAnswer || got.ErrorType != schema.ErrBusy {
		t.Errorf("past the bound: %+v, want busy", got)
	}
}
