package bench

import (
	"context"
	"fmt"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// Config of a run.
type Config struct {
	Conn   *nats.Conn
	Docker *client.Client
	// Image of the python sandbox (default brig/python:latest).
	Image string
	// N is the number of samples per latency figure (default 20).
	N int
	// Progress is told what runs now.
	Progress func(string)
}

// Run measures everything, floors first.
func Run(ctx context.Context, cfg Config) ([]Figure, error) {
	if cfg.Image == "" {
		cfg.Image = "brig/python:latest"
	}
	if cfg.N == 0 {
		cfg.N = 20
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
	}
	var removing sync.WaitGroup
	removeLater := func(id string) {
		removing.Add(1)
		go func() {
			defer removing.Done()
			_ = cfg.Docker.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
		}()
	}
	defer removing.Wait()
	c, err := sdk.New(cfg.Conn)
	if err != nil {
		return nil, err
	}
	var figs []Figure
	add := func(f Figure, err error) error {
		if err == nil {
			figs = append(figs, f)
		}
		return err
	}

	cfg.Progress("raw Engine API cold floor")
	cold := rawCold(cfg.Docker, cfg.Image, removeLater)
	rawColdFig, err := latency(ctx, "raw Engine API create+start+wait", cfg.N, cold)
	if err := add(rawColdFig, err); err != nil {
		return figs, err
	}
	cfg.Progress("raw prewarmed floor")
	setup, run := rawPrewarmed(cfg.Docker, cfg.Image)
	warm := make([]*warmRaw, 0, cfg.N+1)
	for range cfg.N + 1 {
		w, err := setup(ctx)
		if err != nil {
			for _, w := range warm {
				removeLater(w.id)
			}
			return figs, fmt.Errorf("prewarm: %w", err)
		}
		warm = append(warm, w)
	}
	defer func() {
		for _, w := range warm {
			removeLater(w.id)
		}
	}()
	i := 0
	warmFig, err := latency(ctx, "raw prewarmed container, job fed on stdin", cfg.N, func(ctx context.Context) error {
		w := warm[i]
		i++
		return run(ctx, w)
	})
	if err := add(warmFig, err); err != nil {
		return figs, err
	}
	cfg.Progress("raw JetStream")
	jsLat, jsThr, err := rawJetStream(ctx, cfg.Conn, cfg.N*5)
	if err := add(jsLat, err); err != nil {
		return figs, err
	}
	figs = append(figs, jsThr)

	cfg.Progress("brig single-use path")
	job := func(ctx context.Context) error {
		ev, err := c.Run(ctx, schema.Job{Function: "python", Code: oneLiner})
		if err != nil {
			return err
		}
		if ev.Stdout != "hello\n" {
			return fmt.Errorf("brig job printed %q", ev.Stdout)
		}
		return nil
	}
	brigFig, err := latency(ctx, "brig submit → terminal event (single-use)", cfg.N, job)
	if err != nil {
		return figs, err
	}
	compare(&brigFig, warmFig)
	brigFig.Note = "warm when the worker prewarms (brig dev does); DESIGN §8 targets ≤ 1.2× the prewarmed floor"
	figs = append(figs, brigFig)

	for _, conc := range []int{1, 4, 8} {
		cfg.Progress(fmt.Sprintf("churn at concurrency %d", conc))
		n := max(conc*4, 8)
		churn, err := rate(ctx, fmt.Sprintf("raw container churn, concurrency %d", conc), n, conc, cold)
		if err != nil {
			return figs, err
		}
		figs = append(figs, churn)
		thr, err := rate(ctx, fmt.Sprintf("brig single-use throughput, concurrency %d", conc), n, conc, job)
		if err != nil {
			return figs, err
		}
		compare(&thr, churn)
		figs = append(figs, thr)
	}
	return figs, nil
}
