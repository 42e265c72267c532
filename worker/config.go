package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/egress/proxy"
	"github.com/brig-dev/brig/internal/metrics"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// Config of a Worker.
type Config struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Docker is the Engine API client that runs the jobs' sandboxes.
	// Required.
	Docker sandbox.Engine
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// ID names this worker; containers carry it so that a restarted worker
	// with the same ID removes what it left behind (default: hostname).
	ID string
	// Pools this worker serves (default ["default"]).
	Pools []string
	// Slots is how many jobs run at once (default: 2 × CPUs).
	Slots int
	// InitBinary is a static brig binary mounted read-only as every
	// container's init (default: this executable).
	InitBinary string
	// RuntimeDir holds the copy of the init binary that containers mount; on
	// a containerised worker it must be the same path on the host
	// (default: $TMPDIR/brig-<uid>).
	RuntimeDir string
	// PollWait bounds one fetch for work (default 1s).
	PollWait time.Duration
	// AckWait is how long a job may go without a progress signal before
	// JetStream redelivers it (default 30s; the worker signals every third).
	AckWait time.Duration
	// MaxDeliver is how often a job is tried on platform failures before it
	// ends in a terminal Infrastructure error (default 5). The pool's
	// consumer allows MaxDeliver + schema.MaxRetries deliveries, so that a
	// job's own retries come on top; a job whose workers keep dying is ended
	// by a dispatcher when JetStream gives up on it.
	MaxDeliver int
	// Backoff is the first retry delay on platform failures, doubled per
	// attempt (default 1s).
	Backoff time.Duration
	// Streams sizes the streams this worker ensures.
	Streams bus.Config
	// Prewarm is how many started, single-use sandboxes the worker keeps
	// ready per container template (image, runtime, limits, network) that
	// jobs used in the last PrewarmIdle; 0 turns prewarming off. A
	// prewarmed sandbox still serves exactly one job.
	Prewarm int
	// PrewarmMax caps the prewarmed sandboxes this worker holds at once,
	// over all templates, those being made or removed included (default:
	// Slots, and at least Prewarm). The kept templates' minimums (Prewarm,
	// or a function's own prewarm when larger) fit in it: a job of another
	// template evicts the least recently used ones (those without a
	// function minimum first) and their sandboxes are removed, so that
	// clients varying their limits cannot make the worker hold idle
	// containers without end (docs/design.md §5). The cap never fails a
	// job: one without a ready sandbox starts cold.
	PrewarmMax int
	// PrewarmIdle drops a template from the prewarm cache after no job used
	// it for this long, and a sandbox from the reuse cache after it served
	// no job for this long (default 5m).
	PrewarmIdle time.Duration
	// Labels describe the worker to operators (brig status), e.g. zone=a.
	Labels map[string]string
	// PoolLimits caps, per pool, how many of its jobs run at once across
	// every worker of the pool (the pool consumer's MaxAckPending; workers
	// of one pool should agree, the last one started wins). 0 or absent:
	// no cap beyond each worker's slots.
	PoolLimits map[string]int
	// Metrics records the worker's Prometheus metrics (nil: none).
	Metrics *metrics.Worker
	// PrepareEgress makes Start prepare the network of jobs with network:
	// true (the brig-egress Docker network and the host firewall rules that
	// keep it off the host, NATS and private ranges; see internal/egress)
	// and fail if it cannot. By default (false) the first such job prepares
	// it. Either way, running such jobs needs root in the Docker host's
	// network namespace, iptables, and Docker as the Engine API client.
	PrepareEgress bool
	// Egress configures the filtering proxy of jobs with an egress list
	// (docs/design.md §12): its resolver and which addresses count as
	// reachable (Policy.Private: an admin's private ranges; Policy.TestPublic
	// is for tests only). The zero value resolves with the host's resolver
	// and reaches public addresses only.
	Egress proxy.Config
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ID == "" {
		c.ID, _ = os.Hostname()
	}
	if len(c.Pools) == 0 {
		c.Pools = []string{schema.DefaultPool}
	}
	if c.Slots == 0 {
		c.Slots = 2 * runtime.NumCPU()
	}
	if c.InitBinary == "" {
		c.InitBinary, _ = os.Executable()
	}
	if c.RuntimeDir == "" {
		c.RuntimeDir = filepath.Join(os.TempDir(), fmt.Sprintf("brig-%d", os.Getuid()))
	}
	if c.PollWait == 0 {
		c.PollWait = time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.Backoff == 0 {
		c.Backoff = time.Second
	}
	if c.PrewarmMax == 0 {
		c.PrewarmMax = max(c.Slots, c.Prewarm)
	}
	if c.PrewarmIdle == 0 {
		c.PrewarmIdle = 5 * time.Minute
	}
	return c
}

// validate checks c; needDocker: the worker runs its sandboxes on
// c.Docker (every worker but a test's).
func (c Config) validate(needDocker bool) error {
	switch {
	case c.Conn == nil:
		return errors.New("worker: Conn is required")
	case needDocker && c.Docker == nil:
		return errors.New("worker: Docker is required")
	case !schema.ValidName(c.ID):
		return fmt.Errorf("worker: ID %q must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}", c.ID)
	case c.Slots < 1:
		return errors.New("worker: Slots must be at least 1")
	case c.InitBinary == "":
		return errors.New("worker: InitBinary is required")
	case c.MaxDeliver < 1:
		return errors.New("worker: MaxDeliver must be at least 1")
	case c.AckWait < time.Second:
		return errors.New("worker: AckWait must be at least 1s")
	case c.Prewarm < 0 || c.PrewarmMax < 0:
		return errors.New("worker: Prewarm and PrewarmMax must not be negative")
	case c.PrewarmIdle < 0:
		return errors.New("worker: PrewarmIdle must not be negative")
	}
	for _, p := range c.Pools {
		if !schema.ValidName(p) {
			return fmt.Errorf("worker: pool %q is not a valid name", p)
		}
	}
	for p, n := range c.PoolLimits {
		if !schema.ValidName(p) || n < 0 {
			return fmt.Errorf("worker: pool limit %s=%d: want a pool name and a limit ≥ 0", p, n)
		}
	}
	for k, v := range c.Labels {
		if k == "" || len(k) > 64 || len(v) > 256 {
			return fmt.Errorf("worker: label %q=%q: keys are 1-64 bytes, values up to 256", k, v)
		}
	}
	return nil
}
