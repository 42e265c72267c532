// Package functions keeps deployed function definitions (docs/design.md §3) in the
// JetStream KV bucket BRIG_FUNCTIONS, keyed by function name, and reads
// them from the YAML files `brig deploy` takes.
//
// The bucket is the truth: nothing is cached, so a deploy takes effect for
// the next job a dispatcher resolves, on every dispatcher, without a
// restart.
//
//	fns, err := functions.ParseYAML(data) // validated, errors name the field
//	store, err := functions.Open(ctx, js, 0)
//	for _, fn := range fns {
//		rev, err := store.Put(ctx, fn)
//	}
//
// A dispatcher resolves names through a Resolver: deployed definitions
// first, then its built-ins. A stored value that Put would not have
// written (by hand, or by a brig whose schema differs) is an
// *InvalidStoredError: permanent, so the dispatcher ends the job at once
// instead of retrying.
package functions
