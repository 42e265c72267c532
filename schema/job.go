package schema

import (
	"encoding/json"
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
