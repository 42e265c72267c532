package worker

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/brig-dev/brig/schema"
)

// template is what makes two jobs' containers interchangeable before they
// get their job: everything set at container creation.
type template struct {
	image, runtime string
	memoryMB, pids int64
	cpus           float64
	network        bool
	warmup         string // the warm-up command, NUL-separated
}

func templateOf(spec schema.RunSpec) template {
	return template{image: spec.Image, runtime: spec.Runtime, memoryMB: spec.Limits.MemoryMB,
		pids: spec.Limits.Pids, cpus: spec.Limits.CPUs, network: spec.Network, warmup: strings.Join(spec.Warmup, "\x00")}
}

// warmPool keeps Prewarm started containers per template that jobs used
// recently. A container serves exactly one job and is removed after it, so
// no job ever sees another's; pools refill one container at a time in the
// background, and a pool idle for PrewarmIdle is emptied.
//
// At most PrewarmMax prewarmed containers exist at once, over all
// templates, those being made or removed included (room holds one token
// for each). So at most PrewarmMax / Prewarm templates are kept warm: a job
// of a new template evicts the least recently used template, whose
// containers are removed. The cap never fails a job: a template without a
// ready container is a cold start.
type warmPool struct {
	mu     sync.Mutex
	pools  map[template]*tmplPool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	perTemplate  int // containers kept per template: min(Prewarm, PrewarmMax)
	maxTemplates int // templates kept warm: PrewarmMax / perTemplate
	idle         time.Duration
	room         chan struct{} // a token per prewarmed container that exists
	log          *slog.Logger
	// create starts a prewarmed container; discard removes one.
	create  func(ctx context.Context, spec schema.RunSpec, warmup []string) (*box, error)
	discard func(b *box)
}

type tmplPool struct {
	spec     schema.RunSpec
	ready    chan *box
	wake     chan struct{}
	lastUsed time.Time
	lastMiss time.Time
	// ctx ends when the template idles out, is evicted or the pool stops.
	ctx  context.Context
	stop context.CancelFunc
}

// missQuiet is how long after a job found its pool empty refills skip the
// warm-up.
const missQuiet = 2 * time.Second

func newWarmPool(w *Worker, ctx context.Context) *warmPool {
	p := newWarmPoolWith(ctx, w.cfg.Prewarm, w.cfg.PrewarmMax, w.cfg.PrewarmIdle, w.log)
	p.create = func(ctx context.Context, spec schema.RunSpec, warmup []string) (*box, error) {
		gate, err := w.newGate(ctx)
		if err != nil {
			return nil, err
		}
		b, err := w.startContainer(ctx, spec, "prewarmed", gate.sock, warmup, nil)
		if err != nil {
			gate.close()
			return nil, err
		}
		w.cfg.Metrics.ContainerStarted("prewarmed")
		b.gate, b.prewarmed = gate, true
		return b, nil
	}
	p.discard = func(b *box) { w.discard(context.WithoutCancel(p.ctx), b) }
	return p
}

// newWarmPoolWith makes a pool without its create and discard functions.
// prewarm and max are Config.Prewarm and Config.PrewarmMax (both ≥ 1).
func newWarmPoolWith(ctx context.Context, prewarm, max int, idle time.Duration, log *slog.Logger) *warmPool {
	ctx, cancel := context.WithCancel(ctx)
	per := min(prewarm, max)
	return &warmPool{pools: map[template]*tmplPool{}, ctx: ctx, cancel: cancel,
		perTemplate: per, maxTemplates: max / per, idle: idle, room: make(chan struct{}, max), log: log}
}

// take returns a prewarmed container for spec, or nil; either way the
// template's pool is (re)filled for the jobs after this one.
func (p *warmPool) take(spec schema.RunSpec) *box {
	if p == nil {
		return nil
	}
	key := templateOf(spec)
	p.mu.Lock()
	tp, ok := p.pools[key]
	if !ok {
		if p.ctx.Err() != nil {
			p.mu.Unlock()
			return nil
		}
		p.evictLocked()
		tctx, stop := context.WithCancel(p.ctx)
		tp = &tmplPool{spec: spec, ready: make(chan *box, p.perTemplate), wake: make(chan struct{}, 1), ctx: tctx, stop: stop}
		p.pools[key] = tp
		p.wg.Add(1)
		go p.refill(key, tp)
	}
	tp.lastUsed = time.Now()
	p.mu.Unlock()
	defer func() {
		select {
		case tp.wake <- struct{}{}:
		default:
		}
	}()
	select {
	case b := <-tp.ready:
		<-p.room // the job's now: no longer a prewarmed one
		return b
	default:
		if ok {
			// The pool fell behind its jobs: refills skip the warm-up for
			// a while, so that the CPU goes to making containers.
			p.mu.Lock()
			tp.lastMiss = time.Now()
			p.mu.Unlock()
		}
		return nil
	}
}

// evictLocked makes room for one more template: while maxTemplates are
// kept, the least recently used one is dropped, its refiller stopped and
// its containers removed (in the background, by the refiller).
func (p *warmPool) evictLocked() {
	for len(p.pools) >= p.maxTemplates {
		var lruKey template
		var lru *tmplPool
		for k, tp := range p.pools {
			if lru == nil || tp.lastUsed.Before(lru.lastUsed) {
				lruKey, lru = k, tp
			}
		}
		delete(p.pools, lruKey)
		lru.stop()
		p.log.Debug("prewarm: template evicted for a new one", "image", lru.spec.Image, "templates", p.maxTemplates)
	}
}

// refill keeps a template's pool full until it idles out, is evicted or the
// pool stops.
func (p *warmPool) refill(key template, tp *tmplPool) {
	defer p.wg.Done()
	defer p.drain(tp)
	defer tp.stop()
	tick := time.NewTicker(p.idle / 4)
	defer tick.Stop()
	failures := 0
	for {
		for len(tp.ready) < cap(tp.ready) && tp.ctx.Err() == nil {
			select { // wait for room under PrewarmMax
			case p.room <- struct{}{}:
			case <-tp.ctx.Done():
				continue
			}
			p.mu.Lock()
			warmup := tp.spec.Warmup
			if time.Since(tp.lastMiss) < missQuiet {
				warmup = nil
			}
			p.mu.Unlock()
			// The pool's context, not the template's: an eviction lets a
			// container being made finish, then removes it.
			b, err := p.create(p.ctx, tp.spec, warmup)
			if err != nil {
				<-p.room
				failures++
				p.log.Warn("prewarm a container", "image", tp.spec.Image, "err", err)
				select { // back off; jobs fall back to cold starts meanwhile
				case <-time.After(time.Duration(min(failures, 6)) * time.Second):
				case <-tp.ctx.Done():
				}
				continue
			}
			failures = 0
			tp.ready <- b
		}
		select {
		case <-tp.ctx.Done():
			return
		case <-tp.wake:
		case <-tick.C:
			p.mu.Lock()
			idle := time.Since(tp.lastUsed) > p.idle
			if idle && p.pools[key] == tp {
				delete(p.pools, key)
			}
			p.mu.Unlock()
			if idle {
				return
			}
		}
	}
}

// drain removes a pool's unused containers.
func (p *warmPool) drain(tp *tmplPool) {
	for {
		select {
		case b := <-tp.ready:
			p.discard(b)
			<-p.room
		default:
			return
		}
	}
}

// stop empties every pool and waits for the refillers.
func (p *warmPool) stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}

// size is how many prewarmed containers wait, over all templates.
func (p *warmPool) size() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, tp := range p.pools {
		n += len(tp.ready)
	}
	return n
}
