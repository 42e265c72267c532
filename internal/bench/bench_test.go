package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/testenv"
	"github.com/brig-dev/brig/internal/testenv/needs"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
	"github.com/brig-dev/brig/worker"
)

func TestLatencyPercentiles(t *testing.T) {
	t.Parallel()
	i := 0
	f, err := latency(t.Context(), "x", 10, func(context.Context) error {
		i++
		// The measured workload, not a wait: run i lasts i ms, so that the
		// percentiles have distinct durations to order.
		time.Sleep(time.Duration(i) * time.Millisecond)
		return nil
	})
	if err != nil || f.N != 10 || f.P50 <= 0 || f.P50 > f.P95 || f.P95 > f.P99 {
		t.Fatalf("latency = %+v, %v", f, err)
	}
	if _, err := latency(t.Context(), "x", 3, func(context.Context) error { return errors.New("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("latency hid its run's error: %v", err)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	t.Parallel()
	ms := func(vs ...int) []time.Duration {
		ds := make([]time.Duration, len(vs))
		for i, v := range vs {
			ds[i] = time.Duration(v) * time.Millisecond
		}
		return ds
	}
	ten := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   float64
	}{
		{"none", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7},
		{"p50 of ten", ten, 0.50, 5},
		{"p95 of ten", ten, 0.95, 10},
		{"p99 of ten", ten, 0.99, 10},
		{"p50 of hundred", hundred, 0.50, 50},
		{"p95 of hundred", hundred, 0.95, 95},
		{"p99 of hundred", hundred, 0.99, 99},
		{"sub-millisecond", []time.Duration{1500 * time.Microsecond}, 0.5, 1.5},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	lat := func(p50 float64) Figure { return Figure{Name: "floor", Unit: "ms", P50: p50, N: 1} }
	thr := func(r float64) Figure { return Figure{Name: "floor", Unit: "jobs/s", Rate: r, N: 1} }
	for _, tc := range []struct {
		name      string
		f, floor  Figure
		target    target
		wantRatio float64
		wantNote  string
	}{
		{"latency met", Figure{Unit: "ms", P50: 11, Note: "warm"}, lat(10), target{Max: 1.2}, 1.1, "warm; target ≤ 1.2×: met"},
		{"latency missed", Figure{Unit: "ms", P50: 30}, lat(10), target{Max: 1.2}, 3, "target ≤ 1.2×: missed"},
		{"latency no target", Figure{Unit: "ms", P50: 5, Note: "no container"}, lat(1), target{}, 5, "no container"},
		{"rate met", Figure{Unit: "jobs/s", Rate: 9}, thr(10), target{Min: 0.9}, 0.9, "target ≥ 0.9×: met"},
		{"rate missed", Figure{Unit: "jobs/s", Rate: 4}, thr(10), target{Min: 0.5}, 0.4, "target ≥ 0.5×: missed"},
		{"floor skipped", Figure{Unit: "jobs/s", Rate: 4}, Figure{Name: "floor", Unit: "jobs/s"}, target{Min: 10}, 0, "target ≥ 10×: floor not measured"},
	} {
		f := tc.f
		compare(&f, tc.floor, tc.target)
		if f.Floor != "floor" || math.Abs(f.Ratio-tc.wantRatio) > 1e-9 || f.Note != tc.wantNote {
			t.Errorf("%s: compare gave floor %q, ratio %v, note %q; want ratio %v, note %q",
				tc.name, f.Floor, f.Ratio, f.Note, tc.wantRatio, tc.wantNote)
		}
	}
}

func TestRateStopsAtFirstError(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	_, err := rate(t.Context(), "x", 1000, 4, func(ctx context.Context) error {
		if runs.Add(1) == 3 {
			return errors.New("boom")
		}
		<-ctx.Done() // the others run until the failure cancels them
		return ctx.Err()
	})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("rate = %v, want the first error", err)
	}
	f, err := rate(t.Context(), "y", 10, 3, func(context.Context) error { return nil })
	if err != nil || f.N != 10 || f.Rate <= 0 || f.Unit != "jobs/s" {
		t.Errorf("rate = %+v, %v", f, err)
	}
}

func TestSameJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{`{"i":1}`, `{ "i" : 1 }`, true},
		{`{"i":1}`, `{"i":2}`, false},
		{``, `{"i":1}`, false},
		{`[1,2]`, "[1,\n2]", true},
	} {
		if got := sameJSON([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("sameJSON(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestAddSkipsRejectedFigures(t *testing.T) {
	t.Parallel()
	var progress []string
	r := &runner{cfg: Config{Progress: func(s string) { progress = append(progress, s) }}}
	floor := Figure{Name: "raw", Unit: "jobs/s", Rate: 100, N: 10}
	rejected := &sdk.JobError{Event: &schema.Event{JobID: "j1", Status: schema.StatusRejected,
		Error: &schema.ErrorInfo{Type: schema.ErrNotFound, Message: `function "echo" not found`}}}
	f, err := r.add(Figure{}, fmt.Errorf("brig echo: %w", rejected), "brig echo", "jobs/s", floor, target{Min: 0.5}, "")
	if err != nil || f.N != 0 || f.Floor != "raw" || !strings.Contains(f.Note, "skipped") || !strings.Contains(f.Note, `"echo" not found`) {
		t.Errorf("add(rejected) = %+v, %v; want a skipped figure naming the reason", f, err)
	}
	if len(r.figs) != 1 || len(progress) != 1 {
		t.Errorf("skipped figure not added or not told: figs %+v, progress %q", r.figs, progress)
	}
	if _, err := r.add(Figure{}, errors.New("boom"), "brig x", "ms", floor, target{}, ""); err == nil || len(r.figs) != 1 {
		t.Errorf("add hid a platform error: %v, figs %+v", err, r.figs)
	}
	f, err = r.add(Figure{Name: "brig y", Unit: "jobs/s", Rate: 60, N: 10}, nil, "brig y", "jobs/s", floor, target{Min: 0.5}, "no container")
	if err != nil || f.Ratio != 0.6 || f.Note != "no container; target ≥ 0.5×: met" || len(r.figs) != 2 {
		t.Errorf("add = %+v, %v", f, err)
	}
}

// TestRunQueueOnly runs the queue group alone, quick, on a real stack
// whose worker starts no container, without a Docker client of the
// bench's own: the figures of that group only, each measured, brig's
// compared with their floor, every note saying it was a quick run.
func TestRunQueueOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev stack")
	}
	needs.Docker(t) // the stack's worker pings the daemon; no container starts
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	st, err := devstack.Start(ctx, devstack.Config{Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "jetstream"), SkipImage: true,
		Worker: worker.Config{ID: "bench-queue-" + testenv.RandomHex(4), RuntimeDir: filepath.Join(dir, "run")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	figs, err := Run(ctx, Config{Conn: st.Conn, N: 2, Quick: true, Only: []string{GroupQueue}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.Name)
		if (f.P50 <= 0 && f.Rate <= 0) || !strings.HasPrefix(f.Note, quickNote) {
			t.Errorf("figure %q: %+v; want it measured and noted as a quick run", f.Name, f)
		}
		if strings.HasPrefix(f.Name, "brig") && (f.Floor == "" || f.Ratio <= 0) {
			t.Errorf("figure %q has no ratio to a floor: %+v", f.Name, f)
		}
	}
	if len(figs) != 5 || !strings.HasPrefix(names[0], "raw JetStream") || !strings.Contains(names[4], "throughput (echo") {
		t.Errorf("figures %q; want the queue group's 5", names)
	}
	if _, err := Run(ctx, Config{Conn: st.Conn, Only: []string{GroupQueue, GroupBurst}}); err == nil || !strings.Contains(err.Error(), "Docker is required") {
		t.Errorf("Run with burst and no Docker: %v", err)
	}
}

// TestRunAgainstRealBrig runs the whole bench with two samples per figure
// on a real stack and daemon: every figure present, positive, compared.
func TestRunAgainstRealBrig(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Docker")
	}
	needs.Docker(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	figs, err := Run(ctx, Config{Conn: env.Stack.Conn, Docker: docker, N: 2, InitBinary: env.Binary})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(figs) != 20 {
		t.Errorf("%d figures, want 20: %+v", len(figs), figs)
	}
	for _, f := range figs {
		if f.P50 <= 0 && f.Rate <= 0 && f.PerJob <= 0 {
			t.Errorf("figure %q measured nothing: %+v", f.Name, f)
		}
		// The burst's floor is brig's own; the messages figures have none.
		if strings.HasPrefix(f.Name, "brig") && !strings.HasPrefix(f.Name, "brig single-use, one job at a time") && (f.Floor == "" || f.Ratio <= 0) {
			t.Errorf("figure %q has no ratio to a floor: %+v", f.Name, f)
		}
	}
}
