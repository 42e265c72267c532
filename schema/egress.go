package schema

import (
	"errors"
	"fmt"
	"slices"

	"github.com/brig-dev/brig/internal/egress/allow"
)

// Bounds of an egress list (docs/design.md §12): the allowlist parser's.
const (
	// MaxEgress is the most entries one function's or job's egress list
	// may have.
	MaxEgress = allow.MaxEntries
	// MaxEgressEntryLen is the longest entry, in bytes: "*." before a
	// host name of 253 and ":65535" after it.
	MaxEgressEntryLen = allow.MaxEntryLen
)

// EgressNeedsSingleUse is why single_use: false is refused with an egress
// list: the worker binds its filtering proxy to one sandbox, and brig's
// init starts the relay before the job, so neither outlives its job.
const EgressNeedsSingleUse = "false is not available with egress: a job with an egress list runs in a fresh sandbox, " +
	"whose egress proxy and relay are its own"

// validateEgress checks the syntax of an egress list named field. IP and
// CIDR entries parse: who may name an address is decided where the list
// comes from (functions.AdminOnly for a tenant's own function, the
// dispatcher's check that a job's list stays within its function's). An
// empty list is no list. It returns the parsed list.
func validateEgress(field string, entries []string) (*allow.List, error) {
	if len(entries) > MaxEgress {
		return nil, fieldErr(field, "has %d entries, at most %d allowed", len(entries), MaxEgress)
	}
	list, err := allow.Parse(entries, true)
	var entryErr *allow.EntryError
	switch {
	case errors.As(err, &entryErr):
		return nil, &FieldError{Field: fmt.Sprintf("%s[%d]", field, entryErr.Index),
			Msg: fmt.Sprintf("%q: %s", clip(entryErr.Entry), entryErr.Reason), Err: err}
	case err != nil:
		return nil, &FieldError{Field: field, Msg: err.Error(), Err: err}
	}
	return list, nil
}

// validateEgressMode refuses what a function or job with a non-empty
// egress list must not also say: network: true (the whole public internet,
// where egress is exactly the reach it lists) and single_use: false.
func validateEgressMode(egress []string, network, singleUse *bool) error {
	switch {
	case len(egress) == 0:
		return nil
	case Bool(network, false):
		return fieldErr("egress", "must be empty with network: true, which opens the whole public internet; "+
			"an egress list is exactly the reach it names, so leave network out")
	case !Bool(singleUse, true):
		return fieldErr("single_use", EgressNeedsSingleUse)
	}
	return nil
}

// validateEgress checks a resolved spec's list: valid, in the normal form
// the dispatcher writes (allow.List.Entries), and only with what a
// sandbox with an egress list runs as (no network, single-use).
func (s *RunSpec) validateEgress() error {
	if len(s.Egress) == 0 {
		return nil
	}
	list, err := validateEgress("spec.egress", s.Egress)
	if err != nil {
		return err
	}
	switch {
	case !slices.Equal(list.Entries(), s.Egress):
		return fieldErr("spec.egress", "is not in its normal form (sorted, unique, lower case): %q", list.Entries())
	case s.Network:
		return fieldErr("spec.network", "must be false with an egress list")
	case !s.SingleUse:
		return fieldErr("single_use", EgressNeedsSingleUse)
	}
	return nil
}
