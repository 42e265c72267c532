package bench

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestBurstOnceRunsAtOnce: no run ends before all k have started, which
// only runs in parallel get through.
func TestBurstOnceRunsAtOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const k = 8
	var started sync.WaitGroup
	started.Add(k)
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	ds, err := burstOnce(ctx, k, func(ctx context.Context) error {
		started.Done()
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil || len(ds) != k {
		t.Fatalf("burstOnce = %v, %v; want %d durations", ds, err, k)
	}
	for _, d := range ds {
		if d <= 0 {
			t.Errorf("a run took %v", d)
		}
	}
	boom := errors.New("boom")
	n := 0
	var mu sync.Mutex
	_, err = burstOnce(ctx, 3, func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("burstOnce hid a run's error: %v", err)
	}
}
