package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/brig-dev/brig/internal/pyclient"
)

// maxSocketPath keeps gateway socket paths inside sun_path.
const maxSocketPath = 100

// ErrStopped is returned by Start on a Runner that was stopped.
var ErrStopped = errors.New("sandbox runner stopped")

// Runner runs jobs in sandboxes and keeps its prewarm and reuse caches.
type Runner struct {
	cfg        Config
	log        *slog.Logger
	hostCPUs   int
	initBinary string
	pythonPath string
	sockDir    string
	// egressDir holds the egress sockets; resolvConf is the file sandboxes
	// with an egress list mount as /etc/resolv.conf.
	egressDir, resolvConf string
	egress                egressState
	warm                  *warmCache // nil without prewarming
	reuse                 *reuseCache

	mu      sync.Mutex
	started bool
	stopped bool
}

// New validates cfg and returns a Runner ready to Start.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, log: cfg.Logger}, nil
}

// Start learns the Docker host's CPUs, installs the init binary and the
// Python client that containers mount, prepares the directory of gateway
// sockets, removes containers an earlier run of this worker left behind
// and, with PrepareEgress, prepares the network of jobs with network:
// true. ctx bounds Start only; the caches live until Stop.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrStopped
	}
	if r.started {
		return nil
	}
	info, err := r.cfg.Engine.Info(ctx)
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	r.hostCPUs = max(info.NCPU, 1)
	if r.initBinary, err = installInit(r.cfg.InitBinary, r.cfg.RuntimeDir, r.log); err != nil {
		return err
	}
	if r.pythonPath, err = pyclient.Install(r.cfg.RuntimeDir); err != nil {
		return fmt.Errorf("python client: %w", err)
	}
	r.sockDir = filepath.Join(r.cfg.RuntimeDir, "gw")
	if err := os.MkdirAll(r.sockDir, 0o711); err != nil {
		return fmt.Errorf("gateway dir: %w", err)
	}
	if len(filepath.Join(r.sockDir, "0123456789abcdef.sock")) > maxSocketPath {
		return fmt.Errorf("runtime dir %s is too long for unix socket paths", r.cfg.RuntimeDir)
	}
	if err := r.prepareEgressFiles(); err != nil {
		return err
	}
	if err := r.removeLeftovers(ctx); err != nil {
		return err
	}
	if r.cfg.PrepareEgress {
		if _, err := r.egressNetwork(ctx); err != nil {
			return err
		}
	}
	base := context.WithoutCancel(ctx)
	if r.cfg.Prewarm > 0 {
		r.warm = newWarmCache(r, base)
	}
	r.reuse = newReuseCache(r, base)
	r.started = true
	r.log.Info("sandboxes ready", "init", r.initBinary, "prewarm", r.cfg.Prewarm)
	return nil
}

// Stop empties the caches (sandboxes still running a job are removed when
// it ends), then removes every container of this worker that is left: one
// whose creation an earlier, killed run of this worker had asked for may
// have appeared after Start's sweep. Call it once no job runs. Safe to
// call twice.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	started, stopped := r.started, r.stopped
	r.stopped = true
	r.mu.Unlock()
	if !started || stopped {
		return nil
	}
	r.warm.stop()
	r.reuse.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownBudget)
	defer cancel()
	return r.removeLeftovers(sctx)
}

// Sizes is how many prewarmed sandboxes wait, over all templates, and how
// many reused ones wait for their function's next job.
func (r *Runner) Sizes() (prewarmed, reusable int) {
	return r.warm.size(), r.reuse.size()
}

// removeLeftovers removes containers an earlier run of this worker left.
func (r *Runner) removeLeftovers(ctx context.Context) error {
	list, err := r.cfg.Engine.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelWorker+"="+r.cfg.WorkerID)),
	})
	if err != nil {
		return fmt.Errorf("list leftover containers: %w", err)
	}
	for _, c := range list {
		r.log.Info("removing leftover container", "container", c.ID, "job", c.Labels[LabelJob])
		r.removeContainer(ctx, c.ID)
	}
	return nil
}
