package dispatcher

import (
	"maps"
	"slices"

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
	return spec
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
