package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// The hub (docs/design.md §11): one follower per job however many event
// streams read it. The first stream of a job asks brig whether the job
// exists and starts one sdk Watch; every event is encoded once, as an SSE
// frame, and kept in memory for the job; each stream reads the frames at
// its own pace, so 1,000 streams of a job cost one Watch and a slow
// reader holds no one up. The job's frames go when its last stream ends.

// followed is one job the hub follows.
type followed struct {
	key string
	// ready is closed once the job is known to exist and its Watch runs,
	// or startErr says why not.
	ready    chan struct{}
	startErr error

	mu     sync.Mutex
	frames [][]byte // frame i is the job's event at position i+1
	size   int64
	done   bool   // the terminal frame is in, or failed
	failed []byte // the error frame that ends every stream, when failed
	wake   chan struct{}

	clients int // hub.mu
	handle  *sdk.Handle
	conn    *pooled
}

// hub is the set of followed jobs.
type hub struct {
	cfg     Config
	pool    *pool
	log     *slog.Logger
	streams *limiter
	size    atomic.Int64 // frames' bytes of every job

	mu   sync.Mutex
	jobs map[string]*followed // by job key
}

func newHub(cfg Config, p *pool, log *slog.Logger) *hub {
	return &hub{cfg: cfg, pool: p, log: log, jobs: map[string]*followed{},
		streams: newLimiter(cfg.MaxStreams, cfg.MaxTenantStreams)}
}

// attach adds a stream of the caller's job id; detach it when done. The
// job's first stream asks brig (NotFound before any stream starts) and
// starts its Watch; the others wait for that.
func (h *hub) attach(ctx context.Context, c *call, id string) (*followed, error) {
	if !h.streams.enter() {
		return nil, busy("%d event streams are open, the server's bound", h.cfg.MaxStreams)
	}
	if !h.streams.enterTenant(c.tenant) {
		h.streams.leave()
		return nil, busy("tenant %s has %d event streams open, the server's bound per tenant", c.tenant, h.cfg.MaxTenantStreams)
	}
	key := schema.JobKey(c.tenant, id)
	h.mu.Lock()
	f, ok := h.jobs[key]
	if !ok {
		if h.size.Load() >= h.cfg.MaxBuffer {
			h.mu.Unlock()
			h.leave(c.tenant)
			return nil, busy("the server holds %d bytes of events, its bound", h.cfg.MaxBuffer)
		}
		f = &followed{key: key, ready: make(chan struct{}), wake: make(chan struct{})}
		h.jobs[key] = f
	}
	f.clients++
	h.mu.Unlock()
	if !ok {
		h.start(ctx, c, f, id)
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		h.detach(c.tenant, f)
		return nil, ctx.Err()
	}
	if f.startErr != nil {
		h.detach(c.tenant, f)
		return nil, f.startErr
	}
	return f, nil
}

func (h *hub) leave(tenant string) {
	h.streams.leaveTenant(tenant)
	h.streams.leave()
}

// start checks that the job exists and starts its Watch, on the first
// stream's client; the Watch lives as long as the job is followed.
func (h *hub) start(ctx context.Context, c *call, f *followed, id string) {
	defer close(f.ready)
	ctx = context.WithoutCancel(ctx) // the job's other streams wait for it
	actx, cancel := context.WithTimeout(ctx, h.cfg.AskTimeout)
	defer cancel()
	err := awaitKnown(actx, c.client, id, AcceptWait)
	var handle *sdk.Handle
	if err == nil {
		handle, err = c.client.Watch(actx, id) // it follows on, past actx
	}
	if err != nil {
		f.startErr = asProblem(err, "job "+id)
		h.mu.Lock()
		if h.jobs[f.key] == f { // the next stream asks again
			delete(h.jobs, f.key)
		}
		h.mu.Unlock()
		return
	}
	h.pool.retain(c.conn)
	f.handle, f.conn = handle, c.conn
	go h.pump(f)
}

// pump encodes the job's events into frames until its terminal one, the
// Watch stops (its last stream ended), or the connection it follows on
// closes (lost).
func (h *hub) pump(f *followed) {
	events := f.handle.Events()
	for pos := 1; ; pos++ {
		var ev schema.Event
		var ok bool
		select {
		case ev, ok = <-events:
		case <-f.conn.dead:
			h.lost(f)
			return
		}
		if !ok {
			return
		}
		frame, err := encodeFrame(pos, &ev)
		if err != nil {
			f.fail(h.log, problem(http.StatusBadGateway, TypeInfrastructure, "encode event %d: %v", pos, err))
			return
		}
		if !h.add(f, frame, schema.IsTerminal(ev.Type)) || schema.IsTerminal(ev.Type) {
			return
		}
	}
}

// lost ends the streams of a job whose connection closed (its credential
// revoked, say: it was the first stream's) with an error event, and
// forgets the job, so that a stream opened again follows it anew on its
// own connection; with Last-Event-ID it misses nothing.
func (h *hub) lost(f *followed) {
	h.mu.Lock()
	if h.jobs[f.key] == f {
		delete(h.jobs, f.key)
	}
	h.mu.Unlock()
	p := problem(http.StatusBadGateway, TypeInfrastructure, "the connection to brig that followed the job closed; open the stream again with Last-Event-ID")
	if err := f.conn.refused(); err != nil {
		p = problem(http.StatusUnauthorized, TypeUnauthorized,
			"brig's NATS server refused the credential that followed the job (%v); open the stream again with Last-Event-ID", err)
	}
	f.fail(h.log, p)
}

// add appends a frame, within the job's and the hub's bounds.
func (h *hub) add(f *followed, frame []byte, terminal bool) bool {
	n := int64(len(frame))
	f.mu.Lock()
	over := f.size+n > h.cfg.MaxJobBuffer || h.size.Load()+n > h.cfg.MaxBuffer
	f.mu.Unlock()
	if over {
		f.fail(h.log, problem(http.StatusRequestEntityTooLarge, TypeTooLarge,
			"the job's events are over the %d bytes the server keeps of one job (or %d of all): follow it with GET /v1/jobs/{id}?wait",
			h.cfg.MaxJobBuffer, h.cfg.MaxBuffer))
		return false
	}
	h.size.Add(n)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, frame)
	f.size += n
	f.done = terminal
	close(f.wake)
	f.wake = make(chan struct{})
	return true
}

// fail ends the job's streams with an error event carrying p.
func (f *followed) fail(log *slog.Logger, p *Problem) {
	log.Warn("event stream failed", "job", f.key, "err", p.Detail)
	data, _ := json.Marshal(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = []byte("event: error\ndata: " + string(data) + "\n\n")
	f.done = true
	close(f.wake)
	f.wake = make(chan struct{})
}

// since returns the frames after position after, whether the job's
// frames are complete, and a channel closed when more come.
func (f *followed) since(after int) (frames [][]byte, done bool, failed []byte, wake <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if after < len(f.frames) {
		frames = f.frames[after:len(f.frames):len(f.frames)]
	}
	return frames, f.done, f.failed, f.wake
}

// detach ends a stream; the job's last takes the job out of the hub.
func (h *hub) detach(tenant string, f *followed) {
	h.leave(tenant)
	h.mu.Lock()
	f.clients--
	last := f.clients == 0
	if last && h.jobs[f.key] == f {
		delete(h.jobs, f.key)
	}
	h.mu.Unlock()
	if last {
		h.drop(f)
	}
}

// drop stops a job's Watch and gives its frames' bytes back.
func (h *hub) drop(f *followed) {
	<-f.ready
	if f.handle != nil {
		f.handle.Stop()
		h.pool.release(f.conn)
	}
	f.mu.Lock()
	h.size.Add(-f.size)
	f.frames, f.size = nil, 0
	f.mu.Unlock()
}

// close stops every Watch (the streams end with the server).
func (h *hub) close() {
	h.mu.Lock()
	jobs := make([]*followed, 0, len(h.jobs))
	for _, f := range h.jobs {
		jobs = append(jobs, f)
	}
	h.mu.Unlock()
	for _, f := range jobs {
		<-f.ready
		if f.handle != nil {
			f.handle.Stop()
		}
	}
}

// followedJobs is how many jobs the hub follows.
func (h *hub) followedJobs() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.jobs)
}

// encodeFrame is one event as an SSE frame; its id is the event's
// position among the job's events.
func encodeFrame(pos int, ev *schema.Event) ([]byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	frame := make([]byte, 0, len(data)+64)
	frame = append(frame, "id: "...)
	frame = strconv.AppendInt(frame, int64(pos), 10)
	frame = append(frame, "\nevent: "...)
	frame = append(frame, ev.Type...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, data...)
	return append(frame, "\n\n"...), nil
}
