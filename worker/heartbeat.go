package worker

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/brig-dev/brig/internal/registry"
)

// entryChangeWait bounds how often a change (a job starting or ending)
// rewrites the registry entry between heartbeats.
const entryChangeWait = 250 * time.Millisecond

// heartbeat keeps the worker's registry entry fresh until ctx ends, and
// its gauges with it: every registry.Interval, and soon after a job starts
// or ends.
func (w *Worker) heartbeat(ctx context.Context) {
	t := time.NewTicker(registry.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.entryChanged:
			select { // gather the changes of a burst into one write
			case <-ctx.Done():
				return
			case <-time.After(entryChangeWait):
			}
		}
		e := w.entry()
		w.cfg.Metrics.SetSlots(e.Slots, e.Free)
		w.cfg.Metrics.SetCacheSizes(e.Prewarmed, e.Reusable)
		pctx, cancel := context.WithTimeout(ctx, registry.Interval)
		if err := w.registry.Put(pctx, e); err != nil {
			w.log.Warn("refresh the registry entry", "err", err)
		}
		cancel()
	}
}

// entry is what the registry says of this worker now.
func (w *Worker) entry() registry.Worker {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.entryLocked()
}

// entryLocked is entry with w.mu held.
func (w *Worker) entryLocked() registry.Worker {
	running := slices.Sorted(maps.Keys(w.running))
	var prewarmed, reusable int
	if w.sandboxes != nil {
		prewarmed, reusable = w.sandboxes.Sizes()
	}
	return registry.Worker{
		ID:        w.cfg.ID,
		Pools:     w.cfg.Pools,
		Labels:    w.cfg.Labels,
		Slots:     w.cfg.Slots,
		Free:      max(w.cfg.Slots-len(running), 0),
		Running:   running,
		Prewarmed: prewarmed,
		Reusable:  reusable,
		Started:   w.startedAt,
	}
}

// changed tells the heartbeat that the entry changed.
func (w *Worker) changed() {
	select {
	case w.entryChanged <- struct{}{}:
	default:
	}
}
