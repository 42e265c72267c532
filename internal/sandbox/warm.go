package sandbox

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/brig-dev/brig/schema"
)

// template is what makes two jobs' sandboxes interchangeable before they
// get their job: everything set at container creation.
type template struct {
	image, runtime string
	memoryMB, pids int64
	cpus           float64
	network        bool
	warmup         string // the warm-up command, NUL-separated
	zygote         string // the init's zygote arguments, NUL-separated
}

func templateOf(spec schema.RunSpec) template {
	return template{image: spec.Image, runtime: spec.Runtime, memoryMB: spec.Limits.MemoryMB,
		pids: spec.Limits.Pids, cpus: spec.Limits.CPUs, network: spec.Network, warmup: strings.Join(spec.Warmup, "\x00"),
		zygote: strings.Join(zygoteArgs(spec), "\x00")}
}

// warmCache is the prewarm cache (docs/design.md §8): it keeps Prewarm
// started sandboxes per template that jobs used recently, a warmSet each.
// A prewarmed sandbox serves exactly one job and is removed after it, so
// no job ever sees another's; sets refill one sandbox at a time in the
// background, and a set idle for PrewarmIdle is emptied.
//
// At most PrewarmMax prewarmed sandboxes exist at once, over all
// templates, those being made or removed included (room holds one token
// for each). So at most PrewarmMax / Prewarm templates are kept warm: a job
// of a new template evicts the least recently used template, whose
// sandboxes are removed. The cap never fails a job: a template without a
// ready sandbox is a cold start.
type warmCache struct {
	mu     sync.Mutex
	sets   map[template]*warmSet
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	perTemplate  int // sandboxes kept per template: min(Prewarm, PrewarmMax)
	maxTemplates int // templates kept warm: PrewarmMax / perTemplate
	idle         time.Duration
	room         chan struct{} // a token per prewarmed sandbox that exists
	log          *slog.Logger
	// create starts a prewarmed sandbox; discard removes one.
	create  func(ctx context.Context, spec schema.RunSpec, warmup []string) (*Sandbox, error)
	discard func(sb *Sandbox)
}

// warmSet is one template's prewarmed sandboxes.
type warmSet struct {
	spec     schema.RunSpec
	ready    chan *Sandbox
	wake     chan struct{}
	lastUsed time.Time
	lastMiss time.Time
	// ctx ends when the template idles out, is evicted or the cache stops.
	ctx  context.Context
	stop context.CancelFunc
}

// missQuiet is how long after a job found its set empty refills skip the
// warm-up.
const missQuiet = 2 * time.Second

func newWarmCache(r *Runner, ctx context.Context) *warmCache {
	c := newWarmCacheWith(ctx, r.cfg.Prewarm, r.cfg.PrewarmMax, r.cfg.PrewarmIdle, r.log)
	c.create = func(ctx context.Context, spec schema.RunSpec, warmup []string) (*Sandbox, error) {
		sb, err := r.open(ctx, spec, "prewarmed", prewarmArgs(spec, warmup), nil)
		if err != nil {
			return nil, err
		}
		r.cfg.Metrics.ContainerStarted("prewarmed")
		sb.prewarmed = true
		return sb, nil
	}
	c.discard = func(sb *Sandbox) { r.discard(context.WithoutCancel(c.ctx), sb) }
	return c
}

// newWarmCacheWith makes a cache without its create and discard functions.
// prewarm and max are Config.Prewarm and Config.PrewarmMax (both ≥ 1).
func newWarmCacheWith(ctx context.Context, prewarm, max int, idle time.Duration, log *slog.Logger) *warmCache {
	ctx, cancel := context.WithCancel(ctx)
	per := min(prewarm, max)
	return &warmCache{sets: map[template]*warmSet{}, ctx: ctx, cancel: cancel,
		perTemplate: per, maxTemplates: max / per, idle: idle, room: make(chan struct{}, max), log: log}
}

// take returns a prewarmed sandbox for spec, or nil; either way the
// template's set is (re)filled for the jobs after this one.
func (c *warmCache) take(spec schema.RunSpec) *Sandbox {
	if c == nil {
		return nil
	}
	key := templateOf(spec)
	c.mu.Lock()
	set, ok := c.sets[key]
	if !ok {
		if c.ctx.Err() != nil {
			c.mu.Unlock()
			return nil
		}
		c.evictLocked()
		sctx, stop := context.WithCancel(c.ctx)
		set = &warmSet{spec: spec, ready: make(chan *Sandbox, c.perTemplate), wake: make(chan struct{}, 1), ctx: sctx, stop: stop}
		c.sets[key] = set
		c.wg.Add(1)
		go c.refill(key, set)
	}
	set.lastUsed = time.Now()
	c.mu.Unlock()
	defer func() {
		select {
		case set.wake <- struct{}{}:
		default:
		}
	}()
	select {
	case sb := <-set.ready:
		<-c.room // the job's now: no longer a prewarmed one
		return sb
	default:
		if ok {
			// The set fell behind its jobs: refills skip the warm-up for
			// a while, so that the CPU goes to making containers.
			c.mu.Lock()
			set.lastMiss = time.Now()
			c.mu.Unlock()
		}
		return nil
	}
}

// evictLocked makes room for one more template: while maxTemplates are
// kept, the least recently used one is dropped, its refiller stopped and
// its sandboxes removed (in the background, by the refiller).
func (c *warmCache) evictLocked() {
	for len(c.sets) >= c.maxTemplates {
		var lruKey template
		var lru *warmSet
		for k, set := range c.sets {
			if lru == nil || set.lastUsed.Before(lru.lastUsed) {
				lruKey, lru = k, set
			}
		}
		delete(c.sets, lruKey)
		lru.stop()
		c.log.Debug("prewarm: template evicted for a new one", "image", lru.spec.Image, "templates", c.maxTemplates)
	}
}

// refill keeps a template's set full until it idles out, is evicted or the
// cache stops.
func (c *warmCache) refill(key template, set *warmSet) {
	defer c.wg.Done()
	defer c.drain(set)
	defer set.stop()
	tick := time.NewTicker(c.idle / 4)
	defer tick.Stop()
	failures := 0
	for {
		for len(set.ready) < cap(set.ready) && set.ctx.Err() == nil {
			select { // wait for room under PrewarmMax
			case c.room <- struct{}{}:
			case <-set.ctx.Done():
				continue
			}
			c.mu.Lock()
			warmup := set.spec.Warmup
			if time.Since(set.lastMiss) < missQuiet {
				warmup = nil
			}
			c.mu.Unlock()
			// The cache's context, not the template's: an eviction lets a
			// sandbox being made finish, then removes it.
			sb, err := c.create(c.ctx, set.spec, warmup)
			if err != nil {
				<-c.room
				failures++
				c.log.Warn("prewarm a container", "image", set.spec.Image, "err", err)
				select { // back off; jobs fall back to cold starts meanwhile
				case <-time.After(time.Duration(min(failures, 6)) * time.Second):
				case <-set.ctx.Done():
				}
				continue
			}
			failures = 0
			set.ready <- sb
		}
		select {
		case <-set.ctx.Done():
			return
		case <-set.wake:
		case <-tick.C:
			c.mu.Lock()
			idle := time.Since(set.lastUsed) > c.idle
			if idle && c.sets[key] == set {
				delete(c.sets, key)
			}
			c.mu.Unlock()
			if idle {
				return
			}
		}
	}
}

// drain removes a set's unused sandboxes.
func (c *warmCache) drain(set *warmSet) {
	for {
		select {
		case sb := <-set.ready:
			c.discard(sb)
			<-c.room
		default:
			return
		}
	}
}

// stop empties every set and waits for the refillers.
func (c *warmCache) stop() {
	if c == nil {
		return
	}
	c.cancel()
	c.wg.Wait()
}

// size is how many prewarmed sandboxes wait, over all templates.
func (c *warmCache) size() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, set := range c.sets {
		n += len(set.ready)
	}
	return n
}
