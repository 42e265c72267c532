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
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/worker"
)

// coldStopGrace bounds how long the cold worker's last jobs may take to
// finish when it stops.
const coldStopGrace = 30 * time.Second

// coldPool measures brig's cold path whatever the brig under test
// prewarms: a worker of the bench's own, in this process, serving a
// private pool with prewarming off, and a copy of the built-in python
// function routed to that pool.
type coldPool struct {
	// Function is the deployed copy of python whose jobs run cold.
	Function string
	pool     string
	dir      string
	js       jetstream.JetStream
	store    *functions.Store
	deployed bool
	w        *worker.Worker
}

// startColdPool starts the worker and deploys the function. On error,
// whatever it set up is torn down again.
func startColdPool(ctx context.Context, cfg Config) (_ *coldPool, err error) {
	suffix := randomHex(4)
	p := &coldPool{Function: "brig-bench-cold-" + suffix, pool: "bench-cold-" + suffix}
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
		return nil, fmt.Errorf("cold worker runtime dir: %w", err)
	}
	if err := os.Chmod(p.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cold worker runtime dir: %w", err)
	}
	p.w, err = worker.New(worker.Config{
		Conn: cfg.Conn, Docker: cfg.Docker, Logger: cfg.Logger, ID: "bench-" + suffix,
		Pools: []string{p.pool}, Prewarm: 0, RuntimeDir: p.dir, InitBinary: cfg.InitBinary,
	})
	if err != nil {
		return nil, fmt.Errorf("cold worker: %w", err)
	}
	if err := p.w.Start(ctx); err != nil {
		return nil, fmt.Errorf("cold worker: %w", err)
	}
	if p.store, err = functions.Open(ctx, p.js, 0); err != nil {
		return nil, err
	}
	fn := schema.Python()
	fn.Name, fn.Pool, fn.Image = p.Function, p.pool, cfg.Image
	if _, err := p.store.Put(ctx, fn); err != nil {
		return nil, fmt.Errorf("deploy the cold function: %w", err)
	}
	p.deployed = true
	return p, nil
}

// stop deletes the function, stops the worker (which removes its
// containers), deletes the pool's consumer and the runtime dir.
func (p *coldPool) stop(ctx context.Context) error {
	var errs []error
	if p.deployed {
		if err := p.store.Delete(ctx, p.Function); err != nil {
			errs = append(errs, fmt.Errorf("delete the cold function: %w", err))
		}
		p.deployed = false
	}
	if p.w != nil {
		sctx, cancel := context.WithTimeout(ctx, coldStopGrace)
		if err := p.w.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop the cold worker: %w", err))
		}
		cancel()
		p.w = nil
		err := p.js.DeleteConsumer(ctx, schema.StreamWork, bus.WorkConsumer(p.pool))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("delete the cold pool's consumer: %w", err))
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
