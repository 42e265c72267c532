package schema

import "time"

// Work is what a dispatcher publishes on brig.work.<pool> for a worker: the
// client's job plus everything the dispatcher resolved for it. Its Job.ID
// is the job's key (JobKey), not the client's id.
type Work struct {
	Version    int       `json:"version"`
	Job        Job       `json:"job"`
	Spec       RunSpec   `json:"spec"`
	Token      string    `json:"token,omitempty"`
	AcceptedAt time.Time `json:"accepted_at"`
	// SubmittedAt is when the submission was stored (its JetStream time).
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
}

// RunSpec is the resolved, fully defaulted way to run one job.
type RunSpec struct {
	Function string   `json:"function"`
	Image    string   `json:"image"`
	Command  []string `json:"command"`
	// Warmup is the function's warm-up command for prewarmed containers.
	Warmup []string `json:"warmup,omitempty"`
	// Zygote and Preload are the function's (docs/design.md §5.1).
	Zygote  bool     `json:"zygote,omitempty"`
	Preload []string `json:"preload,omitempty"`
	// Prewarm is the function's minimum of prewarmed containers of this
	// spec's template (docs/design.md §8).
	Prewarm int `json:"prewarm,omitempty"`
	// Env is the function's base environment; the job's env overrides it.
	Env map[string]string `json:"env,omitempty"`
	// CodeFile is where the job's code goes, relative to /work.
	CodeFile  string `json:"code_file,omitempty"`
	Pool      string `json:"pool"`
	Limits    Limits `json:"limits"`
	TimeoutMS int64  `json:"timeout_ms"`
	Network   bool   `json:"network"`
	// Egress is the effective egress list in its normal form
	// (docs/design.md §12): the job's if it gave one, else its function's.
	// When set, Network is false and SingleUse true.
	Egress     []string `json:"egress,omitempty"`
	Runtime    string   `json:"runtime"`
	SingleUse  bool     `json:"single_use"`
	Restricted bool     `json:"restricted"`
	Scopes     []string `json:"scopes,omitempty"`
	Retries    int      `json:"retries,omitempty"`
	// Quotas are the function's quotas with the defaults filled in.
	Quotas Quotas `json:"quotas,omitzero"`
	// Echo marks a queue-only job (the built-in echo function): no
	// container; its result's stdout is the job's stdin and its output the
	// job's args.
	Echo bool `json:"echo,omitempty"`
}

// Timeout returns the spec's timeout as a duration.
func (s RunSpec) Timeout() time.Duration { return time.Duration(s.TimeoutMS) * time.Millisecond }
