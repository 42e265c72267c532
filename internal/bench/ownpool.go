package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/worker"
)

// ownPoolPrefix starts the ids of the bench's own workers.
const ownPoolPrefix = "bench-"

// poolStopGrace bounds how long the last jobs of a worker of the bench's
// own may take to finish when it stops.
const poolStopGrace = 30 * time.Second

// ownPool is a worker of the bench's own, in this process, serving a
// private pool, and a copy of the built-in python function routed to that
// pool: it measures brig's cold path with prewarming off whatever the brig
// under test prewarms, and bursts onto a worker whose slots and warm cache
// the bench chooses.
type ownPool struct {
	// Function is the deployed copy of python whose jobs run on the pool.
	Function string
	pool     string
	workerID string
	dir      string
	js       jetstream.JetStream
	store    *functions.Store
	reg      *registry.Registry
	deployed bool
	w        *worker.Worker
}

// startOwnPool starts a worker with slots (0: the worker's default) and
// prewarm, and deploys the function; kind names both ("cold", "burst").
// On error, whatever it set up is torn down again.
func startOwnPool(ctx context.Context, cfg Config, kind string, slots, prewarm int) (_ *ownPool, err error) {
	suffix := randomHex(4)
	p := &ownPool{Function: "brig-bench-" + kind + "-" + suffix, pool: "bench-" + kind + "-" + suffix,
		workerID: ownPoolPrefix + kind + "-" + suffix}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.stop(context.WithoutCancel(ctx)))
		}
	}()
	if p.js, err = jetstream.New(cfg.Conn); err != nil {
		return nil, err
	}
	// Short: the worker's gateway sockets live under it (≤ 100 bytes).
	if p.dir, err = os.MkdirTemp("", "bb-"); err != nil {
		return nil, fmt.Errorf("%s worker runtime dir: %w", kind, err)
	}
	if err := os.Chmod(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s worker runtime dir: %w", kind, err)
	}
	p.w, err = worker.New(worker.Config{
		Conn: cfg.Conn, Docker: cfg.Docker, Logger: cfg.Logger, ID: p.workerID, Slots: slots,
		Pools: []string{p.pool}, Prewarm: prewarm, RuntimeDir: p.dir, InitBinary: cfg.InitBinary,
	})
	if err != nil {
		return nil, fmt.Errorf("%s worker: %w", kind, err)
	}
	if err := p.w.Start(ctx); err != nil {
		return nil, fmt.Errorf("%s worker: %w", kind, err)
	}
	if p.reg, err = registry.Open(ctx, p.js, 0); err != nil {
		return nil, err
	}
	if p.store, err = functions.Open(ctx, p.js, 0); err != nil {
		return nil, err
	}
	fn := schema.Python()
	fn.Name, fn.Pool, fn.Image = p.Function, p.pool, cfg.Image
	if _, err := p.store.Put(ctx, fn); err != nil {
		return nil, fmt.Errorf("deploy %s: %w", p.Function, err)
	}
	p.deployed = true
	return p, nil
}

// stop deletes the function, stops the worker (which removes its
// containers), deletes the pool's consumer and the runtime dir.
func (p *ownPool) stop(ctx context.Context) error {
	var errs []error
	if p.deployed {
		if err := p.store.Delete(ctx, p.Function); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", p.Function, err))
		}
		p.deployed = false
	}
	if p.w != nil {
		sctx, cancel := context.WithTimeout(ctx, poolStopGrace)
		if err := p.w.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop worker %s: %w", p.workerID, err))
		}
		cancel()
		p.w = nil
		err := p.js.DeleteConsumer(ctx, schema.StreamWork, bus.WorkConsumer(p.pool))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("delete pool %s's consumer: %w", p.pool, err))
		}
	}
	if p.dir != "" {
		if err := os.RemoveAll(p.dir); err != nil {
			errs = append(errs, err)
		}
		p.dir = ""
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// warmPoll is how often waitWarm reads the registry; the worker writes its
// entry every registry.Interval, and soon after a job starts or ends.
const warmPoll = 100 * time.Millisecond

// waitWarm waits until the worker's registry entry shows every slot free
// and n prewarmed containers waiting, or ctx ends.
func (p *ownPool) waitWarm(ctx context.Context, n int) error {
	return waitWarm(ctx, p.reg, "worker "+p.workerID, func(w registry.Worker) bool { return w.ID == p.workerID }, n)
}

// waitWarm waits until every worker that match picks (one at least) shows
// every slot free and n prewarmed containers waiting, or ctx ends. Only an
// entry written after the wait began counts: one written before the last
// job (or burst) started would still show the cache that job emptied.
func waitWarm(ctx context.Context, reg *registry.Registry, what string, match func(registry.Worker) bool, n int) error {
	t := time.NewTicker(warmPoll)
	defer t.Stop()
	since := time.Now()
	seen := map[string]registry.Worker{}
	for {
		ws, err := reg.List(ctx)
		if err != nil {
			return err
		}
		ready, all := 0, 0
		for _, w := range ws {
			if !match(w) {
				continue
			}
			all++
			if w.Seen.After(since) {
				seen[w.ID] = w
			}
			if last, ok := seen[w.ID]; ok && last.Prewarmed >= n && last.Free == last.Slots {
				ready++
			}
		}
		if all > 0 && ready == all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d workers with %d containers prewarmed and every slot free (%v): %w",
				what, ready, all, n, seen, ctx.Err())
		case <-t.C:
		}
	}
}
