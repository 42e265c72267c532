package worker

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/egress/proxy"
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
	pcfg := w.cfg.Egress
	if pcfg.Logger == nil {
		pcfg.Logger = w.log
	}
	if pcfg.Blocked == nil {
		pcfg.Blocked = natsAddrs(w.cfg.Conn)
	}
	egressProxy, err := proxy.New(pcfg)
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	r, err := sandbox.New(sandbox.Config{
		Engine:     w.cfg.Docker,
		Logger:     w.log,
		WorkerID:   w.cfg.ID,
		Slots:      w.cfg.Slots,
		InitBinary: w.cfg.InitBinary,
		RuntimeDir: w.cfg.RuntimeDir,
		Listen:     w.listen,
		ListenEgress: func(ctx context.Context, path string) (sandbox.EgressListener, error) {
			return egressProxy.Listen(ctx, path)
		},
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

// natsAddrs lists the addresses of the NATS servers nc knows, which no
// job's egress list may reach (docs/design.md §12.1): the one it is
// connected to, and every server URL, given or discovered, whose host is
// an address. A server named by a host name is covered while connected.
func natsAddrs(nc *nats.Conn) func() []netip.Addr {
	return func() []netip.Addr {
		var out []netip.Addr
		if ap, err := netip.ParseAddrPort(nc.ConnectedAddr()); err == nil {
			out = append(out, ap.Addr().Unmap())
		}
		for _, s := range append(nc.Servers(), nc.DiscoveredServers()...) {
			if u, err := url.Parse(s); err == nil {
				if a, err := netip.ParseAddr(u.Hostname()); err == nil {
					out = append(out, a.Unmap())
				}
			}
		}
		return out
	}
}
