package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// TestTenantQuota: a tenant's max_queued bounds its jobs accepted and not
// yet ended (docs/design.md §10.3). A burst of submissions past it gets
// exactly max_queued jobs accepted and the rest rejected, each with one
// terminal QuotaExceeded event and nothing else; once the accepted ones
// end, their places are free again.
func TestTenantQuota(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	const maxQueued, burst = 3, 10
	u := newTenant(ctx, t, schema.Tenant{Name: "quota-" + randomHex(3), MaxQueued: maxQueued})

	// Jobs that outlast the burst: none ends before all are dispatched.
	handles := make([]*sdk.Handle, burst)
	var wg sync.WaitGroup
	for i := range handles {
		wg.Go(func() {
			h, err := u.c.Submit(ctx, pythonJob(fmt.Sprintf("quota%02d", i), "import time; time.sleep(6); print('ran')"))
			if err != nil {
				t.Errorf("submit %d: %v", i, err)
				return
			}
			handles[i] = h
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ran, refused := 0, 0
	for _, h := range handles {
		ev, err := h.Result(ctx)
		h.Stop()
		if ev == nil {
			t.Fatalf("job %s: no terminal event: %v", h.ID, err)
		}
		accepted := countStored(t, schema.EventSubject(h.Key, schema.EventAccepted))
		switch {
		case ev.Status == schema.StatusSucceeded && ev.Stdout == "ran\n" && accepted == 1:
			ran++
		case ev.Type == schema.EventError && ev.Status == schema.StatusRejected && ev.Error != nil &&
			ev.Error.Type == schema.ErrQuotaExceeded && accepted == 0:
			refused++
			wantIs(t, err, sdk.ErrRejected)
			if !strings.Contains(ev.Error.Message, u.name) || !strings.Contains(ev.Error.Message, fmt.Sprint(maxQueued)) {
				t.Errorf("job %s: the refusal %q names neither the tenant nor its max-queued", h.ID, ev.Error.Message)
			}
			if n := countStored(t, schema.EventsFilter(h.Key)); n != 1 {
				t.Errorf("refused job %s stored %d events, want its one rejection", h.ID, n)
			}
		default:
			t.Errorf("job %s: %s (%d accepted events); want it run or refused for the quota", h.ID, brief(ev), accepted)
		}
	}
	if ran != maxQueued || refused != burst-maxQueued {
		t.Errorf("a burst of %d with max_queued %d: %d ran, %d refused; want %d and %d", burst, maxQueued, ran, refused, maxQueued, burst-maxQueued)
	}

	// The ended jobs freed their places: their markers are gone, and the
	// next job is accepted.
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		n, err := activeMarkers(ctx, u.name)
		return err == nil && n == 0, fmt.Sprintf("%d markers of active jobs (%v)", n, err)
	})
	ev, err := u.run(t, pythonJob("quota-after", `print("after")`))
	if err != nil || ev.Stdout != "after\n" {
		t.Errorf("a job after the burst ended: %v (%s)", err, brief(ev))
	}
}

// activeMarkers counts the markers in a tenant's active-job stream.
func activeMarkers(ctx context.Context, tenant string) (uint64, error) {
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		return 0, err
	}
	s, err := js.Stream(ctx, schema.ActiveStream(tenant))
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
