package functions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// Bucket is the KV bucket holding deployed definitions, keyed by name
// (global functions) or <tenant>.<name> (a tenant's own; see Key). It is
// configured, with its history and limits, in internal/bus
// (bus.FunctionsConfig); the name stays here too because the store's
// users (brig deploy, brig tenant, their tests) look the bucket up by it.
const Bucket = bus.FunctionsBucket

// ErrNotFound is returned for a name with no deployed definition.
var ErrNotFound = errors.New("function not found")

// Store reads and writes deployed function definitions.
type Store struct {
	kv jetstream.KeyValue
	// js and stream (the bucket's) carry the writes that the KeyValue API
	// cannot make: conditional, and rolled up for a tenant's key (cas.go).
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open returns a store over the bucket, creating or updating it as
// bus.FunctionsConfig has it, with the given replicas. replicas <= 0 uses
// the bucket as it is when it exists (so a client such as `brig deploy`
// never changes a cluster's replication) and creates it with one replica
// when it does not.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	if replicas <= 0 {
		kv, err := js.KeyValue(ctx, Bucket)
		if err == nil {
			return newStore(ctx, js, kv)
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("open bucket %s: %w", Bucket, err)
		}
		replicas = 1
	}
	kv, err := bus.EnsureBucket(ctx, js, bus.FunctionsConfig(replicas), bus.FunctionsMaxMessages)
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", Bucket, err)
	}
	return newStore(ctx, js, kv)
}

func newStore(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) (*Store, error) {
	stream, err := js.Stream(ctx, "KV_"+Bucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv, js: js, stream: stream}, nil
}

// Key is the bucket key of function name for tenant ("" for a global
// function, which every tenant sees): <tenant>.<name>, or <name>
// (docs/design.md §10.3).
func Key(tenant, name string) string {
	if tenant == "" {
		return name
	}
	return tenant + "." + name
}

// splitKey parses a bucket key; ok is false for a key Put never writes.
func splitKey(key string) (tenant, name string, ok bool) {
	tenant, name, dotted := strings.Cut(key, ".")
	if !dotted {
		return "", key, schema.ValidName(key)
	}
	return tenant, name, schema.ValidTenant(tenant) && schema.ValidName(name)
}

// Put validates fn and stores it as a global function, under its name,
// creating or replacing the definition, and returns the key's revision. An
// invalid definition is refused with a *schema.FieldError naming the
// field. A definition the same as the stored one is not written again
// (see Deploy). A definition named like a built-in (python) overrides the
// built-in for every dispatcher that resolves through a KVResolver; deleting
// it brings the built-in back.
func (s *Store) Put(ctx context.Context, fn schema.Function) (uint64, error) {
	return s.PutFor(ctx, "", fn)
}

// PutFor is Put for tenant's own function (key <tenant>.<name>), which
// that tenant's jobs resolve before a global one of the same name; tenant
// "" is Put.
func (s *Store) PutFor(ctx context.Context, tenant string, fn schema.Function) (uint64, error) {
	rev, _, err := s.Deploy(ctx, tenant, fn)
	return rev, err
}

// Deploy is PutFor that also reports whether it wrote. A definition whose
// encoding is byte for byte the stored one is left as it is: the key keeps
// its revision and its time, and changed is false. The encoding is
// normalised (schema.Marshal of the decoded definition: fields in one
// order, map keys sorted, empty lists and maps left out), so the same
// definition written as other YAML is unchanged too. The write is
// compare-and-set (cas.go): two deploys of one name at once are written
// one after the other, and two identical ones write once. A tenant's key
// keeps its last revision only; a global one keeps bus.FunctionsHistory.
func (s *Store) Deploy(ctx context.Context, tenant string, fn schema.Function) (rev uint64, changed bool, _ error) {
	if tenant != "" && !schema.ValidTenant(tenant) {
		return 0, false, fmt.Errorf("function %q: invalid tenant name %q", fn.Name, tenant)
	}
	key := Key(tenant, fn.Name)
	data, err := Encode(fn)
	if err != nil {
		return 0, false, fmt.Errorf("function %q: %w", key, err)
	}
	for range casAttempts {
		cur, err := s.last(ctx, key)
		if err != nil {
			return 0, false, err
		}
		if cur.live && bytes.Equal(cur.value, data) {
			return cur.rev, false, nil
		}
		rev, err = s.write(ctx, key, data, cur.rev, tenant != "")
		if !errors.Is(err, errConflict) {
			if err != nil {
				return 0, false, fmt.Errorf("store function %q: %w", key, err)
			}
			return rev, true, nil
		}
	}
	return 0, false, fmt.Errorf("store function %q: %w", key, ErrConflict)
}

// Encode is the normalised encoding of fn that Deploy stores, checked the
// way Get will read it back: an invalid definition is a *schema.FieldError
// naming the field.
func Encode(fn schema.Function) ([]byte, error) {
	data, err := schema.Marshal(fn)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if _, err := schema.DecodeFunction(data); err != nil {
		return nil, err
	}
	return data, nil
}

// Get returns the global definition of name, or an error wrapping
// ErrNotFound (none, or a deleted one), an *InvalidStoredError (a value
// that is not a valid definition), or the bucket's error.
func (s *Store) Get(ctx context.Context, name string) (*schema.Function, error) {
	return s.GetFor(ctx, "", name)
}

// GetFor is Get of tenant's own definition of name (no global one: see
// KVResolver.Resolve for the order).
func (s *Store) GetFor(ctx context.Context, tenant, name string) (*schema.Function, error) {
	e, err := s.EntryFor(ctx, tenant, name)
	if err != nil {
		return nil, err
	}
	return &e.Function, nil
}

// List returns every global definition, sorted by name. An invalid one
// fails the whole list with its *InvalidStoredError.
func (s *Store) List(ctx context.Context) ([]schema.Function, error) {
	return s.list(ctx, "*")
}

// ListFor returns tenant's own definitions, sorted by name.
func (s *Store) ListFor(ctx context.Context, tenant string) ([]schema.Function, error) {
	if tenant == "" {
		return s.List(ctx)
	}
	if !schema.ValidTenant(tenant) {
		return nil, nil
	}
	return s.list(ctx, tenant+".*")
}

func (s *Store) list(ctx context.Context, keys string) ([]schema.Function, error) {
	decode := func(e jetstream.KeyValueEntry) (schema.Function, error) {
		fn, err := decodeEntry(e)
		if err != nil {
			return schema.Function{}, err
		}
		return *fn, nil
	}
	return bus.ListKV(ctx, s.kv, keys, decode, func(f schema.Function) string { return f.Name })
}

// Delete removes the global definition of name; a built-in of that name
// applies again. It returns an error wrapping ErrNotFound when there is
// none.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.DeleteFor(ctx, "", name)
}

// DeleteFor is Delete of tenant's own definition of name; a global one
// (or a built-in) of that name applies to the tenant again. Like Deploy it
// is compare-and-set, and a tenant's key leaves nothing behind (cas.go).
func (s *Store) DeleteFor(ctx context.Context, tenant, name string) error {
	key := Key(tenant, name)
	if !schema.ValidName(name) || (tenant != "" && !schema.ValidTenant(tenant)) {
		return fmt.Errorf("function %q: %w", key, ErrNotFound)
	}
	for range casAttempts {
		cur, err := s.last(ctx, key)
		if err != nil {
			return err
		}
		if !cur.live {
			return fmt.Errorf("function %q: %w", key, ErrNotFound)
		}
		err = s.remove(ctx, key, cur.rev, tenant != "")
		if !errors.Is(err, errConflict) {
			if err != nil {
				return fmt.Errorf("delete function %q: %w", key, err)
			}
			return nil
		}
	}
	return fmt.Errorf("delete function %q: %w", key, ErrConflict)
}

func (s *Store) entry(ctx context.Context, tenant, name string) (jetstream.KeyValueEntry, error) {
	key := Key(tenant, name)
	if !schema.ValidName(name) || (tenant != "" && !schema.ValidTenant(tenant)) {
		// Not a valid key either; no such function can exist.
		return nil, fmt.Errorf("function %q: %w", key, ErrNotFound)
	}
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("function %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get function %q: %w", key, err)
	}
	return entry, nil
}

// decodeEntry reads a stored definition back as strictly as Put wrote it;
// anything else is an *InvalidStoredError.
func decodeEntry(entry jetstream.KeyValueEntry) (*schema.Function, error) {
	fn, err := schema.DecodeFunction(entry.Value())
	if _, name, _ := splitKey(entry.Key()); err == nil && fn.Name != name {
		err = &schema.FieldError{Field: "name", Msg: fmt.Sprintf("is %q, not its key %q", fn.Name, entry.Key())}
	}
	if err != nil {
		return nil, &InvalidStoredError{Name: entry.Key(), Revision: entry.Revision(), Err: err}
	}
	return fn, nil
}
