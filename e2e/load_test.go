package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
	"github.com/brig-dev/brig/worker"
)

const (
	loadJobs = 300
	// loadBudget only guards against a hang: it is not a speed target
	// (brig bench measures speed). A run takes 2–4 min here while the
	// other packages' tests share the two cores and Docker; machines vary
	// up to 5× in speed.
	loadBudget    = 12 * time.Minute
	loadHeapLimit = 64 << 20 // growth of the heap in use across the run
)

// loadKind is one kind of job in the load mix and what must become of it.
type loadKind struct {
	name    string
	percent int
	job     func(i int) schema.Job
	check   func(i int, ev *schema.Event) bool
}

var loadMix = []loadKind{
	{
		name: "print", percent: 70,
		job: func(i int) schema.Job { return pythonJob("load-print", fmt.Sprintf("print('job %d')", i)) },
		check: func(i int, ev *schema.Event) bool {
			return ev.Type == schema.EventResult && ev.Status == schema.StatusSucceeded && ev.ExitCode == 0 &&
				ev.Stdout == fmt.Sprintf("job %d\n", i)
		},
	},
	{
		name: "exit 3", percent: 15,
		job: func(int) schema.Job { return pythonJob("load-exit", "import sys\nsys.exit(3)") },
		check: func(_ int, ev *schema.Event) bool {
			return ev.Type == schema.EventResult && ev.Status == schema.StatusFailed && ev.ExitCode == 3 &&
				ev.Error != nil && ev.Error.Type == schema.ErrNonZeroExit
		},
	},
	{
		name: "timeout", percent: 15,
		job: func(int) schema.Job {
			j := pythonJob("load-timeout", "while True:\n    pass")
			j.TimeoutMS = 1000
			return j
		},
		check: func(_ int, ev *schema.Event) bool {
			return ev.Type == schema.EventTimeout && ev.Status == schema.StatusTimeout &&
				ev.Error != nil && ev.Error.Type == schema.ErrTimeout
		},
	},
}

// kindOf spreads the mix's kinds evenly over the job indexes.
func kindOf(i int) *loadKind {
	p := i * 100 / loadJobs
	for k := range loadMix {
		if p < loadMix[k].percent {
			return &loadMix[k]
		}
		p -= loadMix[k].percent
	}
	return &loadMix[0]
}

// TestLoad submits a burst of mixed jobs to an in-process stack whose worker
// has four slots. Every job must end exactly once with the right status, no
// container may be left, and the heap of this process, which runs the
// worker, must not grow without bound.
//
// Not parallel: it measures this process's heap and wants the two cores.
func TestLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), loadBudget)
	defer cancel()
	dir, err := os.MkdirTemp("", "brig-load-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	id := workerID + "-load"
	st, err := devstack.Start(ctx, devstack.Config{
		Listen:    "127.0.0.1:0",
		DataDir:   filepath.Join(dir, "jetstream"),
		SkipImage: true,
		Logger:    logger,
		Worker:    worker.Config{ID: id, InitBinary: brigBin, RuntimeDir: filepath.Join(dir, "run"), Slots: 4},
	})
	if err != nil {
		t.Fatalf("start own stack: %v", err)
	}
	t.Cleanup(func() { stopWithin(t, "load stack", st.Stop) })
	c := tenantClient(t, st)

	before := heapInUse()
	peak := sampleHeap(ctx)
	start := time.Now()
	handles := submitAll(ctx, t, c)
	submitted := time.Since(start)
	results := make([]*schema.Event, loadJobs)
	var wg sync.WaitGroup
	for i, h := range handles {
		wg.Go(func() { results[i], _ = h.Result(ctx) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, h := range handles {
		h.Stop()
	}
	maxHeap := peak()

	if ctx.Err() != nil {
		t.Errorf("the load budget of %s ran out before every job ended", loadBudget)
	}
	checkLoadResults(t, results, handles)
	counts := storedCountsOn(t, st.Conn, schema.EventsPrefix+">")
	for _, h := range handles {
		wantOnce(t, counts, h.Key, true)
	}
	waitNoContainers(t, sandbox.LabelWorker+"="+id)

	after := heapInUse()
	t.Logf("%d jobs in %s (submitted in %s): %.1f jobs/s; heap in use %s before, %s after (peak %s while running)",
		loadJobs, elapsed.Round(time.Millisecond), submitted.Round(time.Millisecond), float64(loadJobs)/elapsed.Seconds(),
		mib(before), mib(after), mib(maxHeap))
	if after > before && after-before > loadHeapLimit {
		t.Errorf("heap in use grew by %s over the run, want under %s", mib(after-before), mib(loadHeapLimit))
	}
}

// submitAll submits the whole mix at once, from a few goroutines.
func submitAll(ctx context.Context, t *testing.T, c *sdk.Client) []*sdk.Handle {
	t.Helper()
	handles := make([]*sdk.Handle, loadJobs)
	errs := make([]error, loadJobs)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				handles[i], errs[i] = c.Submit(ctx, kindOf(i).job(i))
			}
		})
	}
	for i := range loadJobs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, h := range handles {
				if h != nil {
					h.Stop()
				}
			}
			t.Fatalf("submit job %d: %v", i, err)
		}
	}
	return handles
}

// checkLoadResults reports, per kind, the jobs that did not end as they
// should, showing the first few.
func checkLoadResults(t *testing.T, results []*schema.Event, handles []*sdk.Handle) {
	t.Helper()
	bad := map[string][]string{}
	for i, ev := range results {
		k := kindOf(i)
		switch {
		case ev == nil:
			bad[k.name] = append(bad[k.name], handles[i].ID+": no terminal event")
		case !k.check(i, ev):
			bad[k.name] = append(bad[k.name], brief(ev))
		}
	}
	for _, k := range loadMix {
		if got := bad[k.name]; len(got) > 0 {
			t.Errorf("%d %q jobs ended wrongly; first: %v", len(got), k.name, got[:min(len(got), 3)])
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// sampleHeap samples the heap in use until ctx ends or the returned
// function is called, which reports the largest sample.
func sampleHeap(ctx context.Context) (peak func() uint64) {
	ctx, cancel := context.WithCancel(ctx)
	var highest uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			highest = max(highest, m.HeapInuse)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { cancel(); <-done; return highest }
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
