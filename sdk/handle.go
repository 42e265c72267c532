package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// Handle follows one job's events.
type Handle struct {
	// ID is the job's id, as its client chose it.
	ID string
	// Key is the job's key, <tenant>.<id>: every event's job_id.
	Key string

	c      *Client
	events chan schema.Event
	done   chan struct{} // closed when the terminal event arrived
	quit   chan struct{} // closed by Stop
	wake   chan struct{}
	stop   sync.Once

	mu       sync.Mutex
	queue    []schema.Event
	seen     map[eventKey]bool
	terminal *schema.Event
	err      error
	// replaying: the handle reads the job's events through the
	// dispatchers' replay service (Watch, a resubmitted id, a reconnect or
	// a silence that may have lost live events) until the job ends or the
	// handle stops.
	replaying bool
	// replayErr is the last failure of the replay, kept to explain a
	// Result that times out.
	replayErr error
	// quietSince is when the live handle last heard an event or last asked
	// whether its job had ended (see Client.checkQuiet).
	quietSince time.Time
	checking   bool
	// submission is the job as this client published it (subject and
	// body), kept to publish it again (Client.resubmitJob).
	submission *nats.Msg
}

// eventKey identifies an event across its live copy and its replays.
type eventKey struct {
	typ     schema.EventType
	attempt int
	seq     int64
}

func (c *Client) newHandle(jobID string) *Handle {
	h := &Handle{
		ID:     jobID,
		Key:    c.key(jobID),
		c:      c,
		events: make(chan schema.Event),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		seen:   map[eventKey]bool{},

		quietSince: time.Now(),
	}
	go h.forward()
	return h
}

// Watch follows the client's tenant's job jobID, replaying its events from
// the first; use it to pick a job up again after a reconnect or from
// another process. jobID may also be the job's key (an event's job_id)
// when it is of the client's tenant.
func (c *Client) Watch(ctx context.Context, jobID string) (*Handle, error) {
	jobID, err := c.jobID(jobID)
	if err != nil {
		return nil, err
	}
	h := c.newHandle(jobID)
	if err := h.replay(ctx); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// replay has the job's events read from the stream, from the first,
// unless a replay runs already or the job ended; events the handle has
// already delivered are skipped. It returns once the first request is
// out; the replay then runs on its own (follow) until the job ends or the
// handle stops.
func (h *Handle) replay(ctx context.Context) error {
	h.mu.Lock()
	busy := h.replaying || h.terminal != nil
	h.replaying = true
	h.mu.Unlock()
	if busy {
		return nil
	}
	a, err := h.ask(ctx)
	if err != nil {
		h.mu.Lock()
		h.replaying = false
		h.mu.Unlock()
		return err
	}
	go h.follow(context.WithoutCancel(ctx), a)
	return nil
}

// replayAsk is one request to the replay service and the subscription
// its answers come to: a fresh inbox, so that answers to an earlier
// request (from a follow still running for it) never mix in.
type replayAsk struct {
	sub        *nats.Subscription
	ctrl       chan *nats.Msg // the first control message that ends the request
	heard      atomic.Int64   // unix nanoseconds of the last message
	reconnects uint64         // the connection's reconnects when it was sent
}

// ask sends one replay request. The answers' subscription is in place on
// the server (flushed) before the request leaves.
func (h *Handle) ask(ctx context.Context) (*replayAsk, error) {
	nc := h.c.nc
	a := &replayAsk{ctrl: make(chan *nats.Msg, 1), reconnects: nc.Stats().Reconnects}
	a.heard.Store(time.Now().UnixNano())
	sub, err := nc.Subscribe(h.c.newInbox(), a.onMsg(h))
	if err != nil {
		return nil, fmt.Errorf("sdk: watch job %s: %w", h.ID, err)
	}
	_ = sub.SetPendingLimits(-1, 256<<20) // a job's events come in a burst
	a.sub = sub
	ctx, cancel := context.WithTimeout(ctx, replayAskWait)
	defer cancel()
	if err := nc.FlushWithContext(ctx); err != nil {
		a.stop()
		return nil, fmt.Errorf("sdk: watch job %s: %w", h.ID, err)
	}
	if err := nc.PublishRequest(schema.ReplaySubject(h.Key), sub.Subject, nil); err != nil {
		a.stop()
		return nil, fmt.Errorf("sdk: watch job %s: %w", h.ID, err)
	}
	return a, nil
}

// onMsg takes the answers to a request: events go to the handle (in the
// order the dispatcher sent them), control messages to follow.
func (a *replayAsk) onMsg(h *Handle) nats.MsgHandler {
	return func(m *nats.Msg) {
		a.heard.Store(time.Now().UnixNano())
		c := m.Header.Get(replayHeader)
		if c == "" && m.Header.Get(statusHeader) == "" {
			if ev, err := schema.DecodeEvent(m.Data); err == nil {
				h.deliver(ev)
			}
			return
		}
		if c == replayAlive {
			return
		}
		select {
		case a.ctrl <- m:
		default: // a later control message; the first one decides
		}
	}
}

func (a *replayAsk) stop() { _ = a.sub.Unsubscribe() }

// lost reports whether answers to the request may have been lost: the
// connection reconnected (the server drops what it could not deliver),
// the subscription dropped messages, or nothing came for quiet (the
// request or the dispatcher following it was lost; a follow says it is
// alive every few seconds).
func (a *replayAsk) lost(nc *nats.Conn, quiet time.Duration) bool {
	if nc.Stats().Reconnects != a.reconnects {
		return true
	}
	if n, err := a.sub.Dropped(); err == nil && n > 0 {
		return true
	}
	return time.Since(time.Unix(0, a.heard.Load())) > quiet
}

// The replay protocol's wire, as dispatcher/replay.go speaks it
// (docs/design.md §6): forwarded events carry no replayHeader; a control
// message has an empty body and one of these values.
const (
	replayHeader      = "Brig-Replay"
	replayErrorHeader = "Brig-Error"
	replayEnd         = "end"
	replayIdle        = "idle"
	replayBusy        = "busy"
	replayError       = "error"
	replayAlive       = "alive"
	// statusHeader carries the server's 503 when no dispatcher took the
	// request (no responders).
	statusHeader = "Status"
)

// Timing of a replay.
const (
	// replayQuiet is how long a request may go unanswered, not even by a
	// heartbeat (every 5 s), before it is sent again.
	replayQuiet = 15 * time.Second
	// replayAskWait bounds sending one request.
	replayAskWait = 10 * time.Second
	// replayRetryMin and replayRetryMax bound the pause before asking
	// again after busy, an error, or no dispatcher at all.
	replayRetryMin = 100 * time.Millisecond
	replayRetryMax = 5 * time.Second
	// replayTick is how often a replay looks for lost answers.
	replayTick = 500 * time.Millisecond
)

// replayNext is what follow does after a request ended.
type replayNext int

const (
	replayDone  replayNext = iota // the job ended, or the handle or client stopped
	replayAgain                   // ask again now
	replayLater                   // ask again after a pause
)

// follow runs a replay: it asks again until the job's terminal event has
// come (by whatever path) or the handle stops.
func (h *Handle) follow(ctx context.Context, a *replayAsk) {
	pause := replayRetryMin
	for {
		next := h.await(a)
		a.stop()
		switch next {
		case replayDone:
			return
		case replayAgain:
			pause = replayRetryMin
		case replayLater:
			if !h.sleep(pause) {
				return
			}
			pause = min(2*pause, replayRetryMax)
		}
		for {
			var err error
			if a, err = h.ask(ctx); err == nil {
				break
			}
			h.failed(err)
			if !h.sleep(pause) {
				return
			}
			pause = min(2*pause, replayRetryMax)
		}
	}
}

// await waits until request a ends and says what to do next.
func (h *Handle) await(a *replayAsk) replayNext {
	t := time.NewTicker(replayTick)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return replayDone
		case <-h.quit:
			return replayDone
		case <-h.c.closed:
			return replayDone
		case m := <-a.ctrl:
			return h.onControl(m)
		case <-t.C:
			if a.lost(h.c.nc, replayQuiet) {
				return replayAgain
			}
		}
	}
}

// onControl reads the control message that ended a request.
func (h *Handle) onControl(m *nats.Msg) replayNext {
	switch m.Header.Get(replayHeader) {
	case replayEnd:
		if h.ended() {
			return replayDone
		}
		// Only the terminal event precedes end; without it the message
		// was not the dispatcher's answer to this request.
		return replayLater
	case replayIdle:
		return replayAgain
	case replayBusy:
		return replayLater
	case replayError:
		h.failed(fmt.Errorf("sdk: replay job %s: %s", h.ID, m.Header.Get(replayErrorHeader)))
		return replayLater
	}
	if m.Header.Get(statusHeader) == "503" {
		h.failed(fmt.Errorf("sdk: replay job %s: no dispatcher answers", h.ID))
	}
	return replayLater
}

// failed records a replay's failure; the replay goes on.
func (h *Handle) failed(err error) {
	h.c.log.Warn("replay a job's events; will ask again", "job", h.ID, "err", err)
	h.mu.Lock()
	h.replayErr = err
	h.mu.Unlock()
}

// sleep pauses for d; it reports false when the replay should end instead.
func (h *Handle) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.done:
	case <-h.quit:
	case <-h.c.closed:
	}
	return false
}

func (h *Handle) ended() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.terminal != nil
}

// deliver queues an event of the job once; it never blocks on the reader
// of Events. The terminal event takes the handle off the client's inbox
// (a replay sees the handle done and ends too).
func (h *Handle) deliver(ev *schema.Event) {
	if ev.JobID != h.Key {
		return // not an event of this job
	}
	key := eventKey{ev.Type, ev.Attempt, ev.Seq}
	h.mu.Lock()
	if h.terminal != nil || h.seen[key] {
		h.mu.Unlock()
		return // nothing follows the terminal event; a replayed copy
	}
	h.seen[key] = true
	h.quietSince = time.Now()
	h.queue = append(h.queue, *ev)
	terminal := schema.IsTerminal(ev.Type)
	if terminal {
		h.terminal, h.err = ev, resultError(ev)
		close(h.done)
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	if terminal {
		h.unsubscribe()
	}
}

// silent reports whether no event has arrived yet and the handle is not
// stopped.
func (h *Handle) silent() bool {
	select {
	case <-h.quit:
		return false
	default:
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen) == 0
}

// unsubscribe takes the handle off the client's inbox. A replay ends by
// itself once the job has ended or the handle stopped.
func (h *Handle) unsubscribe() { h.c.forget(h) }

// forward moves queued events to the Events channel in order.
func (h *Handle) forward() {
	defer close(h.events)
	for {
		h.mu.Lock()
		var next *schema.Event
		if len(h.queue) > 0 {
			next = &h.queue[0]
			h.queue = h.queue[1:]
		}
		h.mu.Unlock()
		if next == nil {
			select {
			case <-h.wake:
				continue
			case <-h.quit:
				return
			}
		}
		select {
		case h.events <- *next:
			if schema.IsTerminal(next.Type) {
				return
			}
		case <-h.quit:
			return
		}
	}
}

// Events delivers the job's events in order, ending with the terminal one,
// after which the channel is closed. Reading it is optional: Result works
// either way.
func (h *Handle) Events() <-chan schema.Event { return h.events }

// Result waits for the terminal event. The error is nil only when the job
// succeeded; see Client.Run.
func (h *Handle) Result(ctx context.Context) (*schema.Event, error) {
	select {
	case <-h.done:
	case <-ctx.Done():
		h.mu.Lock()
		rerr := h.replayErr
		h.mu.Unlock()
		if rerr != nil {
			return nil, fmt.Errorf("sdk: waiting for job %s: %w (last replay failure: %w)", h.ID, ctx.Err(), rerr)
		}
		return nil, fmt.Errorf("sdk: waiting for job %s: %w", h.ID, ctx.Err())
	case <-h.quit:
		select {
		case <-h.done:
		default:
			return nil, errors.New("sdk: handle stopped before the job ended")
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.terminal, h.err
}

// Stop ends the subscription. Safe to call twice.
func (h *Handle) Stop() {
	h.stop.Do(func() {
		h.unsubscribe()
		close(h.quit)
	})
}
