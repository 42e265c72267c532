package functions_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// TestEntries: every deployed definition, global ones first, then each
// tenant's, with its revision and time; values written around Put are
// listed with their error rather than failing the list.
func TestEntries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	if entries, err := store.Entries(ctx); err != nil || len(entries) != 0 {
		t.Fatalf("Entries of an empty bucket = %+v, %v", entries, err)
	}
	start := time.Now().Add(-time.Second)
	revs := map[string]uint64{}
	for _, d := range []struct{ tenant, name string }{{"beta", "grader"}, {"", "grader"}, {"acme", "python"}, {"", "cache"}, {"acme", "grader"}} {
		fn := grader()
		fn.Name = d.name
		rev, err := store.PutFor(ctx, d.tenant, fn)
		if err != nil {
			t.Fatal(err)
		}
		revs[functions.Key(d.tenant, d.name)] = rev
	}
	kv, err := js.KeyValue(ctx, functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]string{"acme.broken": `{garbage}`, "Bad.key": `{"name":"key","image":"x","command":["x"]}`} {
		if revs[key], err = kv.Put(ctx, key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Delete(ctx, "cache"); err != nil {
		t.Fatal(err)
	}

	entries, err := store.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ tenant, name string }{{"", "Bad.key"}, {"", "grader"}, {"acme", "broken"}, {"acme", "grader"}, {"acme", "python"}, {"beta", "grader"}}
	if len(entries) != len(want) {
		t.Fatalf("Entries = %+v, want %v", entries, want)
	}
	for i, e := range entries {
		key := functions.Key(want[i].tenant, want[i].name)
		switch {
		case e.Tenant != want[i].tenant || e.Name != want[i].name || e.Key() != key || e.Builtin:
			t.Errorf("entry %d = %s/%s, want %s/%s", i, e.Tenant, e.Name, want[i].tenant, want[i].name)
		case e.Revision != revs[key] || e.Updated.Before(start) || e.Updated.After(time.Now()):
			t.Errorf("entry %s: revision %d at %v, want %d since %v", key, e.Revision, e.Updated, revs[key], start)
		}
		invalid := key == "Bad.key" || key == "acme.broken"
		var ise *functions.InvalidStoredError
		if invalid != (e.Err != nil) || (invalid && (!errors.As(e.Err, &ise) || ise.Name != key)) {
			t.Errorf("entry %s: Err = %v, want an InvalidStoredError: %v", key, e.Err, invalid)
		}
		if !invalid && (e.Function.Name != e.Name || e.Function.Image != grader().Image) {
			t.Errorf("entry %s: Function = %+v", key, e.Function)
		}
	}

	e, err := store.EntryFor(ctx, "acme", "grader")
	if err != nil || e.Revision != revs["acme.grader"] || e.Tenant != "acme" || e.Function.Name != "grader" {
		t.Errorf("EntryFor(acme, grader) = %+v, %v", e, err)
	}
	if _, err := store.EntryFor(ctx, "acme", "broken"); !errors.Is(err, functions.ErrInvalidStored) {
		t.Errorf("EntryFor(acme, broken): %v, want ErrInvalidStored", err)
	}
	if _, err := store.EntryFor(ctx, "", "cache"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("EntryFor(cache) after Delete: %v, want ErrNotFound", err)
	}
}

// TestLookup: where a resolved definition comes from.
func TestLookup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	if _, err := store.Put(ctx, grader()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutFor(ctx, "acme", grader()); err != nil {
		t.Fatal(err)
	}
	r := functions.KVResolver{Store: store}
	for _, tc := range []struct {
		tenant, name string
		from         string // tenant, "" for global, "builtin"
	}{
		{"acme", "grader", "acme"}, {"beta", "grader", ""}, {"", "grader", ""},
		{"acme", "python", "builtin"}, {"", "echo", "builtin"},
	} {
		e, err := r.Lookup(ctx, tc.tenant, tc.name)
		from := e.Tenant
		if e.Builtin {
			from = "builtin"
		}
		if err != nil || from != tc.from || e.Name != tc.name || e.Function.Name != tc.name || (e.Builtin != (e.Revision == 0)) {
			t.Errorf("Lookup(%q, %q) = %+v, %v; want from %q", tc.tenant, tc.name, e, err, tc.from)
		}
	}
	if _, err := r.Lookup(ctx, "acme", "nope"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("Lookup(nope): %v, want ErrNotFound", err)
	}
	if e, err := (functions.KVResolver{}).Lookup(ctx, "acme", "python"); err != nil || !e.Builtin || e.Function.Image != "brig/python:latest" {
		t.Errorf("Lookup without a store = %+v, %v; want the built-in", e, err)
	}
}

// TestVisible: for each name, the entry a tenant's jobs resolve.
func TestVisible(t *testing.T) {
	t.Parallel()
	entry := func(tenant, name string) functions.Entry {
		return functions.Entry{Tenant: tenant, Name: name, Revision: 1}
	}
	broken := entry("acme", "echo")
	broken.Err = errors.New("broken")
	deployed := []functions.Entry{
		entry("", "grader"), entry("", "python"), entry("acme", "grader"), entry("acme", "own"), broken, entry("beta", "other"),
	}
	type row struct {
		name, tenant string
		builtin      bool
	}
	tests := []struct {
		tenant string
		want   []row
	}{
		{"", []row{{"echo", "", true}, {"grader", "", false}, {"python", "", false}}},
		{"acme", []row{{"echo", "acme", false}, {"grader", "acme", false}, {"own", "acme", false}, {"python", "", false}}},
		{"beta", []row{{"echo", "", true}, {"grader", "", false}, {"other", "beta", false}, {"python", "", false}}},
		{"gamma", []row{{"echo", "", true}, {"grader", "", false}, {"python", "", false}}},
	}
	for _, tt := range tests {
		var got []row
		for _, e := range functions.Visible(deployed, tt.tenant) {
			got = append(got, row{e.Name, e.Tenant, e.Builtin})
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Visible(%q) = %v, want %v", tt.tenant, got, tt.want)
		}
	}
	if got := functions.Visible(nil, ""); len(got) != 2 || got[0].Name != "echo" || got[1].Name != "python" || !got[1].Builtin {
		t.Errorf("Visible of nothing deployed = %+v, want the built-ins", got)
	}
	if !reflect.DeepEqual(functions.BuiltinNames(), []string{"echo", "python"}) {
		t.Errorf("BuiltinNames = %v", functions.BuiltinNames())
	}
	for _, e := range functions.Builtins() {
		if fn, ok := functions.BuiltinFunction(e.Name); !ok || !e.Builtin || e.Key() != "" || !reflect.DeepEqual(*fn, e.Function) {
			t.Errorf("Builtins: %+v", e)
		}
	}
}

// TestMarshalYAML: what brig functions show prints, brig deploy reads
// back as the very definition, strings that YAML would read as something
// else included.
func TestMarshalYAML(t *testing.T) {
	t.Parallel()
	fn := schema.Python()
	for k, v := range map[string]string{
		"YES": "yes", "NO": "off", "NUM": "0x10", "FLOAT": "1e3", "NULL": "null", "TILDE": "~", "EMPTY": "",
		"CTRL": "a\x01b\u2028c", "COLON": "a: b # c", "LINES": "one\n  two\n", "DASH": "- x", "MERGE": "<<", "SPACE": " x ", "DEL": "a\x7fb",
		"QUOTES": `'"`, "UNICODE": "héllo ✓ 😀", "STAR": "*x", "AMP": "&a", "BANG": "!!str", "PCT": "%YAML",
	} {
		fn.Env[k] = v
	}
	fn.Limits = schema.Limits{MemoryMB: 512, CPUs: 0.5, Pids: 64}
	fn.TimeoutMS = 3_600_000
	fn.Network = schema.Ptr(false)
	fn.SingleUse = schema.Ptr(true)
	fn.Pool = "gpu"
	fn.Quotas.Calls = 7
	fn.Egress = []string{"*.example.org", "api.example.com:8443", "198.51.100.0/24", "[2001:db8::/32]:443"}
	data, err := functions.MarshalYAML(fn)
	if err != nil {
		t.Fatal(err)
	}
	back, err := functions.ParseYAML(data)
	if err != nil {
		t.Fatalf("ParseYAML of\n%s: %v", data, err)
	}
	if len(back) != 1 || !reflect.DeepEqual(back[0], fn) {
		t.Errorf("round trip of\n%s = %+v, want %+v", data, back, fn)
	}
	plain := grader()
	plain.Limits = schema.Limits{}
	if data, err := functions.MarshalYAML(plain); err != nil || strings.Contains(string(data), "limits") {
		t.Errorf("YAML of a definition without limits:\n%s, %v; want no limits: {}", data, err)
	}
	// Fields in the order of the stored encoding, name first.
	if want := "name: python\nimage: brig/python:latest\ncommand:\n- python3\n"; string(data[:len(want)]) != want {
		t.Errorf("YAML starts %q, want %q", data[:len(want)], want)
	}
}

func FuzzMarshalYAML(f *testing.F) {
	for _, s := range []string{"yes", "", "a\nb", "0o17", ": x", "\"", "\x00", "\x7f", "\u0085", "\ufeff", "\xff"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, value, arg string) {
		// A stored definition is decoded JSON, valid UTF-8.
		if !utf8.ValidString(value) || !utf8.ValidString(arg) {
			return
		}
		fn := grader()
		fn.Env["V"] = value
		fn.Command = append(fn.Command, arg)
		if fn.Validate() != nil {
			return
		}
		want, err := schema.Marshal(fn)
		if err != nil {
			return
		}
		data, err := functions.MarshalYAML(fn)
		if err != nil {
			t.Fatal(err)
		}
		back, err := functions.ParseYAML(data)
		if err != nil {
			t.Fatalf("ParseYAML of\n%s: %v", data, err)
		}
		got, err := schema.Marshal(back[0])
		if err != nil || string(got) != string(want) {
			t.Errorf("round trip of %q, %q: %s, want %s", value, arg, got, want)
		}
	})
}
