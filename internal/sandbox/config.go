package sandbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/brig-dev/brig/internal/egress/proxy"
	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/metrics"
)

// Labels every sandbox's container carries: a worker removes every
// container with its own id at start and stop (docs/design.md §5).
const (
	// LabelJob is the job's key, or what the container waits for
	// ("prewarmed", "reuse").
	LabelJob = "brig.job"
	// LabelWorker is the id of the worker whose Runner made it.
	LabelWorker = "brig.worker"
)

// Paths of brig's files in every sandbox.
const (
	// InitPath is brig's init binary.
	InitPath = "/run/brig/init"
	// PythonPath holds the in-container Python client, module brig.
	PythonPath = "/run/brig/python"
)

// Listener is a sandbox's gateway socket (a *gateway.Listener). It is
// opened bound to no job, bound to each job as the job is handed over,
// and reset between the jobs of a reused sandbox.
type Listener interface {
	// Bind ties the socket to the job the sandbox runs now.
	Bind(gateway.Binding)
	// Reset unbinds the socket from its finished job and ends every call
	// and connection that job made.
	Reset()
	// Close stops serving and removes the socket.
	Close() error
}

// EgressListener is the egress socket of a sandbox whose job has an egress
// list (a *proxy.Listener, docs/design.md §12): made with the sandbox,
// bound to its one job as the job is handed over, closed with it.
type EgressListener interface {
	Bind(proxy.Binding)
	Close() error
}

// Config of a Runner.
type Config struct {
	// Engine is the Docker Engine API client. Required.
	Engine Engine
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// WorkerID is the worker's id, which every container carries in
	// LabelWorker. Required.
	WorkerID string
	// Slots is how many jobs the worker runs at once; the reuse cache
	// keeps at most this many idle sandboxes. Required.
	Slots int
	// InitBinary is a static brig binary mounted read-only as every
	// container's init. Required.
	InitBinary string
	// RuntimeDir holds the copy of the init binary and the Python client
	// that containers mount, and the gateway sockets; on a containerised
	// worker it must be the same path on the host. Required.
	RuntimeDir string
	// Listen opens a gateway socket at path, bound to no job. Required.
	Listen func(ctx context.Context, path string) (Listener, error)
	// ListenEgress opens a sandbox's egress socket at path, bound to no
	// job. Without it, a job with an egress list fails (for a retry on
	// another worker).
	ListenEgress func(ctx context.Context, path string) (EgressListener, error)
	// Prewarm is how many started, single-use sandboxes the prewarm cache
	// keeps per template that jobs used in the last PrewarmIdle; 0 turns
	// prewarming off.
	Prewarm int
	// PrewarmMax caps the prewarmed sandboxes at once, over all templates,
	// those being made or removed included (default: Slots, and at least
	// Prewarm).
	PrewarmMax int
	// PrewarmIdle drops a template from the prewarm cache, and a sandbox
	// from the reuse cache, after no job used it for this long (default 5m).
	PrewarmIdle time.Duration
	// PrepareEgress makes Start prepare the network of jobs with network:
	// true, and fail if it cannot; by default the first such job prepares it.
	PrepareEgress bool
	// Metrics records container starts (nil: none).
	Metrics *metrics.Worker
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PrewarmMax == 0 {
		c.PrewarmMax = max(c.Slots, c.Prewarm)
	}
	if c.PrewarmIdle == 0 {
		c.PrewarmIdle = 5 * time.Minute
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Engine == nil:
		return errors.New("sandbox: Engine is required")
	case c.Listen == nil:
		return errors.New("sandbox: Listen is required")
	case c.WorkerID == "":
		return errors.New("sandbox: WorkerID is required")
	case c.Slots < 1:
		return errors.New("sandbox: Slots must be at least 1")
	case c.InitBinary == "":
		return errors.New("sandbox: InitBinary is required")
	case c.RuntimeDir == "":
		return errors.New("sandbox: RuntimeDir is required")
	case c.Prewarm < 0 || c.PrewarmMax < 0:
		return errors.New("sandbox: Prewarm and PrewarmMax must not be negative")
	case c.PrewarmIdle <= 0:
		return errors.New("sandbox: PrewarmIdle must be positive")
	}
	return nil
}
