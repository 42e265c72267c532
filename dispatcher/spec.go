package dispatcher

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/schema"
)

// buildSpec merges a function's defaults with what the job asks for.
func buildSpec(job *schema.Job, fn *schema.Function) schema.RunSpec {
	spec := schema.RunSpec{
		Function:   fn.Name,
		Image:      fn.Image,
		Command:    slices.Clone(fn.Command),
		Warmup:     slices.Clone(fn.Warmup),
		Zygote:     schema.Bool(fn.Zygote, false),
		Preload:    slices.Clone(fn.Preload),
		Prewarm:    fn.Prewarm,
		Env:        maps.Clone(fn.Env),
		CodeFile:   orDefault(fn.CodeFile, schema.DefaultCodeFile),
		Pool:       orDefault(fn.Pool, schema.DefaultPool),
		Limits:     mergeLimits(fn.Limits, job.Limits),
		TimeoutMS:  firstNonZero(job.TimeoutMS, fn.TimeoutMS, schema.DefaultTimeoutMS),
		Network:    schema.Bool(job.Network, schema.Bool(fn.Network, false)),
		Runtime:    orDefault(job.Runtime, orDefault(fn.Runtime, schema.RuntimeRunc)),
		SingleUse:  schema.Bool(job.SingleUse, schema.Bool(fn.SingleUse, true)),
		Restricted: schema.Bool(job.Restricted, schema.Bool(fn.Restricted, true)),
		Retries:    job.Retries,
		Quotas:     fn.Quotas.WithDefaults(),
		Echo:       fn.Echo,
	}
	if !spec.Restricted {
		spec.Scopes = grantScopes(job.Scopes, fn.Scopes)
	}
	if spec.Egress = effectiveEgress(job, fn); len(spec.Egress) > 0 {
		// A sandbox with an egress list has no network of its own and
		// lives for one job (docs/design.md §12).
		spec.Network, spec.SingleUse = false, true
	}
	return spec
}

// effectiveEgress is the job's egress list if it gave one, else its
// function's, in normal form (allow.List.Entries). A list that does not
// parse is kept as it is, for the spec's validation to refuse; whether
// the job may have it at all is checkEgress's.
func effectiveEgress(job *schema.Job, fn *schema.Function) []string {
	entries := fn.Egress
	if len(job.Egress) > 0 {
		entries = job.Egress
	}
	if len(entries) == 0 {
		return nil
	}
	list, err := allow.Parse(entries, true)
	if err != nil {
		return slices.Clone(entries)
	}
	return list.Entries()
}

// checkEgress refuses a job that asks for more reach than its function
// gives (docs/design.md §12), naming the job's field: an egress list
// outside the function's list, an egress list on a function with neither
// a list nor network: true, network: true on a function with a list, and
// single_use: false on a job that gets its function's list. A job's list
// on a function with network: true narrows the internet to that list.
func checkEgress(job *schema.Job, fn *schema.Function) error {
	fnList, err := allow.Parse(fn.Egress, true)
	if err != nil {
		return &schema.FieldError{Field: "egress", Msg: fmt.Sprintf("function %q has an invalid egress list: %v", fn.Name, err), Err: err}
	}
	switch {
	case fnList.Len() > 0 && schema.Bool(job.Network, false):
		return &schema.FieldError{Field: "network", Msg: fmt.Sprintf(
			"true would widen function %q's egress list to the whole internet; a job may narrow the list (egress), never widen it", fn.Name)}
	case fnList.Len() > 0 && len(job.Egress) == 0 && !schema.Bool(job.SingleUse, true):
		return &schema.FieldError{Field: "single_use", Msg: fmt.Sprintf("%s (function %q has an egress list)", schema.EgressNeedsSingleUse, fn.Name)}
	case len(job.Egress) == 0:
		return nil
	case fnList.Len() == 0 && !schema.Bool(fn.Network, false):
		// As a job may ask for network: true, it may ask for less: names
		// only, as on a tenant's own function (addresses are an admin's).
		if _, err := allow.Parse(job.Egress, false); err != nil {
			var admin *allow.AdminOnlyError
			if errors.As(err, &admin) {
				return &schema.FieldError{Field: "egress", Msg: fmt.Sprintf(
					"function %q has no egress list: a job's own list may name hosts, not addresses (%v)", fn.Name, err), Err: err}
			}
			return &schema.FieldError{Field: "egress", Msg: err.Error(), Err: err}
		}
		return nil
	case fnList.Len() == 0:
		return nil // network: true: any list narrows it
	}
	for i, e := range job.Egress {
		if one, err := allow.Parse([]string{e}, true); err != nil || !one.Within(fnList) {
			return &schema.FieldError{Field: fmt.Sprintf("egress[%d]", i), Msg: fmt.Sprintf(
				"%q is not within function %q's egress list; a job may narrow the list, never widen it", e, fn.Name)}
		}
	}
	return nil
}

// grantScopes is the job's request intersected with what the function allows.
func grantScopes(requested, allowed []string) []string {
	var granted []string
	for _, s := range requested {
		if slices.Contains(allowed, "*") || slices.Contains(allowed, s) {
			granted = append(granted, s)
		}
	}
	return granted
}

func mergeLimits(fn schema.Limits, job *schema.Limits) schema.Limits {
	l := schema.Limits{
		MemoryMB:    firstNonZero(fn.MemoryMB, schema.DefaultMemoryMB),
		CPUs:        firstNonZero(fn.CPUs, schema.DefaultCPUs),
		Pids:        firstNonZero(fn.Pids, schema.DefaultPids),
		OutputBytes: firstNonZero(fn.OutputBytes, schema.DefaultOutputBytes),
	}
	if job != nil {
		l.MemoryMB = firstNonZero(job.MemoryMB, l.MemoryMB)
		l.CPUs = firstNonZero(job.CPUs, l.CPUs)
		l.Pids = firstNonZero(job.Pids, l.Pids)
		l.OutputBytes = firstNonZero(job.OutputBytes, l.OutputBytes)
	}
	return l
}

func firstNonZero[T int64 | float64](vs ...T) T {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
