package worker

import (
	"context"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/sandbox"
)

// Sandboxes run jobs for the worker: a *sandbox.Runner on the Docker
// daemon. The worker decides what runs, settles it with JetStream and
// reports it; Sandboxes only run it.
type Sandboxes interface {
	// Run runs one job and returns how it ended; a *sandbox.Failure ends
	// the job, any other error is brig's own, for a retry. A job that ctx
	// ended once it had its sandbox is an Outcome, Interrupted by ctx's
	// cause, with the output it wrote until then.
	Run(ctx context.Context, job *sandbox.Job) (*sandbox.Outcome, error)
	// Sizes is how many prewarmed and reusable sandboxes wait.
	Sizes() (prewarmed, reusable int)
	// Stop empties the caches and removes what is left of this worker's
	// containers. No job runs by then.
	Stop(ctx context.Context) error
}

// startRunner makes and starts the worker's sandbox.Runner. Its sockets
// are served by the worker's gateway, which Start sets up after it and
// before any job runs.
func (w *Worker) startRunner(ctx context.Context) (Sandboxes, error) {
	r, err := sandbox.New(sandbox.Config{
		Engine:        w.cfg.Docker,
		Logger:        w.log,
		WorkerID:      w.cfg.ID,
		Slots:         w.cfg.Slots,
		InitBinary:    w.cfg.InitBinary,
		RuntimeDir:    w.cfg.RuntimeDir,
		Listen:        w.listen,
		Prewarm:       w.cfg.Prewarm,
		PrewarmMax:    w.cfg.PrewarmMax,
		PrewarmIdle:   w.cfg.PrewarmIdle,
		PrepareEgress: w.cfg.PrepareEgress,
		Metrics:       w.cfg.Metrics,
	})
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// listen opens a sandbox's gateway socket, bound to no job until the
// sandbox is handed one.
func (w *Worker) listen(ctx context.Context, path string) (sandbox.Listener, error) {
	return w.gw.Listen(ctx, path, gateway.Binding{})
}
