package schema

// Function is a named definition jobs run under (DESIGN §3).
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
	SingleUse  *bool    `json:"single_use,omitempty"`
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

// Echo is the built-in echo function: a queue-only function that runs no
// container. Its result's stdout is the job's stdin and its output the
// job's args; it measures and tests brig's own path.
func Echo() Function {
	return Function{Name: "echo", Echo: true}
}

// Python is the built-in python function.
func Python() Function {
	return Function{
		Name:    "python",
		Image:   "brig/python:latest",
		Command: []string{"python3", "/work/main.py"},
		Warmup:  []string{"python3", "-c", "pass"},
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
