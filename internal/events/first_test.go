package events

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// TestPublishFirstOneWinner: of many writers racing to store a job's first
// event (accepted or a terminal rejection), exactly one succeeds; the rest
// get ErrNotFirst, and so does anyone after an ordinary event.
func TestPublishFirstOneWinner(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.Start(t)
	if err := bus.EnsureStreams(t.Context(), js, bus.Config{}); err != nil {
		t.Fatal(err)
	}
	p := NewLog(nc, js, nil)
	for i := range 20 {
		id := schema.JobKey(schema.DefaultTenant, "first-"+strconv.Itoa(i))
		var wins atomic.Int32
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev := &schema.Event{JobID: id, Type: schema.EventAccepted, Seq: 1, ExitCode: -1, SubmitSeq: uint64(w + 1)}
				if w%2 == 1 {
					ev = &schema.Event{JobID: id, Type: schema.EventError, Seq: 2, ExitCode: -1, Status: schema.StatusRejected,
						Error: &schema.ErrorInfo{Type: schema.ErrInvalidJob, Message: "no"}}
				}
				err := p.PublishFirst(t.Context(), ev, "")
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, ErrNotFirst):
					t.Errorf("%s: %v", id, err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%s: %d writers stored a first event; want 1", id, wins.Load())
		}
	}
	// After an ordinary event (a cancellation), no first event is stored.
	if _, err := p.Publish(t.Context(), &schema.Event{JobID: "default.later", Type: schema.EventCancelled, Status: schema.StatusCancelled, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: schema.ErrCancelled, Message: "x"}}, ""); err != nil {
		t.Fatal(err)
	}
	err := p.PublishFirst(t.Context(), &schema.Event{JobID: "default.later", Type: schema.EventAccepted, Seq: 1, ExitCode: -1}, "")
	if !errors.Is(err, ErrNotFirst) {
		t.Errorf("first event after a cancellation: %v; want ErrNotFirst", err)
	}
}
