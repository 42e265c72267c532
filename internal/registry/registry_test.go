package registry

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
)

func TestRegistry(t *testing.T) {
	_, _, js := natstest.Start(t)
	r, err := Open(t.Context(), js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ws, err := r.List(t.Context()); err != nil || len(ws) != 0 {
		t.Fatalf("empty registry: %+v, %v", ws, err)
	}
	for _, w := range []Worker{
		{ID: "w2", Pools: []string{"gpu"}, Slots: 2, Free: 1, Running: []string{"j1"}},
		{ID: "w1", Pools: []string{"default", "cpu"}, Slots: 4, Free: 4, Labels: map[string]string{"zone": "a"}},
	} {
		if err := r.Put(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
	// An entry whose worker stopped writing long ago counts as gone even
	// before the bucket's TTL removes it.
	stale, _ := json.Marshal(Worker{ID: "w3", Pools: []string{"late"}, Seen: time.Now().Add(-2 * bus.WorkersTTL)})
	if _, err := r.kv.Put(t.Context(), "w3", stale); err != nil {
		t.Fatal(err)
	}
	ws, err := r.List(t.Context())
	if err != nil || len(ws) != 2 || ws[0].ID != "w1" || ws[1].ID != "w2" || ws[0].Labels["zone"] != "a" || ws[1].Running[0] != "j1" {
		t.Fatalf("List = %+v, %v; want w1 and w2, by id", ws, err)
	}
	if !Serves(ws, "cpu") || !Serves(ws, "gpu") || Serves(ws, "late") || Serves(ws, "none") {
		t.Error("Serves disagrees with the entries")
	}
	if err := r.Remove(t.Context(), "w2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(t.Context(), "never-there"); err != nil {
		t.Errorf("removing an absent worker: %v", err)
	}
	if ws, err := r.List(t.Context()); err != nil || len(ws) != 1 || Serves(ws, "gpu") {
		t.Errorf("after Remove: %+v, %v", ws, err)
	}
}

func TestRegistryBucketLimits(t *testing.T) {
	_, _, js := natstest.Start(t)
	r, err := Open(t.Context(), js, 0)
	if err != nil {
		t.Fatal(err)
	}
	busy := Worker{ID: "big", Pools: []string{"default"}, Slots: 5000}
	for i := range busy.Slots {
		busy.Running = append(busy.Running, fmt.Sprintf("job-%060d", i))
	}
	if err := r.Put(t.Context(), busy); err != nil {
		t.Fatalf("entry of a worker running %d jobs: %v", busy.Slots, err)
	}
	if ws, err := r.List(t.Context()); err != nil || !Serves(ws, "default") {
		t.Errorf("List = %+v, %v; want the busy worker, routable", ws, err)
	}
	s, err := js.Stream(t.Context(), "KV_"+bus.WorkersBucket)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxBytes != bus.WorkersMaxBytes || c.MaxMsgs != bus.WorkersMaxMessages || c.MaxMsgSize != bus.WorkersMaxValueSize {
		t.Errorf("%s: MaxBytes %d, MaxMsgs %d, MaxMsgSize %d; want %d, %d, %d", bus.WorkersBucket, c.MaxBytes, c.MaxMsgs, c.MaxMsgSize, bus.WorkersMaxBytes, bus.WorkersMaxMessages, bus.WorkersMaxValueSize)
	}
}
