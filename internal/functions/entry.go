package functions

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// Entry is one function as an admin sees it (`brig functions ls`): a
// deployed definition with its key's revision and time, or a built-in.
type Entry struct {
	// Tenant owns the definition: "" for a global one and for a built-in.
	Tenant string
	// Name is the function's name (the whole key, for a key Put never
	// writes).
	Name string
	// Builtin marks one of brig's built-ins (BuiltinFunction): it has no
	// key and no revision, and cannot be deleted.
	Builtin bool
	// Function is the definition; zero when Err is set.
	Function schema.Function
	// Revision is the key's revision in the Bucket, Updated the time it
	// was written; zero for a built-in. An unchanged deploy keeps both
	// (Store.Deploy).
	Revision uint64
	Updated  time.Time
	// Err is the *InvalidStoredError of a stored value brig cannot use.
	// Entries lists such a value instead of failing, so that an admin sees
	// it among the others and can delete it.
	Err error
}

// Key is the entry's bucket key; "" for a built-in.
func (e Entry) Key() string {
	if e.Builtin {
		return ""
	}
	return Key(e.Tenant, e.Name)
}

// newEntry reads a stored value as an Entry, invalid or not.
func newEntry(kve jetstream.KeyValueEntry) Entry {
	e := Entry{Revision: kve.Revision(), Updated: kve.Created()}
	tenant, name, ok := splitKey(kve.Key())
	if !ok {
		e.Name = kve.Key()
		e.Err = &InvalidStoredError{Name: kve.Key(), Revision: kve.Revision(),
			Err: &schema.FieldError{Field: "(key)", Msg: "is not a key brig writes: <name> or <tenant>.<name>"}}
		return e
	}
	e.Tenant, e.Name = tenant, name
	fn, err := decodeEntry(kve)
	if err != nil {
		e.Err = err
		return e
	}
	e.Function = *fn
	return e
}

// decodeEntryOf is newEntry as bus.ListKV decodes: it never fails.
func decodeEntryOf(kve jetstream.KeyValueEntry) (Entry, error) { return newEntry(kve), nil }

// Entries lists every deployed definition, the global ones and every
// tenant's, sorted by tenant ("" first), then name. An invalid value is
// listed with its Err, not skipped and not failing the list.
func (s *Store) Entries(ctx context.Context) ([]Entry, error) {
	entries, err := bus.ListKV(ctx, s.kv, ">", decodeEntryOf, Entry.Key)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, CompareEntries)
	return entries, nil
}

// EntryFor is GetFor with the key's revision and time.
func (s *Store) EntryFor(ctx context.Context, tenant, name string) (Entry, error) {
	kve, err := s.entry(ctx, tenant, name)
	if err != nil {
		return Entry{}, err
	}
	e := newEntry(kve)
	return e, e.Err
}

// Builtins lists brig's built-in functions, sorted by name.
func Builtins() []Entry {
	var out []Entry
	for _, name := range BuiltinNames() {
		fn, _ := BuiltinFunction(name)
		out = append(out, Entry{Name: name, Builtin: true, Function: *fn})
	}
	return out
}

// Visible is what the jobs of tenant resolve (KVResolver), given every
// deployed entry: for each name, the tenant's own entry, else the global
// one, else the built-in; sorted by name. Tenant "" gets the global ones
// and the built-ins. An invalid entry stays in its place: resolution stops
// at it (KVResolver.Resolve).
func Visible(deployed []Entry, tenant string) []Entry {
	rank := func(e Entry) int {
		switch {
		case e.Builtin:
			return 2
		case e.Tenant == "":
			return 1
		}
		return 0
	}
	best := map[string]Entry{}
	for _, e := range append(slices.Clone(deployed), Builtins()...) {
		if !e.Builtin && e.Tenant != "" && e.Tenant != tenant {
			continue
		}
		if cur, ok := best[e.Name]; !ok || rank(e) < rank(cur) {
			best[e.Name] = e
		}
	}
	out := make([]Entry, 0, len(best))
	for _, e := range best {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// CompareEntries orders entries as Entries lists them: by tenant ("" first),
// then name, a deployed definition before the built-in of its name.
func CompareEntries(a, b Entry) int {
	builtin := func(e Entry) int {
		if e.Builtin {
			return 1
		}
		return 0
	}
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Name, b.Name), cmp.Compare(builtin(a), builtin(b)))
}

// VisibleTo is Visible(deployed, tenant) reading only the keys it needs:
// the global ones and tenant's own, not every tenant's.
func (s *Store) VisibleTo(ctx context.Context, tenant string) ([]Entry, error) {
	deployed, err := bus.ListKV(ctx, s.kv, "*", decodeEntryOf, Entry.Key)
	if err != nil {
		return nil, err
	}
	if tenant != "" && schema.ValidTenant(tenant) {
		own, err := bus.ListKV(ctx, s.kv, tenant+".*", decodeEntryOf, Entry.Key)
		if err != nil {
			return nil, err
		}
		deployed = append(deployed, own...)
	}
	return Visible(deployed, tenant), nil
}
