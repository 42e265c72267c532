package functions

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/schema"
)

// A tenant's own functions, deployed with its own credential through the
// dispatchers' functions service (docs/design.md §3.1). An admin's deploy
// (`brig deploy --tenant T`) is not bound by any of this.

// Bounds of a tenant's own functions (docs/design.md §3.1).
const (
	// MaxTenantFunctions bounds the functions one tenant may own.
	MaxTenantFunctions = 100
	// MaxTenantFunctionBytes bounds the sum of their stored encodings, so
	// that one tenant's list fits in a NATS message with room to spare
	// (schema.MinServerPayload) and takes a bounded share of the bucket.
	MaxTenantFunctionBytes = 512 << 10
)

var (
	// ErrForbidden is matched by a *ForbiddenError.
	ErrForbidden = errors.New("only an admin may do that")
	// ErrQuotaExceeded: the tenant owns MaxTenantFunctions functions, or
	// MaxTenantFunctionBytes of them.
	ErrQuotaExceeded = errors.New("tenant's functions quota exceeded")
)

// ForbiddenError is a request only an admin may make: a field of a
// definition that only an admin may set, or a global or built-in function
// to change. It matches ErrForbidden.
type ForbiddenError struct {
	// Field names the field to blame ("" when none is).
	Field string
	Msg   string
}

func (e *ForbiddenError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Is makes the error match ErrForbidden.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// DeployOwn is Deploy of tenant's own fn, as the tenant itself may make
// it: fn is valid (else a *schema.FieldError), sets no field only an admin
// may set (else a *ForbiddenError, see AdminOnly), and keeps the tenant
// within MaxTenantFunctions and MaxTenantFunctionBytes (else an error
// matching ErrQuotaExceeded). The quota is checked before the write, so
// deploys of new names at once may each pass it: they overshoot it by at
// most the requests in hand.
func (s *Store) DeployOwn(ctx context.Context, tenant string, fn schema.Function) (Entry, bool, error) {
	data, err := Encode(fn)
	if err != nil {
		return Entry{}, false, err
	}
	vetted, err := s.vettedImages(ctx)
	if err != nil {
		return Entry{}, false, err
	}
	if err := AdminOnly(fn, vetted); err != nil {
		return Entry{}, false, err
	}
	if err := s.checkQuota(ctx, tenant, fn.Name, len(data)); err != nil {
		return Entry{}, false, err
	}
	_, changed, err := s.Deploy(ctx, tenant, fn)
	if err != nil {
		return Entry{}, false, err
	}
	e, err := s.EntryFor(ctx, tenant, fn.Name)
	return e, changed, err
}

// AdminOnly refuses the fields of fn that only an admin may set, for
// safety: network (a way out of the machine), an IP address or CIDR entry
// in egress (a tenant names hosts, which the proxy resolves and checks;
// an address is the admin's to open), a pool other than the
// default (which workers, with what hardware), a runtime, a prewarm above 0
// (started containers every worker that ran the function keeps for it,
// out of the memory and PrewarmMax all tenants share), quotas above the
// defaults (what brig stores for each job), and an image that is not in
// vetted (the images of the built-in and global functions, which an admin
// chose: a tenant must not run whatever image the workers hold, brig's own
// infrastructure images included). Limits need no check: a job may set
// the same ones itself (schema.Limits.Validate bounds both).
func AdminOnly(fn schema.Function, vetted map[string]bool) error {
	forbid := func(field, format string, args ...any) error {
		return &ForbiddenError{Field: field, Msg: fmt.Sprintf(format, args...) + "; only an admin may set it"}
	}
	if err := egressNamesOnly(fn.Egress); err != nil {
		return err
	}
	switch {
	case schema.Bool(fn.Network, false):
		return forbid("network", "true gives the function's jobs a network")
	case fn.Pool != "" && fn.Pool != schema.DefaultPool:
		return forbid("pool", "is %q, not %q", fn.Pool, schema.DefaultPool)
	case fn.Runtime != "":
		return forbid("runtime", "is %q", fn.Runtime)
	case fn.Prewarm > 0:
		return forbid("prewarm", "%d keeps started containers on every worker that ran the function, for everyone's memory", fn.Prewarm)
	case !vetted[fn.Image]:
		return forbid("image", "%q is not the image of a built-in or global function", fn.Image)
	}
	return quotasAtMostDefault(fn.Quotas, forbid)
}

// egressNamesOnly refuses an IP address or CIDR entry in a tenant's egress
// list (docs/design.md §12): a *ForbiddenError on field egress naming the
// entry. Any other error of allow.Parse is the definition's validation's
// (schema.Function.Validate), and is returned as it is.
func egressNamesOnly(entries []string) error {
	_, err := allow.Parse(entries, false)
	var adminOnly *allow.AdminOnlyError
	if errors.As(err, &adminOnly) {
		return &ForbiddenError{Field: "egress", Msg: fmt.Sprintf("entry %d, %q, is an IP address or CIDR; name the host instead "+
			"(only an admin may list addresses)", adminOnly.Index, adminOnly.Entry)}
	}
	return err
}

// quotasAtMostDefault refuses a quota above its default.
func quotasAtMostDefault(q schema.Quotas, forbid func(field, format string, args ...any) error) error {
	def := schema.Quotas{}.WithDefaults()
	for _, c := range []struct {
		field    string
		v, limit int64
	}{
		{"dict_mb", q.DictMB, def.DictMB},
		{"dict_keys", q.DictKeys, def.DictKeys},
		{"queue_mb", q.QueueMB, def.QueueMB},
		{"queue_messages", q.QueueMessages, def.QueueMessages},
		{"resources", q.Resources, def.Resources},
		{"calls", q.Calls, def.Calls},
	} {
		if c.v > c.limit {
			return forbid("quotas."+c.field, "%d is above the default %d", c.v, c.limit)
		}
	}
	return nil
}

// vettedImages is the set of the images of the built-in functions and the
// valid global ones.
func (s *Store) vettedImages(ctx context.Context) (map[string]bool, error) {
	global, err := bus.ListKV(ctx, s.kv, "*", decodeEntryOf, Entry.Key)
	if err != nil {
		return nil, err
	}
	vetted := map[string]bool{}
	for _, e := range append(global, Builtins()...) {
		if e.Err == nil && e.Function.Image != "" {
			vetted[e.Function.Image] = true
		}
	}
	return vetted, nil
}

// checkQuota refuses a deploy of tenant's name, size bytes encoded, that
// would take the tenant past MaxTenantFunctions or MaxTenantFunctionBytes;
// replacing a function counts only the difference.
func (s *Store) checkQuota(ctx context.Context, tenant, name string, size int) error {
	type stored struct {
		name string
		size int
	}
	decode := func(kve jetstream.KeyValueEntry) (stored, error) {
		_, n, _ := splitKey(kve.Key())
		return stored{name: n, size: len(kve.Value())}, nil
	}
	own, err := bus.ListKV(ctx, s.kv, tenant+".*", decode, func(s stored) string { return s.name })
	if err != nil {
		return err
	}
	count, total := 1, size
	for _, o := range own {
		if o.name != name {
			count, total = count+1, total+o.size
		}
	}
	switch {
	case count > MaxTenantFunctions:
		return fmt.Errorf("function %q: tenant %s owns %d functions, at most %d allowed (MaxTenantFunctions): %w",
			name, tenant, count-1, MaxTenantFunctions, ErrQuotaExceeded)
	case total > MaxTenantFunctionBytes:
		return fmt.Errorf("function %q: tenant %s's functions would take %d bytes, at most %d allowed (MaxTenantFunctionBytes): %w",
			name, tenant, total, MaxTenantFunctionBytes, ErrQuotaExceeded)
	}
	return nil
}
