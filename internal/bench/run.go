package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/registry"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// Config of a run.
type Config struct {
	// Conn reaches the brig under test, with an admin credential
	// (docs/design.md §10): besides submitting jobs, the bench deploys a
	// function, runs a worker of its own and a raw JetStream stream for the
	// floors. Required.
	Conn *nats.Conn
	// Docker is the daemon that brig's workers use. Required unless Only
	// names just groups that leave the daemon to brig (queue, messages).
	Docker *client.Client
	// Tenant whose jobs the bench submits (default "default", the tenant
	// `brig dev` creates): the admin connection uses that tenant's client
	// (docs/design.md §10.3), and its jobs' reply_to lies under the
	// tenant's inbox prefix.
	Tenant string
	// Image of the python sandbox (default brig/python:latest).
	Image string
	// N is the number of samples per latency figure (default 20, or
	// quickN under Quick); the JetStream floor and the echo figure beside
	// it take 5×N, the echo throughput 100×N jobs, the messages figures N
	// jobs each.
	N int
	// Only limits the run to these figure groups (Groups; ParseOnly reads
	// them); empty runs every group.
	Only []string
	// Quick makes a run that finishes in about a minute on a 2-core
	// machine: quickN samples unless N is set, single-use throughput at
	// concurrency 8 only, one burst, a shorter idle window for the
	// messages figures. Every figure's note says it is a quick run.
	Quick bool
	// InitBinary is the static brig binary that the bench's own cold
	// worker mounts as its containers' init (default: this executable).
	InitBinary string
	// Logger receives the logs of the bench's own workers (default:
	// discard).
	Logger *slog.Logger
	// Progress is told what runs now, and which figures are skipped.
	Progress func(string)
}

func (c Config) withDefaults() Config {
	if c.Tenant == "" {
		c.Tenant = schema.DefaultTenant
	}
	if c.Image == "" {
		c.Image = "brig/python:latest"
	}
	if c.N == 0 {
		c.N = 20
		if c.Quick {
			c.N = quickN
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	return c
}

// Sizes of brig's throughput figures, and of a quick run.
const (
	queueConcurrency = 64
	reuseConcurrency = 8
	minReuseJobs     = 40
	quickN           = 5
)

// concurrencies are those of the single-use throughput figures.
func (c Config) concurrencies() []int {
	if c.Quick {
		return []int{reuseConcurrency}
	}
	return []int{1, 4, reuseConcurrency}
}

// runner measures the figures in the order they are printed: each brig
// figure right after its floor.
type runner struct {
	cfg      Config
	c        *sdk.Client
	figs     []Figure
	base     context.Context // removals outlive the run's cancellation
	removing sync.WaitGroup
}

// Run measures the groups cfg.Only names (all by default), each brig
// figure after its floor. A figure whose jobs brig rejects (a function it
// does not have) is skipped with a note; any other error ends the run,
// with the figures so far.
func Run(ctx context.Context, cfg Config) ([]Figure, error) {
	if cfg.Conn == nil {
		return nil, errors.New("bench: Conn is required")
	}
	if cfg.Docker == nil && needsDocker(cfg.Only) {
		return nil, errors.New("bench: Docker is required for the cold, warm, burst and throughput groups")
	}
	cfg = cfg.withDefaults()
	c, err := sdk.New(cfg.Conn, sdk.WithTenant(cfg.Tenant))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &runner{cfg: cfg, c: c, base: context.WithoutCancel(ctx)}
	defer r.removing.Wait()
	defer r.markQuick()
	parts := map[string]func(context.Context) error{GroupCold: r.cold, GroupWarm: r.warm, GroupBurst: r.burst,
		GroupQueue: r.queue, GroupThroughput: r.throughput, GroupMessages: r.messages}
	for _, g := range Groups() {
		if !selected(cfg.Only, g) {
			continue
		}
		if err := parts[g](ctx); err != nil {
			return r.figs, err
		}
	}
	return r.figs, nil
}

// quickNote begins every figure's note in a quick run.
const quickNote = "quick run"

// markQuick notes on every figure of a quick run that it is one.
func (r *runner) markQuick() {
	if !r.cfg.Quick {
		return
	}
	for i := range r.figs {
		r.figs[i].Note = strings.TrimSuffix(quickNote+"; "+r.figs[i].Note, "; ")
	}
}

// stopPool stops a worker of the bench's own and adds the error of its
// clean-up to *err.
func (r *runner) stopPool(p *ownPool, what string, err *error) {
	if serr := p.stop(r.base); serr != nil {
		*err = errors.Join(*err, fmt.Errorf("%s: clean up: %w", what, serr))
	}
}

// removeLater removes a raw container off the clock.
func (r *runner) removeLater(id string) {
	r.removing.Add(1)
	go func() {
		defer r.removing.Done()
		_ = r.cfg.Docker.ContainerRemove(r.base, id, container.RemoveOptions{Force: true})
	}()
}

func (r *runner) rawColdJob() func(context.Context) error {
	return rawCold(r.cfg.Docker, r.cfg.Image, r.removeLater)
}

// cold: the raw Engine API floor, then brig with no prewarmed container.
func (r *runner) cold(ctx context.Context) (err error) {
	r.cfg.Progress("raw Engine API cold floor")
	floor, err := latency(ctx, "raw Engine API create+start+wait", r.cfg.N, r.rawColdJob())
	if err != nil {
		return err
	}
	r.figs = append(r.figs, floor)
	r.cfg.Progress("brig cold path (a worker of the bench's own, prewarming off)")
	pool, err := startOwnPool(ctx, r.cfg, "cold", 0, 0)
	if err != nil {
		return fmt.Errorf("brig cold path: %w", err)
	}
	defer r.stopPool(pool, "brig cold path", &err)
	_, err = r.brigLatency(ctx, "brig submit → terminal event (cold)", r.cfg.N, pythonJob(r.c, pool.Function, true),
		floor, target{Max: 1.1}, "no prewarmed container")
	return err
}

// warm: the prewarmed floor, then brig's single-use path on the
// containers `brig dev`'s worker prewarms. Each job waits until that
// worker reports a prewarmed container ready and every slot free, in an
// entry written after the previous job (docs/design.md §8): a refill is a
// create and, for python, its zygote's preload, longer than any fixed pace
// on a loaded machine, and a job that found the cache empty would time a
// cold start.
func (r *runner) warm(ctx context.Context) error {
	r.cfg.Progress("raw prewarmed floor")
	floor, err := r.rawPrewarmedFigure(ctx)
	if err != nil {
		return err
	}
	r.figs = append(r.figs, floor)
	js, err := jetstream.New(r.cfg.Conn)
	if err != nil {
		return err
	}
	reg, err := registry.Open(ctx, js, 0)
	if err != nil {
		return err
	}
	devWorkers := func(w registry.Worker) bool {
		return !strings.HasPrefix(w.ID, ownPoolPrefix) && slices.Contains(w.Pools, schema.DefaultPool)
	}
	ready := func(ctx context.Context) error {
		wctx, cancel := context.WithTimeout(ctx, burstWarmWait)
		defer cancel()
		return waitWarm(wctx, reg, "brig's workers of pool "+schema.DefaultPool, devWorkers, 1)
	}
	r.cfg.Progress("brig warm path")
	name := "brig submit → terminal event (single-use)"
	f, err := latencyAfter(ctx, name, r.cfg.N, ready, pythonJob(r.c, "python", true))
	_, err = r.add(f, err, name, "ms", floor, target{Max: 0.5}, "each job once a prewarmed container is ready")
	return err
}

func (r *runner) rawPrewarmedFigure(ctx context.Context) (Figure, error) {
	setup, run := rawPrewarmed(r.cfg.Docker, r.cfg.Image)
	warm := make([]*warmRaw, 0, r.cfg.N+1)
	defer func() {
		for _, w := range warm {
			r.removeLater(w.id)
		}
	}()
	for range r.cfg.N + 1 {
		w, err := setup(ctx)
		if err != nil {
			return Figure{}, fmt.Errorf("prewarm: %w", err)
		}
		warm = append(warm, w)
	}
	i := 0
	return latency(ctx, "raw prewarmed container, job fed on stdin", r.cfg.N, func(ctx context.Context) error {
		w := warm[i]
		i++
		return run(ctx, w)
	})
}

// queue: raw JetStream, then brig's echo function, which runs no
// container: its latency through the SDK, and its latency and throughput
// with results on reply_to.
func (r *runner) queue(ctx context.Context) error {
	r.cfg.Progress("raw JetStream")
	lat, thr, err := rawJetStream(ctx, r.cfg.Conn, r.cfg.N*5)
	if err != nil {
		return err
	}
	r.figs = append(r.figs, lat)
	r.cfg.Progress("brig queue-only latency (echo)")
	sdkLat, err := r.brigLatency(ctx, "brig queue-only submit → terminal event (echo, SDK)", r.cfg.N, echoJob(r.c),
		lat, target{}, "no container; through the SDK")
	if err != nil {
		return err
	}
	reply, err := newReplyClient(r.cfg.Conn, r.c)
	if err != nil {
		return err
	}
	defer reply.close()
	echo := echoJob(reply)
	replyName := "brig queue-only submit → terminal event (echo, reply_to)"
	thrName := fmt.Sprintf("brig queue-only throughput (echo, reply_to), concurrency %d", queueConcurrency)
	if sdkLat.N == 0 { // brig has no echo
		r.figs = append(r.figs, skipped(replyName, "ms", lat, sdkLat.Note), thr, skipped(thrName, "jobs/s", thr, sdkLat.Note))
		return nil
	}
	if _, err := r.brigLatency(ctx, replyName, lat.N, echo, lat, target{}, "no container"); err != nil {
		return err
	}
	r.figs = append(r.figs, thr)
	r.cfg.Progress("brig queue-only throughput (echo)")
	_, err = r.brigRate(ctx, thrName, max(r.cfg.N*100, 200), queueConcurrency, echo, thr, target{Min: 0.25}, "no container")
	return err
}

// throughput: container churn, then brig single-use, at each concurrency;
// then reuse mode against single-use.
func (r *runner) throughput(ctx context.Context) error {
	single := pythonJob(r.c, "python", true)
	var last Figure
	for _, conc := range r.cfg.concurrencies() {
		r.cfg.Progress(fmt.Sprintf("churn and brig single-use at concurrency %d", conc))
		n := max(conc*4, 8)
		churn, err := rate(ctx, fmt.Sprintf("raw container churn, concurrency %d", conc), n, conc, r.rawColdJob())
		if err != nil {
			return err
		}
		r.figs = append(r.figs, churn)
		last, err = r.brigRate(ctx, fmt.Sprintf("brig single-use throughput, concurrency %d", conc), n, conc, single,
			churn, target{Min: 0.9}, "")
		if err != nil {
			return err
		}
	}
	r.cfg.Progress("brig reuse mode")
	reuse := pythonJob(r.c, "python", false)
	// The first job of each concurrent runner starts its container cold;
	// the figure is the steady state after that.
	if _, err := rate(ctx, "brig reuse warm-up", reuseConcurrency, reuseConcurrency, reuse); err != nil && !errors.Is(err, sdk.ErrRejected) {
		return fmt.Errorf("brig reuse warm-up: %w", err)
	}
	_, err := r.brigRate(ctx, fmt.Sprintf("brig reuse throughput, concurrency %d", reuseConcurrency),
		max(minReuseJobs, r.cfg.N*10), reuseConcurrency, reuse, last, target{Min: 10}, "single_use: false; after one job per runner")
	return err
}

// brigLatency measures a brig latency figure and adds it.
func (r *runner) brigLatency(ctx context.Context, name string, n int, fn func(context.Context) error, floor Figure, t target, note string) (Figure, error) {
	f, err := latency(ctx, name, n, fn)
	return r.add(f, err, name, "ms", floor, t, note)
}

// brigRate measures a brig rate figure and adds it.
func (r *runner) brigRate(ctx context.Context, name string, n, conc int, fn func(context.Context) error, floor Figure, t target, note string) (Figure, error) {
	f, err := rate(ctx, name, n, conc, fn)
	return r.add(f, err, name, "jobs/s", floor, t, note)
}

// add compares a brig figure with its floor and adds it, or adds it
// skipped when brig rejected its jobs.
func (r *runner) add(f Figure, err error, name, unit string, floor Figure, t target, note string) (Figure, error) {
	if errors.Is(err, sdk.ErrRejected) {
		f = skipped(name, unit, floor, "skipped, brig rejected its jobs: "+err.Error())
		r.cfg.Progress(f.Name + ": " + f.Note)
		r.figs = append(r.figs, f)
		return f, nil
	}
	if err != nil {
		return f, err
	}
	f.Note = note
	compare(&f, floor, t)
	r.figs = append(r.figs, f)
	return f, nil
}

// skipped is a figure that was not measured, and why.
func skipped(name, unit string, floor Figure, why string) Figure {
	return Figure{Name: name, Unit: unit, Floor: floor.Name, Note: why}
}
