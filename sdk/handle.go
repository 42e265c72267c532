package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

// Handle follows one job's events.
type Handle struct {
	ID string

	cc     jetstream.ConsumeContext
	events chan schema.Event
	done   chan struct{} // closed when the terminal event arrived
	quit   chan struct{} // closed by Stop
	wake   chan struct{}
	stop   sync.Once

	mu       sync.Mutex
	queue    []schema.Event
	terminal *schema.Event
	err      error
}

// Watch follows a job by id, replaying its events from the first; use it
// to pick a job up again after a reconnect or from another process.
func (c *Client) Watch(ctx context.Context, jobID string) (*Handle, error) {
	if !schema.ValidID(jobID) {
		return nil, fmt.Errorf("sdk: invalid job id %q", jobID)
	}
	cons, err := c.js.OrderedConsumer(ctx, schema.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schema.EventsFilter(jobID)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("sdk: watch job %s: %w", jobID, err)
	}
	h := &Handle{
		ID:     jobID,
		events: make(chan schema.Event),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	cc, err := cons.Consume(h.onMsg)
	if err != nil {
		return nil, fmt.Errorf("sdk: watch job %s: %w", jobID, err)
	}
	h.cc = cc
	go h.forward()
	return h, nil
}

// onMsg queues an event; it never blocks on the reader of Events.
func (h *Handle) onMsg(msg jetstream.Msg) {
	ev, err := schema.DecodeEvent(msg.Data())
	if err != nil || ev.JobID != h.ID {
		return // not an event of this job
	}
	h.mu.Lock()
	if h.terminal != nil {
		h.mu.Unlock()
		return // nothing follows the terminal event
	}
	h.queue = append(h.queue, *ev)
	if schema.IsTerminal(ev.Type) {
		h.terminal, h.err = ev, resultError(ev)
		close(h.done)
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
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
		h.cc.Stop()
		close(h.quit)
	})
}
