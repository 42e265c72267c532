// Package functions keeps deployed function definitions (docs/design.md §3) in the
// JetStream KV bucket BRIG_FUNCTIONS, and reads them from the YAML files
// `brig deploy` takes. A global function, which every tenant sees, is
// keyed by its name; a tenant's own (`brig deploy --tenant T`) by
// <tenant>.<name> (Key, docs/design.md §10.3).
//
// The bucket is the truth: nothing is cached, so a deploy takes effect for
// the next job a dispatcher resolves, on every dispatcher, without a
// restart.
//
//	fns, err := functions.ParseYAML(data) // validated, errors name the field
//	store, err := functions.Open(ctx, js, 0)
//	for _, fn := range fns {
//		rev, changed, err := store.Deploy(ctx, tenant, fn) // tenant "": global
//	}
//
// A definition the same as the stored one (its normalised encoding, byte
// for byte) is not written again: the key keeps its revision. Entries
// lists every key with its revision and time, invalid ones included;
// Visible narrows that to what one tenant's jobs resolve; MarshalYAML
// prints a definition as ParseYAML reads it back.
//
// Function resolution lives here too, built-ins included. A dispatcher
// resolves names through a Resolver: KVResolver looks, for a job of
// tenant T, at T's own definition first, then the global one, then the
// built-ins (BuiltinFunction); Builtin knows the built-ins only.
//
//	r, err := functions.OpenKVResolver(ctx, nc, replicas)
//	fn, err := r.Resolve(ctx, tenant, "python") // errors.Is(err, functions.ErrNotFound): no such function
//
// A stored value that Put would not have written (by hand, or by a brig
// whose schema differs) is an *InvalidStoredError: permanent, so the
// dispatcher ends the job at once instead of retrying.
package functions
