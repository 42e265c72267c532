package schema

import (
	"encoding/json"
	"math"
	"time"
)

// Version is the wire-schema version carried by Work messages.
const Version = 1

// Runtimes a job or function may ask for.
const (
	RuntimeRunc  = "runc"
	RuntimeRunsc = "runsc"
)

// Job is what a client publishes on brig.submit.<function>.
//
// Pointer fields distinguish "not given" from the zero value, so that a
// function's defaults apply only where the job is silent.
type Job struct {
	// ID is client-chosen and unique: the dedup key and part of every subject
	// the job's events use. 1–64 characters of [A-Za-z0-9_-].
	ID string `json:"id"`
	// Function names the function definition that runs the job.
	Function string `json:"function"`
	// Code is the source for code-running functions (python: /work/main.py).
	Code string `json:"code,omitempty"`
	// Args is any JSON value, written to /work/args.json.
	Args json.RawMessage `json:"args,omitempty"`
	// Stdin is fed to the job's process.
	Stdin string `json:"stdin,omitempty"`
	// Files maps relative paths inside /work to their content.
	Files map[string]string `json:"files,omitempty"`
	// Env is added to the job's environment.
	Env map[string]string `json:"env,omitempty"`
	// ReplyTo, when set outside brig.events.>, receives a core-NATS copy of
	// every event.
	ReplyTo string `json:"reply_to,omitempty"`
	// TimeoutMS is the job's time limit in milliseconds; 0 means the
	// function's default. Its JSON name, timeout, predates the unit
	// suffix and stays for the wire's sake.
	TimeoutMS int64 `json:"timeout,omitempty"`
	// Limits override the function's default limits field by field.
	Limits *Limits `json:"limits,omitempty"`
	// Network asks for a network (default false).
	Network *bool `json:"network,omitempty"`
	// Egress narrows what the job may reach to a part of its function's
	// egress list, or, on a function with network: true, to this list
	// (docs/design.md §12). Empty or absent: the function's list. Not with
	// network: true, nor single_use: false.
	Egress []string `json:"egress,omitempty"`
	// Restricted jobs get a credential with no scopes (default true).
	Restricted *bool `json:"restricted,omitempty"`
	// Scopes requested; the granted scope is the intersection with what the
	// function allows.
	Scopes []string `json:"scopes,omitempty"`
	// SingleUse asks for a fresh container (default true).
	SingleUse *bool `json:"single_use,omitempty"`
	// Runtime is runc (default) or runsc (gVisor).
	Runtime string `json:"runtime,omitempty"`
	// Retries is how many more attempts the job gets when its code fails.
	Retries int `json:"retries,omitempty"`
}

// SetTimeout sets the job's time limit (TimeoutMS) to d. The wire counts
// whole milliseconds, so d is rounded up to the next one: a limit of
// 1500µs becomes 2 ms, never 1 ms, and a positive d never becomes 0 (the
// function's default). d == 0 asks for the function's default. A
// negative d is kept negative, so that Validate refuses it rather than
// reading it as the default; so is a d past MaxTimeoutMS (1 h), which
// Validate refuses too.
func (j *Job) SetTimeout(d time.Duration) {
	ms := d.Milliseconds() // truncates toward zero
	switch {
	case d > 0 && d%time.Millisecond != 0:
		ms++
	case d < 0 && ms == 0:
		ms = -1
	}
	j.TimeoutMS = ms
}

// Timeout returns the job's time limit as a time.Duration; 0 means the
// function's default. A TimeoutMS beyond what a Duration holds (about 292
// years; Validate allows 1 h) gives the largest or smallest Duration.
func (j *Job) Timeout() time.Duration {
	const most = int64(math.MaxInt64 / time.Millisecond)
	switch {
	case j.TimeoutMS > most:
		return math.MaxInt64
	case j.TimeoutMS < -most:
		return math.MinInt64
	}
	return time.Duration(j.TimeoutMS) * time.Millisecond
}

// Limits are a container's hard resource limits. Zero means "default".
type Limits struct {
	MemoryMB    int64   `json:"memory_mb,omitempty"`
	CPUs        float64 `json:"cpus,omitempty"`
	Pids        int64   `json:"pids,omitempty"`
	OutputBytes int64   `json:"output_bytes,omitempty"`
}

// Bool returns *p, or def when p is nil.
func Bool(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// Ptr returns a pointer to v; handy for the optional fields of Job.
func Ptr[T any](v T) *T { return &v }
