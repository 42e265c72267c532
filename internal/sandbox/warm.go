package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/initproto"
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

// warmCache is the prewarm cache (docs/design.md §8): it keeps started
// sandboxes per template that jobs used recently, a warmSet each. A
// prewarmed sandbox serves exactly one job and is removed after it, so no
// job ever sees another's; a set idle for PrewarmIdle is emptied, unless a
// function asks a minimum of it (its prewarm: the set is then kept until
// evicted or the cache stops).
//
// A set's depth follows its template's recent arrivals (demand, in
// warm_policy.go): at least its floor (Prewarm, or its functions' largest
// prewarm if more: floorOf), more after bursts, but above its floor only
// as far as the worker has free slots. Sets refill in the
// background, up to parallel creates at once over all templates, and only
// one at a time while every slot is busy (its CPU would be taken from the
// jobs). A set deeper than its demand wants is trimmed one sandbox at a
// time.
//
// At most PrewarmMax prewarmed sandboxes exist at once, over all
// templates, those being made or removed included (room holds one token
// for each). The kept templates' floors add up to at most PrewarmMax: a job
// of a new template (or one whose floor rose) evicts templates, whose
// sandboxes are removed, until its floor fits: the least recently used
// without a function's minimum first, then the least recently used with
// one (evictions). The cap never fails a job: a template without a ready
// sandbox is a cold start.
type warmCache struct {
	mu     sync.Mutex
	sets   map[template]*warmSet
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	warmLimits
	floor    int // sandboxes kept per template at least: min(Prewarm, PrewarmMax)
	running  int // jobs running (Run), under mu
	creating int // creates in flight over all templates, under mu
	// fresh counts running jobs that took a prewarmed sandbox; while any
	// runs, refills wait until holdUntil (refillHold after the first of
	// them was taken), so that a container being made does not take the
	// CPU of the short jobs that just took theirs. Under mu.
	fresh     int
	holdUntil time.Time
	room      chan struct{} // a token per prewarmed sandbox that exists
	log       *slog.Logger
	// create starts a prewarmed sandbox; discard removes one.
	create  func(ctx context.Context, spec schema.RunSpec, warmup []string) (*Sandbox, error)
	discard func(sb *Sandbox)
}

// warmLimits are a warmCache's numbers.
type warmLimits struct {
	prewarm, max int // Config.Prewarm and Config.PrewarmMax (both ≥ 1)
	slots        int // Config.Slots
	parallel     int // creates at once over all templates (refillParallel)
	idle         time.Duration
	halfLife     time.Duration // demandHalfLife
}

// refillParallel is how many prewarmed sandboxes are made at once, over
// all templates: the host's CPUs, at least 2 and at most 4 (a create is
// mostly the daemon's and runc's CPU; more at once only queue there).
func refillParallel(hostCPUs int) int { return min(max(hostCPUs, 2), 4) }

// warmSet is one template's prewarmed sandboxes.
type warmSet struct {
	spec     schema.RunSpec
	ready    chan *Sandbox // capacity PrewarmMax: a send never blocks
	wake     chan struct{}
	lastUsed time.Time
	lastMiss time.Time
	demand   demand   // under the cache's mu
	asks     minimums // its functions' prewarm, under the cache's mu
	inflight int      // creates in flight or backing off, under the cache's mu
	failures int      // creates failed in a row, under the cache's mu
	creates  sync.WaitGroup
	// ctx ends when the template idles out, is evicted or the cache stops.
	ctx  context.Context
	stop context.CancelFunc
}

// missQuiet is how long after a job found its set empty refills skip the
// warm-up.
const missQuiet = 2 * time.Second

func newWarmCache(r *Runner, ctx context.Context) *warmCache {
	c := newWarmCacheWith(ctx, warmLimits{prewarm: r.cfg.Prewarm, max: r.cfg.PrewarmMax, slots: r.cfg.Slots,
		parallel: refillParallel(r.hostCPUs), idle: r.cfg.PrewarmIdle, halfLife: demandHalfLife}, r.log)
	c.create = func(ctx context.Context, spec schema.RunSpec, warmup []string) (*Sandbox, error) {
		args := prewarmArgs(spec, warmup)
		if len(args) > 0 && args[0] == "--zygote" {
			spec.Limits.MemoryMB += zygoteHeadroomMB // the preload's, not the job's
		}
		sb, err := r.open(ctx, spec, "prewarmed", args, nil)
		if err != nil {
			return nil, err
		}
		if len(args) > 0 {
			if err := awaitReady(ctx, sb, readyBudget); err != nil {
				r.discard(context.WithoutCancel(ctx), sb)
				return nil, err
			}
		}
		r.cfg.Metrics.ContainerStarted("prewarmed")
		sb.prewarmed = true
		return sb, nil
	}
	c.discard = func(sb *Sandbox) { r.discard(context.WithoutCancel(c.ctx), sb) }
	return c
}

// readyBudget bounds how long a prewarmed sandbox's warm-up or zygote
// preload may take before it is given up (the init itself gives its
// zygote zygoteReadyBudget, 20 s, then reports ready without one).
const readyBudget = time.Minute

// awaitReady reads the one byte a prewarmed sandbox's init writes when its
// warm-up or zygote is done (initproto.Ready, before any frame): a job
// handed over earlier would wait for it, or find the preload still
// running (docs/design.md §5, §5.1).
func awaitReady(ctx context.Context, sb *Sandbox, d time.Duration) error {
	got := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(sb.frames, b[:])
		if err == nil && b[0] != initproto.Ready {
			err = fmt.Errorf("the init wrote %q before it was ready", b[0])
		}
		got <- err
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			return fmt.Errorf("prewarmed sandbox %s never reported ready: %w", sb.id, err)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("prewarmed sandbox %s not ready after %s", sb.id, d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newWarmCacheWith makes a cache without its create and discard functions.
func newWarmCacheWith(ctx context.Context, l warmLimits, log *slog.Logger) *warmCache {
	ctx, cancel := context.WithCancel(ctx)
	floor := min(l.prewarm, l.max)
	return &warmCache{sets: map[template]*warmSet{}, ctx: ctx, cancel: cancel, warmLimits: l,
		floor: floor, room: make(chan struct{}, l.max), log: log}
}

// jobRunning counts a job as running, for the free slots, until done.
func (c *warmCache) jobRunning() (done func()) {
	if c == nil {
		return func() {}
	}
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
		c.wakeAll() // a free slot may let a set grow
	}
}

// refillHold bounds how long refills wait for the jobs that took
// prewarmed sandboxes to end (docs/design.md §8, "Warm depth").
const refillHold = time.Second

// freshDone ends a job that took a prewarmed sandbox: when none is left
// running, refills go ahead.
func (c *warmCache) freshDone() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.fresh--
	last := c.fresh == 0
	c.mu.Unlock()
	if last {
		c.wakeAll()
	}
}

// wakeAll wakes every set's refiller.
func (c *warmCache) wakeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, set := range c.sets {
		set.poke()
	}
}

func (set *warmSet) poke() {
	select {
	case set.wake <- struct{}{}:
	default:
	}
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
		set = c.newSetLocked(key, spec)
	} else {
		c.askLocked(set, spec)
	}
	set.lastUsed = time.Now()
	set.demand.arrive(set.lastUsed)
	c.mu.Unlock()
	defer set.poke()
	select {
	case sb := <-set.ready:
		<-c.room // the job's now: no longer a prewarmed one
		c.mu.Lock()
		if c.fresh == 0 {
			c.holdUntil = time.Now().Add(refillHold)
			time.AfterFunc(refillHold, c.wakeAll)
		}
		c.fresh++
		c.mu.Unlock()
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

// newSetLocked starts keeping a template warm, evicting others until its
// floor fits.
func (c *warmCache) newSetLocked(key template, spec schema.RunSpec) *warmSet {
	sctx, stop := context.WithCancel(c.ctx)
	set := &warmSet{spec: spec, ready: make(chan *Sandbox, c.max), wake: make(chan struct{}, 1),
		demand: newDemand(c.max, c.halfLife), asks: minimums{}, ctx: sctx, stop: stop}
	set.asks.ask(spec.Function, spec.Prewarm)
	c.evictLocked(set)
	c.sets[key] = set
	c.wg.Add(1)
	go c.refill(key, set)
	return set
}

// evictLocked makes room for keep's floor: the templates evictions picks
// are dropped, their refillers stopped and their sandboxes removed (in the
// background, by the refillers).
func (c *warmCache) evictLocked(keep *warmSet) {
	var keys []template
	var kept []keptSet
	for k, set := range c.sets {
		if set != keep {
			keys = append(keys, k)
			kept = append(kept, keptSet{floor: c.floorOf(set), pinned: set.asks.most() > 0, lastUsed: set.lastUsed})
		}
	}
	for _, i := range evictions(kept, c.floorOf(keep), c.max) {
		set := c.sets[keys[i]]
		delete(c.sets, keys[i])
		set.stop()
		c.log.Debug("prewarm: template evicted for another", "image", set.spec.Image, "floor", kept[i].floor, "pinned", kept[i].pinned)
	}
}

// askLocked records the prewarm of a job of set's template: a floor that
// rose evicts others until it fits.
func (c *warmCache) askLocked(set *warmSet, spec schema.RunSpec) {
	floor := c.floorOf(set)
	set.asks.ask(spec.Function, spec.Prewarm)
	if c.floorOf(set) > floor {
		c.evictLocked(set)
	}
}

// floorOf is set's minimum depth, under mu.
func (c *warmCache) floorOf(set *warmSet) int { return floorOf(c.floor, set.asks.most(), c.max) }

// refill keeps a template's set at its depth until it idles out, is
// evicted or the cache stops; then it waits for its creates and removes
// what they made.
func (c *warmCache) refill(key template, set *warmSet) {
	defer c.wg.Done()
	defer c.drain(set)
	defer set.creates.Wait()
	defer set.stop()
	tick := time.NewTicker(min(c.idle/4, c.halfLife))
	defer tick.Stop()
	for {
		c.fill(set)
		select {
		case <-set.ctx.Done():
			return
		case <-set.wake:
		case <-tick.C:
			c.mu.Lock()
			idle := time.Since(set.lastUsed) > c.idle && set.asks.most() == 0
			if idle && c.sets[key] == set {
				delete(c.sets, key)
			}
			c.mu.Unlock()
			if idle {
				return
			}
			c.trim(set)
		}
	}
}

// fill starts creates until the set's ready and in-flight sandboxes reach
// its depth, or the creates at once reach their bound; each waits for room
// under PrewarmMax first.
func (c *warmCache) fill(set *warmSet) {
	for set.ctx.Err() == nil {
		c.mu.Lock()
		start := c.shouldCreateLocked(set, time.Now())
		if start {
			set.inflight++
			c.creating++
		}
		c.mu.Unlock()
		if !start {
			return
		}
		select {
		case c.room <- struct{}{}:
			set.creates.Add(1)
			go c.createOne(set)
		case <-set.ctx.Done():
			c.createDone(set)
		}
	}
}

// shouldCreateLocked says whether the set needs one more sandbox made now.
func (c *warmCache) shouldCreateLocked(set *warmSet, now time.Time) bool {
	if c.fresh > 0 && now.Before(c.holdUntil) {
		return false
	}
	free := c.slots - c.running
	floor := c.floorOf(set)
	depth := growTo(set.demand.wanted(now, floor, c.max), floor, free)
	return len(set.ready)+set.inflight < depth && c.creating < min(c.parallel, max(free, 1))
}

// createOne makes one sandbox for the set, holding a room token; after a
// failure it backs off (jobs fall back to cold starts meanwhile) before
// the set may try again.
func (c *warmCache) createOne(set *warmSet) {
	defer set.creates.Done()
	c.mu.Lock()
	spec, warmup := set.spec, set.spec.Warmup
	if time.Since(set.lastMiss) < missQuiet {
		// Behind its jobs: the CPU goes to containers, not to warming
		// them. A zygote then starts bare, without its preload.
		warmup, spec.Preload = nil, nil
	}
	failures := set.failures
	c.mu.Unlock()
	// The cache's context, not the template's: an eviction lets a sandbox
	// being made finish, then removes it.
	t := time.Now()
	sb, err := c.create(c.ctx, spec, warmup)
	if err != nil {
		<-c.room
		c.mu.Lock()
		set.failures++
		c.creating--
		c.mu.Unlock()
		c.wakeAll() // the create's place is free for another template
		c.log.Warn("prewarm a container", "image", set.spec.Image, "err", err)
		select {
		case <-time.After(time.Duration(min(failures+1, 6)) * time.Second):
		case <-set.ctx.Done():
		}
		c.mu.Lock()
		set.inflight--
		c.mu.Unlock()
		set.poke()
		return
	}
	set.ready <- sb
	c.mu.Lock()
	set.failures = 0
	set.demand.created(time.Since(t))
	c.mu.Unlock()
	c.createDone(set)
}

// createDone ends a create's count and wakes every set: its place may go
// to another template's.
func (c *warmCache) createDone(set *warmSet) {
	c.mu.Lock()
	set.inflight--
	c.creating--
	c.mu.Unlock()
	c.wakeAll()
}

// trim removes the ready sandboxes of a set deeper than its demand wants.
func (c *warmCache) trim(set *warmSet) {
	for set.ctx.Err() == nil {
		c.mu.Lock()
		over := len(set.ready) > set.demand.wanted(time.Now(), c.floorOf(set), c.max)
		c.mu.Unlock()
		if !over || !c.removeOne(set) {
			return
		}
	}
}

// drain removes a set's unused sandboxes.
func (c *warmCache) drain(set *warmSet) {
	for c.removeOne(set) {
	}
}

// removeOne removes one of a set's ready sandboxes, if it has one.
func (c *warmCache) removeOne(set *warmSet) bool {
	select {
	case sb := <-set.ready:
		c.discard(sb)
		<-c.room
		return true
	default:
		return false
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
