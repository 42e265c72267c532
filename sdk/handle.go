package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// replayIdle is how long the server keeps a replay consumer whose handle
// vanished without Stop (a crashed client); a handle deletes its own as
// soon as the job ends or it is stopped.
const replayIdle = time.Minute

// Handle follows one job's events.
type Handle struct {
	ID string

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
	// The replay from the events stream, when the handle has one (Watch, a
	// resubmitted id, a reconnect that may have lost live events).
	cons      jetstream.Consumer
	cc        jetstream.ConsumeContext
	replaying bool // a replay is being set up
}

// eventKey identifies an event across its live copy and its replay.
type eventKey struct {
	typ     string
	attempt int
	seq     int64
}

func (c *Client) newHandle(jobID string) *Handle {
	h := &Handle{
		ID:     jobID,
		c:      c,
		events: make(chan schema.Event),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		seen:   map[eventKey]bool{},
	}
	go h.forward()
	return h
}

// Watch follows a job by id, replaying its events from the first; use it
// to pick a job up again after a reconnect or from another process.
func (c *Client) Watch(ctx context.Context, jobID string) (*Handle, error) {
	if !schema.ValidID(jobID) {
		return nil, fmt.Errorf("sdk: invalid job id %q", jobID)
	}
	h := c.newHandle(jobID)
	if err := h.replay(ctx); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// replay reads the job's events from the stream, from the first; events
// the handle has already delivered are skipped. The handle's lock is not
// held while the server is asked: the client's inbox keeps delivering.
func (h *Handle) replay(ctx context.Context) error {
	h.mu.Lock()
	busy := h.cc != nil || h.terminal != nil || h.replaying
	h.replaying = !busy
	h.mu.Unlock()
	if busy {
		return nil
	}
	cons, cc, err := h.consume(ctx)
	h.mu.Lock()
	h.replaying = false
	if err == nil {
		h.cons, h.cc = cons, cc
	}
	ended := h.terminal != nil
	h.mu.Unlock()
	select {
	case <-h.quit:
		ended = true // stopped while the replay started
	default:
	}
	if ended {
		go h.unsubscribe() // the terminal event came, or Stop, while the replay started
	}
	return err
}

func (h *Handle) consume(ctx context.Context) (jetstream.Consumer, jetstream.ConsumeContext, error) {
	cons, err := h.c.js.OrderedConsumer(ctx, schema.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{schema.EventsFilter(h.ID)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: replayIdle,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sdk: watch job %s: %w", h.ID, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if ev, err := schema.DecodeEvent(msg.Data()); err == nil {
			h.deliver(ev)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sdk: watch job %s: %w", h.ID, err)
	}
	return cons, cc, nil
}

// deliver queues an event of the job once; it never blocks on the reader
// of Events. The terminal event ends the handle's subscriptions.
func (h *Handle) deliver(ev *schema.Event) {
	if ev.JobID != h.ID {
		return // not an event of this job
	}
	key := eventKey{ev.Type, ev.Attempt, ev.Seq}
	h.mu.Lock()
	if h.terminal != nil || h.seen[key] {
		h.mu.Unlock()
		return // nothing follows the terminal event; a replayed copy
	}
	h.seen[key] = true
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
		go h.unsubscribe()
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

// unsubscribe ends the live and replay subscriptions and deletes the
// replay's consumer from the server.
func (h *Handle) unsubscribe() {
	h.c.forget(h)
	h.mu.Lock()
	cons, cc := h.cons, h.cc
	h.cons, h.cc = nil, nil
	h.mu.Unlock()
	if cc == nil {
		return
	}
	cc.Stop()
	if info := cons.CachedInfo(); info != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.c.js.DeleteConsumer(ctx, schema.StreamEvents, info.Name)
	}
}

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
