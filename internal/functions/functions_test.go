package functions_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

func openStore(t *testing.T, js jetstream.JetStream) *functions.Store {
	t.Helper()
	store, err := functions.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func grader() schema.Function {
	return schema.Function{
		Name:      "grader",
		Image:     "brig/python:latest",
		Command:   []string{"python3", "/work/main.py"},
		Env:       map[string]string{"LANG": "C.UTF-8"},
		Limits:    schema.Limits{MemoryMB: 128},
		TimeoutMS: 10_000,
		Scopes:    []string{"dict:grades:write", "function:python:call"},
		Network:   schema.Ptr(false),
	}
}

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)

	if fns, err := store.List(ctx); err != nil || len(fns) != 0 {
		t.Fatalf("List of an empty bucket = %v, %v; want none", fns, err)
	}
	reader := schema.Function{Name: "cache-reader", Image: "brig/python:latest", Command: []string{"python3", "/work/main.py"}, Scopes: []string{"dict:cache:read"}}
	for _, fn := range []schema.Function{grader(), reader} {
		if rev, err := store.Put(ctx, fn); err != nil || rev == 0 {
			t.Fatalf("Put(%s) = %d, %v", fn.Name, rev, err)
		}
	}
	got, err := store.Get(ctx, "grader")
	if err != nil {
		t.Fatal(err)
	}
	if want := grader(); !reflect.DeepEqual(*got, want) {
		t.Errorf("Get = %+v, want %+v", *got, want)
	}
	fns, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 2 || fns[0].Name != "cache-reader" || fns[1].Name != "grader" {
		t.Fatalf("List = %+v, want cache-reader and grader in that order", fns)
	}

	if err := store.Delete(ctx, "grader"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, "grader"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := store.Delete(ctx, "grader"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	}
	if fns, err := store.List(ctx); err != nil || len(fns) != 1 || fns[0].Name != "cache-reader" {
		t.Errorf("List after Delete = %+v, %v; want only cache-reader", fns, err)
	}
	for _, name := range []string{"nope", "a.b", "*", ""} {
		if _, err := store.Get(ctx, name); !errors.Is(err, functions.ErrNotFound) {
			t.Errorf("Get(%q): err = %v, want ErrNotFound", name, err)
		}
	}
}

func TestStoreUpdateTakesEffect(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	resolver := functions.KVResolver{Store: store}

	fn := grader()
	rev1, err := store.Put(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	fn.TimeoutMS = 20_000
	rev2, err := store.Put(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	if rev2 <= rev1 {
		t.Errorf("revisions %d then %d, want increasing", rev1, rev2)
	}
	got, err := resolver.Resolve(ctx, "", "grader")
	if err != nil || got.TimeoutMS != 20_000 {
		t.Fatalf("Resolve after update = %+v, %v; want timeout_ms 20000", got, err)
	}

	// A deployed python overrides the built-in until it is deleted.
	if got, err := resolver.Resolve(ctx, "", "python"); err != nil || got.Image != "brig/python:latest" || got.TimeoutMS != 0 {
		t.Fatalf("Resolve(python) = %+v, %v; want the built-in", got, err)
	}
	custom := schema.Python()
	custom.TimeoutMS = 5_000
	if _, err := store.Put(ctx, custom); err != nil {
		t.Fatal(err)
	}
	if got, err := resolver.Resolve(ctx, "", "python"); err != nil || got.TimeoutMS != 5_000 {
		t.Fatalf("Resolve(python) = %+v, %v; want the deployed one", got, err)
	}
	if err := store.Delete(ctx, "python"); err != nil {
		t.Fatal(err)
	}
	if got, err := resolver.Resolve(ctx, "", "python"); err != nil || got.TimeoutMS != 0 {
		t.Fatalf("Resolve(python) after Delete = %+v, %v; want the built-in", got, err)
	}

	if _, err := resolver.Resolve(ctx, "", "nope"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("Resolve(nope): err = %v, want ErrNotFound", err)
	}
	if fn, err := (functions.KVResolver{}).Resolve(ctx, "", "python"); err != nil || fn.Image != "brig/python:latest" {
		t.Errorf("KVResolver without a store: %+v, %v; want the built-in", fn, err)
	}
	if _, err := (functions.KVResolver{}).Resolve(ctx, "", "grader"); !errors.Is(err, functions.ErrNotFound) {
		t.Errorf("KVResolver without a store: err = %v, want ErrNotFound", err)
	}
}

func TestStorePutRejectsInvalid(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	tests := []struct {
		name  string
		edit  func(*schema.Function)
		field string
	}{
		{"bad name", func(f *schema.Function) { f.Name = "a.b" }, "name"},
		{"no image", func(f *schema.Function) { f.Image = "" }, "image"},
		{"no command", func(f *schema.Function) { f.Command = nil }, "command"},
		{"reserved env", func(f *schema.Function) { f.Env = map[string]string{"BRIG_TOKEN": "x"} }, `env["BRIG_TOKEN"]`},
		{"code file escapes", func(f *schema.Function) { f.CodeFile = "../main.py" }, "code_file"},
		{"memory", func(f *schema.Function) { f.Limits.MemoryMB = 1 }, "limits.memory_mb"},
		{"timeout", func(f *schema.Function) { f.TimeoutMS = -5 }, "timeout_ms"},
		{"scope", func(f *schema.Function) { f.Scopes = []string{"*", "dict:grades:put"} }, "scopes[1]"},
		{"pool", func(f *schema.Function) { f.Pool = "a b" }, "pool"},
		{"runtime", func(f *schema.Function) { f.Runtime = "kata" }, "runtime"},
	}
	for _, tt := range tests {
		fn := grader()
		tt.edit(&fn)
		_, err := store.Put(ctx, fn)
		var fe *schema.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: Put error = %v, want a field error for %s", tt.name, err, tt.field)
		}
	}
	if fns, err := store.List(ctx); err != nil || len(fns) != 0 {
		t.Errorf("List after rejected puts = %+v, %v; want none", fns, err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)

	// replicas 0 creates a missing bucket, then leaves it as it is.
	for _, replicas := range []int{0, 1, 1, 0} {
		if _, err := functions.Open(ctx, js, replicas); err != nil {
			t.Fatalf("Open(replicas %d): %v", replicas, err)
		}
	}
	kv, err := js.KeyValue(ctx, functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != bus.FunctionsHistory {
		t.Errorf("bucket history = %d, want %d", st.History(), bus.FunctionsHistory)
	}
	s, err := js.Stream(ctx, "KV_"+functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxBytes != bus.FunctionsMaxBytes || c.MaxMsgs != bus.FunctionsMaxMessages || c.MaxMsgSize != schema.MaxFunctionBytes {
		t.Errorf("bucket: MaxBytes %d, MaxMsgs %d, MaxMsgSize %d; want %d, %d, %d",
			c.MaxBytes, c.MaxMsgs, c.MaxMsgSize, bus.FunctionsMaxBytes, bus.FunctionsMaxMessages, schema.MaxFunctionBytes)
	}
}

// TestInvalidStoredDefinition: values written around Put (nats kv put) are
// permanent *InvalidStoredErrors naming the key, its revision and the
// field, for Get, Resolve (no fallback to a built-in of that name) and
// List; deleting one makes the name unknown again.
func TestInvalidStoredDefinition(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, _, js := natstest.Start(t)
	store := openStore(t, js)
	kv, err := js.KeyValue(ctx, functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	// python has a built-in, which must not be used instead of a broken
	// deployed one.
	resolver := functions.KVResolver{Store: store}
	tests := []struct {
		key, value string
		field      string // of the *schema.FieldError
		want       string // in the message
	}{
		{"garbage", `{garbage}`, "(message)", "is not valid JSON"},
		{"empty", ``, "(message)", "is not a JSON object"},
		{"list", `["python3", "/work/main.py"]`, "(message)", "is not a JSON object"},
		{"shape", `{"name":"shape","image":"x","command":"python3 main.py"}`, "command", "must be an array"},
		{"extra", `{"name":"extra","image":"x","command":["x"],"colour":1}`, "colour", "is not a known field"},
		{"tiny", `{"name":"tiny","image":"x","command":["x"],"limits":{"memory_mb":1}}`, "limits.memory_mb", "limits.memory_mb"},
		{"alias", `{"name":"other","image":"x","command":["x"]}`, "name", `is "other", not its key "alias"`},
		{"python", `{garbage}`, "(message)", "is not valid JSON"},
	}
	for _, tt := range tests {
		rev, err := kv.Put(ctx, tt.key, []byte(tt.value))
		if err != nil {
			t.Fatal(err)
		}
		for op, call := range map[string]func() error{
			"Get":     func() error { _, err := store.Get(ctx, tt.key); return err },
			"Resolve": func() error { _, err := resolver.Resolve(ctx, "", tt.key); return err },
		} {
			err := call()
			var ise *functions.InvalidStoredError
			var fe *schema.FieldError
			switch {
			case !errors.Is(err, functions.ErrInvalidStored) || errors.Is(err, functions.ErrNotFound):
				t.Errorf("%s(%s): err = %v, want ErrInvalidStored", op, tt.key, err)
			case !errors.As(err, &ise) || ise.Name != tt.key || ise.Revision != rev:
				t.Errorf("%s(%s): err = %#v, want an InvalidStoredError for %s revision %d", op, tt.key, err, tt.key, rev)
			case !errors.As(err, &fe) || fe.Field != tt.field:
				t.Errorf("%s(%s): err = %v, want a field error for %s", op, tt.key, err, tt.field)
			case !strings.Contains(err.Error(), `function "`+tt.key+`": its stored definition`) || !strings.Contains(err.Error(), tt.want):
				t.Errorf("%s(%s): message %q does not name the function and say %q", op, tt.key, err, tt.want)
			}
		}
	}
	if _, err := store.List(ctx); !errors.Is(err, functions.ErrInvalidStored) {
		t.Errorf("List of a bucket with invalid entries: err = %v, want ErrInvalidStored", err)
	}
	// Deleting or purging one is the way out: the name is unknown again.
	if err := store.Delete(ctx, "garbage"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "python"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"garbage", "python"} {
		if _, err := store.Get(ctx, key); !errors.Is(err, functions.ErrNotFound) {
			t.Errorf("Get(%s) after delete: err = %v, want ErrNotFound", key, err)
		}
	}
	if fn, err := resolver.Resolve(ctx, "", "python"); err != nil || fn.Image != "brig/python:latest" {
		t.Errorf("Resolve(python) after purge = %+v, %v; want the built-in", fn, err)
	}
}

// TestUnreachableStore: a store that cannot be read is neither unknown nor
// invalid, so the dispatcher retries.
func TestUnreachableStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url, _, js := natstest.Start(t)
	if _, err := openStore(t, js).Put(ctx, grader()); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	own, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	resolver := functions.KVResolver{Store: openStore(t, own)}
	nc.Close()
	for _, name := range []string{"grader", "nope"} {
		_, err := resolver.Resolve(ctx, "", name)
		if err == nil || errors.Is(err, functions.ErrNotFound) || errors.Is(err, functions.ErrInvalidStored) {
			t.Errorf("Resolve(%s) on a closed connection: err = %v, want a platform error", name, err)
		}
	}
}
