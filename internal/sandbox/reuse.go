package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/brig-dev/brig/schema"
)

// reuseKey is what jobs of a reused sandbox must share: the tenant, the
// function and everything set at container creation. A sandbox never
// serves two tenants: a wipe undoes what a job changed as far as the init
// can tell, and that is not a wall between tenants (docs/design.md §5).
type reuseKey struct {
	tenant   string
	function string
	tmpl     template
}

// reuseCache is the reuse cache: it keeps idle sandboxes of functions that
// opted out of single use (single_use: false). A sandbox goes back only
// after a job whose init reported a clean wipe; it serves one job at a
// time, never two functions, and is removed after PrewarmIdle without a
// job, after reuseMaxJobs jobs, or when the cache holds Slots idle
// sandboxes and a fresher one comes back.
type reuseCache struct {
	r      *Runner
	ctx    context.Context // for removals of its own, off any job's
	mu     sync.Mutex
	idle   []idleSandbox // oldest first
	closed bool
	stopC  chan struct{}
	wg     sync.WaitGroup
}

type idleSandbox struct {
	key   reuseKey
	sb    *Sandbox
	since time.Time
}

func newReuseCache(r *Runner, ctx context.Context) *reuseCache {
	c := &reuseCache{r: r, ctx: ctx, stopC: make(chan struct{})}
	c.wg.Add(1)
	go c.reap()
	return c
}

func reuseKeyOf(tenant string, spec schema.RunSpec) reuseKey {
	return reuseKey{tenant: tenant, function: spec.Function, tmpl: templateOf(spec)}
}

// take returns the most recently used idle sandbox of tenant for spec, or
// nil.
func (c *reuseCache) take(tenant string, spec schema.RunSpec) *Sandbox {
	key := reuseKeyOf(tenant, spec)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.idle) - 1; i >= 0; i-- {
		if c.idle[i].key == key {
			sb := c.idle[i].sb
			c.idle = append(c.idle[:i], c.idle[i+1:]...)
			return sb
		}
	}
	return nil
}

// put gives a sandbox back after a job of spec that left it reusable.
func (c *reuseCache) put(ctx context.Context, spec schema.RunSpec, sb *Sandbox) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.r.discard(ctx, sb)
		return
	}
	c.idle = append(c.idle, idleSandbox{key: reuseKeyOf(sb.tenant, spec), sb: sb, since: time.Now()})
	var evicted *Sandbox
	if len(c.idle) > c.r.cfg.Slots {
		evicted = c.idle[0].sb
		c.idle = c.idle[1:]
	}
	c.mu.Unlock()
	if evicted != nil {
		c.r.discard(ctx, evicted)
	}
}

// reap removes sandboxes idle for PrewarmIdle.
func (c *reuseCache) reap() {
	defer c.wg.Done()
	tick := time.NewTicker(c.r.cfg.PrewarmIdle / 4)
	defer tick.Stop()
	for {
		select {
		case <-c.stopC:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		var old []*Sandbox
		for len(c.idle) > 0 && time.Since(c.idle[0].since) > c.r.cfg.PrewarmIdle {
			old = append(old, c.idle[0].sb)
			c.idle = c.idle[1:]
		}
		c.mu.Unlock()
		for _, sb := range old {
			c.r.discard(c.ctx, sb)
		}
	}
}

// stop removes every idle sandbox; sandboxes still running a job are
// removed when it ends.
func (c *reuseCache) stop() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	close(c.stopC)
	c.wg.Wait()
	for _, is := range idle {
		c.r.discard(c.ctx, is.sb)
	}
}

// size is how many idle sandboxes wait for their function's next job.
func (c *reuseCache) size() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}
