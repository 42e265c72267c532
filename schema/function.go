package schema

// Function is a named definition jobs run under (docs/design.md §3).
type Function struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	// Warmup, when set, is run by the init of a prewarmed container before
	// its job arrives, so that the job's command starts with the image's
	// files already read (e.g. python3 -c "import numpy"). It runs as the
	// job would, with no job data; every process it starts is killed and
	// the sandbox wiped before the job. Skipped when the job is already
	// waiting.
	Warmup []string `json:"warmup,omitempty"`
	// Zygote, for a function whose command is [python3 SCRIPT], has the
	// init of each prewarmed single-use container start the interpreter
	// before the job arrives and hand it the job (docs/design.md §5.1);
	// false, or a job it cannot run as a plain exec would, runs the command
	// by a plain exec. Default false (opt-in); the built-in python sets it
	// (docs/design.md §8 has the measurements).
	Zygote *bool `json:"zygote,omitempty"`
	// Preload lists the modules the zygote imports before the job (at most
	// MaxPreload dotted module names); one that fails to import is skipped.
	Preload []string `json:"preload,omitempty"`
	// Prewarm is how many started single-use containers of the function's
	// template every worker that has run one of its jobs keeps at least
	// (docs/design.md §8), the way Modal's min_containers does: 0 to
	// MaxPrewarm, default 0 (the worker's --prewarm alone). A worker keeps
	// max(its --prewarm, Prewarm), at most its PrewarmMax, and keeps them
	// when idle too. Only an admin may set it above 0 (docs/design.md §3.1):
	// the containers hold the worker's memory for everyone.
	Prewarm int `json:"prewarm,omitempty"`
	// Env is the base environment of the job's process.
	Env map[string]string `json:"env,omitempty"`
	// CodeFile is where a job's code is written, relative to /work
	// (default main.py). Empty Code leaves it unwritten.
	CodeFile string `json:"code_file,omitempty"`
	// Limits are the defaults a job's limits override.
	Limits Limits `json:"limits,omitempty"`
	// TimeoutMS is the default timeout (default 30000).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Scopes caps what a job of this function may be granted; "*" is all.
	Scopes     []string `json:"scopes,omitempty"`
	Restricted *bool    `json:"restricted,omitempty"`
	Network    *bool    `json:"network,omitempty"`
	// Egress lists what the function's jobs may reach, and nothing else
	// (docs/design.md §12): host names, host:port, *.suffix[:port], and
	// for an admin's definition IP addresses and CIDRs. A job's own list
	// may narrow it. Not with network: true, nor single_use: false. Empty
	// is the same as none.
	Egress    []string `json:"egress,omitempty"`
	SingleUse *bool    `json:"single_use,omitempty"`
	// Quotas bound what each job of the function may store and start
	// through its gateway; zero fields take the defaults.
	Quotas Quotas `json:"quotas,omitzero"`
	// Pool routes the function's jobs (default "default").
	Pool    string `json:"pool,omitempty"`
	Runtime string `json:"runtime,omitempty"`
	// Echo is set on the built-in echo function only (never deployed):
	// its jobs run no container.
	Echo bool `json:"-"`
}

// Defaults applied when neither the job nor its function says otherwise.
const (
	DefaultPool        = "default"
	DefaultTimeoutMS   = 30_000
	DefaultMemoryMB    = 256
	DefaultCPUs        = 1.0
	DefaultPids        = 128
	DefaultOutputBytes = 256 << 10
	DefaultCodeFile    = "main.py"
	WorkDir            = "/work"
	ResultFile         = "out/result.json"
)

// Quotas bound what one job may make brig store and run on its behalf
// through its gateway (docs/design.md §13). A dict or queue gets the
// byte and count caps of the job that creates it, for good: a later job's
// quotas do not change an existing one. Going past any of them fails the
// call with error type QuotaExceeded. Zero means the default.
type Quotas struct {
	// DictMB caps the bytes of each dict the job creates (default 64).
	DictMB int64 `json:"dict_mb,omitempty"`
	// DictKeys caps the keys of each dict the job creates (default 100000).
	DictKeys int64 `json:"dict_keys,omitempty"`
	// QueueMB caps the bytes waiting in each queue the job creates
	// (default 64).
	QueueMB int64 `json:"queue_mb,omitempty"`
	// QueueMessages caps the values waiting in each queue the job creates
	// (default 100000).
	QueueMessages int64 `json:"queue_messages,omitempty"`
	// Resources caps how many dicts and queues one job may create
	// (default 8); opening existing ones is not counted.
	Resources int64 `json:"resources,omitempty"`
	// Calls caps the child jobs (function calls) one job may start
	// (default 64).
	Calls int64 `json:"calls,omitempty"`
}

// Defaults and ceilings of Quotas.
const (
	DefaultDictMB        = 64
	DefaultDictKeys      = 100_000
	DefaultQueueMB       = 64
	DefaultQueueMessages = 100_000
	DefaultResources     = 8
	DefaultCalls         = 64
	// MaxQuotaMB and MaxQuotaCount are the most a function may set a byte
	// quota (in MiB) and a key or message quota to.
	MaxQuotaMB    = 1024
	MaxQuotaCount = 10_000_000
	// MaxResources and MaxCalls are the most a function may set resources
	// and calls to.
	MaxResources = 64
	MaxCalls     = 1024
)

// WithDefaults fills the zero fields of q with the defaults.
func (q Quotas) WithDefaults() Quotas {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&q.DictMB, DefaultDictMB)
	def(&q.DictKeys, DefaultDictKeys)
	def(&q.QueueMB, DefaultQueueMB)
	def(&q.QueueMessages, DefaultQueueMessages)
	def(&q.Resources, DefaultResources)
	def(&q.Calls, DefaultCalls)
	return q
}

// Echo is the built-in echo function: a queue-only function that runs no
// container. Its result's stdout is the job's stdin and its output the
// job's args; it measures and tests brig's own path.
func Echo() Function {
	return Function{Name: "echo", Echo: true}
}

// PythonPreload is what the built-in python's zygote imports before its
// job: the standard library's common modules (none that reads the
// environment when imported, bar the start-up variables the zygote
// matches: docs/design.md §5.1).
func PythonPreload() []string {
	return []string{"abc", "argparse", "base64", "bisect", "collections", "contextlib", "copy",
		"csv", "dataclasses", "datetime", "decimal", "enum", "fractions", "functools", "glob",
		"hashlib", "heapq", "io", "itertools", "json", "logging", "math", "operator", "os",
		"pathlib", "random", "re", "shutil", "statistics", "string", "struct", "subprocess",
		"sys", "tempfile", "textwrap", "threading", "time", "traceback", "typing",
		"urllib.parse"}
}

// Python is the built-in python function.
func Python() Function {
	return Function{
		Name:    "python",
		Image:   "brig/python:latest",
		Command: []string{"python3", "/work/main.py"},
		Warmup:  []string{"python3", "-c", "pass"},
		Zygote:  Ptr(true),
		Preload: PythonPreload(),
		Env: map[string]string{
			"PATH":                    "/usr/local/bin:/usr/bin:/bin",
			"HOME":                    "/tmp",
			"LANG":                    "C.UTF-8",
			"PYTHONDONTWRITEBYTECODE": "1",
			"PYTHONUNBUFFERED":        "1",
		},
		Scopes: []string{"*"},
	}
}
