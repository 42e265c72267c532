package worker

import (
	"context"
	"sync"
	"time"

	"github.com/brig-dev/brig/schema"
)

// reuseMaxJobs bounds how many jobs one reused container serves before it
// is replaced, so that a slow leak of any kind cannot grow without end.
const reuseMaxJobs = 1000

// reuseKey is what jobs of a reused container must share: the function and
// everything set at container creation.
type reuseKey struct {
	function string
	tmpl     template
}

// reusePool keeps idle containers of functions that opted out of single
// use (single_use: false). A container goes back only after a job whose
// init reported a clean wipe; it serves one job at a time, never two
// functions, and is removed after PrewarmIdle without a job, after
// reuseMaxJobs jobs, or when the pool holds Slots idle containers and a
// fresher one comes back.
type reusePool struct {
	w      *Worker
	mu     sync.Mutex
	idle   []idleBox // oldest first
	closed bool
	stopC  chan struct{}
	wg     sync.WaitGroup
}

type idleBox struct {
	key   reuseKey
	b     *box
	since time.Time
}

func newReusePool(w *Worker) *reusePool {
	p := &reusePool{w: w, stopC: make(chan struct{})}
	p.wg.Add(1)
	go p.reap()
	return p
}

func reuseKeyOf(spec schema.RunSpec) reuseKey {
	return reuseKey{function: spec.Function, tmpl: templateOf(spec)}
}

// take returns the most recently used idle container for spec, or nil.
func (p *reusePool) take(spec schema.RunSpec) *box {
	key := reuseKeyOf(spec)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		if p.idle[i].key == key {
			b := p.idle[i].b
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return b
		}
	}
	return nil
}

// put gives a container back after a job of spec that left it reusable.
func (p *reusePool) put(ctx context.Context, spec schema.RunSpec, b *box) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.w.discard(ctx, b)
		return
	}
	p.idle = append(p.idle, idleBox{key: reuseKeyOf(spec), b: b, since: time.Now()})
	var evicted *box
	if len(p.idle) > p.w.cfg.Slots {
		evicted = p.idle[0].b
		p.idle = p.idle[1:]
	}
	p.mu.Unlock()
	if evicted != nil {
		p.w.discard(ctx, evicted)
	}
}

// reap removes containers idle for PrewarmIdle.
func (p *reusePool) reap() {
	defer p.wg.Done()
	tick := time.NewTicker(p.w.cfg.PrewarmIdle / 4)
	defer tick.Stop()
	for {
		select {
		case <-p.stopC:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		var old []*box
		for len(p.idle) > 0 && time.Since(p.idle[0].since) > p.w.cfg.PrewarmIdle {
			old = append(old, p.idle[0].b)
			p.idle = p.idle[1:]
		}
		p.mu.Unlock()
		for _, b := range old {
			p.w.discard(context.Background(), b)
		}
	}
}

// stop removes every idle container; containers still running a job are
// removed when it ends.
func (p *reusePool) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	close(p.stopC)
	p.wg.Wait()
	for _, ib := range idle {
		p.w.discard(context.Background(), ib.b)
	}
}

// size is how many idle containers wait for their function's next job.
func (p *reusePool) size() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
