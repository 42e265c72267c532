package worker

import (
	"context"
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
type warmPool struct {
	w      *Worker
	mu     sync.Mutex
	pools  map[template]*tmplPool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type tmplPool struct {
	spec     schema.RunSpec
	ready    chan *box
	wake     chan struct{}
	lastUsed time.Time
	lastMiss time.Time
}

// missQuiet is how long after a job found its pool empty refills skip the
// warm-up.
const missQuiet = 2 * time.Second

func newWarmPool(w *Worker, ctx context.Context) *warmPool {
	ctx, cancel := context.WithCancel(ctx)
	return &warmPool{w: w, pools: map[template]*tmplPool{}, ctx: ctx, cancel: cancel}
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
		tp = &tmplPool{spec: spec, ready: make(chan *box, p.w.cfg.Prewarm), wake: make(chan struct{}, 1)}
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

// refill keeps a template's pool full until it idles out or the pool stops.
func (p *warmPool) refill(key template, tp *tmplPool) {
	defer p.wg.Done()
	defer p.drain(tp)
	tick := time.NewTicker(p.w.cfg.PrewarmIdle / 4)
	defer tick.Stop()
	failures := 0
	for {
		for len(tp.ready) < cap(tp.ready) && p.ctx.Err() == nil {
			p.mu.Lock()
			warmup := tp.spec.Warmup
			if time.Since(tp.lastMiss) < missQuiet {
				warmup = nil
			}
			p.mu.Unlock()
			b, err := p.create(tp.spec, warmup)
			if err != nil {
				failures++
				p.w.log.Warn("prewarm a container", "image", tp.spec.Image, "err", err)
				select { // back off; jobs fall back to cold starts meanwhile
				case <-time.After(time.Duration(min(failures, 6)) * time.Second):
				case <-p.ctx.Done():
				}
				continue
			}
			failures = 0
			tp.ready <- b
		}
		select {
		case <-p.ctx.Done():
			return
		case <-tp.wake:
		case <-tick.C:
			p.mu.Lock()
			idle := time.Since(tp.lastUsed) > p.w.cfg.PrewarmIdle
			if idle {
				delete(p.pools, key)
			}
			p.mu.Unlock()
			if idle {
				return
			}
		}
	}
}

func (p *warmPool) create(spec schema.RunSpec, warmup []string) (*box, error) {
	gate, err := p.w.newGate(p.ctx)
	if err != nil {
		return nil, err
	}
	b, err := p.w.startContainer(p.ctx, spec, "prewarmed", gate.sock, warmup, nil)
	if err != nil {
		gate.close()
		return nil, err
	}
	p.w.cfg.Metrics.ContainerStarted("prewarmed")
	b.gate, b.prewarmed = gate, true
	return b, nil
}

// drain removes a pool's unused containers.
func (p *warmPool) drain(tp *tmplPool) {
	for {
		select {
		case b := <-tp.ready:
			p.w.discard(context.WithoutCancel(p.ctx), b)
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
