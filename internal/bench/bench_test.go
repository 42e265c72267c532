package bench

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/brig-dev/brig/internal/testenv"
)

func TestLatencyPercentiles(t *testing.T) {
	t.Parallel()
	i := 0
	f, err := latency(t.Context(), "x", 10, func(context.Context) error {
		i++
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

// TestRunAgainstRealBrig runs the whole bench with two samples per figure
// on a real stack and daemon: every figure present, positive, compared.
func TestRunAgainstRealBrig(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Docker")
	}
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
	figs, err := Run(ctx, Config{Conn: env.Stack.Conn, Docker: docker, N: 2})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(figs) != 11 {
		t.Errorf("%d figures, want 11: %+v", len(figs), figs)
	}
	for _, f := range figs {
		if f.P50 <= 0 && f.Rate <= 0 {
			t.Errorf("figure %q measured nothing: %+v", f.Name, f)
		}
		if strings.HasPrefix(f.Name, "brig") && (f.Floor == "" || f.Ratio <= 0) {
			t.Errorf("figure %q has no ratio to a floor: %+v", f.Name, f)
		}
	}
}
