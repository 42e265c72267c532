package dispatcher

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestKeyedMutex(t *testing.T) {
	t.Parallel()
	var k keyedMutex
	var inA atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "a"
			if i%2 == 1 {
				key = "b"
			}
			unlock := k.lock(key)
			if key == "a" {
				if inA.Add(1) != 1 {
					t.Error("two holders of key a")
				}
				inA.Add(-1)
			}
			unlock()
		}()
	}
	wg.Wait()
	if len(k.locks) != 0 {
		t.Errorf("%d locks left", len(k.locks))
	}
}
