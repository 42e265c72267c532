// Package registry is where workers say they are alive and what they do:
// the KV bucket BRIG_WORKERS (bus.WorkersBucket, configured with its
// limits in internal/bus), one key per worker, rewritten every few
// seconds and expiring when a worker stops writing. Dispatchers read it to
// route (a pool with no live worker), `brig status` to show the fleet.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// Interval is how often a worker writes its entry: well within
// bus.WorkersTTL, after which an entry is gone (the worker died or lost
// its connection).
const Interval = 2 * time.Second

// Worker is one worker's entry.
type Worker struct {
	ID     string            `json:"id"`
	Pools  []string          `json:"pools"`
	Labels map[string]string `json:"labels,omitempty"`
	Slots  int               `json:"slots"`
	Free   int               `json:"free"`
	// Running are the ids of the jobs it runs now.
	Running []string `json:"running,omitempty"`
	// Prewarmed and Reusable count its idle containers.
	Prewarmed int       `json:"prewarmed"`
	Reusable  int       `json:"reusable"`
	Started   time.Time `json:"started"`
	Seen      time.Time `json:"seen"`
}

// Registry reads and writes the bucket.
type Registry struct {
	kv jetstream.KeyValue
}

// Open opens the bucket, creating it when missing (replicas as the
// streams; 0 means 1).
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Registry, error) {
	kv, err := bus.EnsureBucket(ctx, js, bus.WorkersConfig(replicas), bus.WorkersMaxMessages)
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", bus.WorkersBucket, err)
	}
	return &Registry{kv: kv}, nil
}

// Put writes w's entry, stamping Seen. An entry over
// bus.WorkersMaxValueSize goes without its Running list (Free still counts
// the jobs), so that a worker with thousands of slots stays routable.
func (r *Registry) Put(ctx context.Context, w Worker) error {
	w.Seen = time.Now().UTC()
	data, err := schema.Marshal(w)
	if err == nil && len(data) > bus.WorkersMaxValueSize {
		w.Running = nil
		data, err = schema.Marshal(w)
	}
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, w.ID, data); err != nil {
		return fmt.Errorf("registry: put %s: %w", w.ID, err)
	}
	return nil
}

// Remove deletes a worker's entry (it stops).
func (r *Registry) Remove(ctx context.Context, id string) error {
	if err := r.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("registry: remove %s: %w", id, err)
	}
	return nil
}

// List returns the live workers, by id.
func (r *Registry) List(ctx context.Context) ([]Worker, error) {
	keys, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: list: %w", err)
	}
	defer keys.Stop()
	var out []Worker
	for key := range keys.Keys() {
		e, err := r.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("registry: get %s: %w", key, err)
		}
		var w Worker
		if json.Unmarshal(e.Value(), &w) != nil || time.Since(w.Seen) > bus.WorkersTTL {
			continue
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Worker) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// Serves reports whether any live worker in ws serves pool.
func Serves(ws []Worker, pool string) bool {
	for _, w := range ws {
		if slices.Contains(w.Pools, pool) {
			return true
		}
	}
	return false
}
