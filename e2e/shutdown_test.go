package e2e

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/schema"
)

// TestGracefulShutdown: SIGTERM stops a worker from fetching, lets its
// running job finish within the grace period, and hands back what cannot
// finish in time; a dispatcher exits cleanly on SIGTERM too.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	disp := fe.dispatcherProc(ctx, filepath.Join(fe.dir, "dispatcher.key"))
	runDir := filepath.Join(fe.dir, "run")
	workerProc := func(id, grace string) *roleProc {
		return fe.startRole(ctx, "worker", "--server", fe.url(), "--creds", fe.credsFile(auth.RoleWorker), "--id", id,
			"--runtime-dir", runDir, "--slots", "1", "--grace", grace, "--ack-wait", "6s")
	}
	sigterm := func(p *roleProc) time.Duration {
		t.Helper()
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM brig %s: %v", p.name, err)
		}
		select {
		case <-p.exited:
		case <-ctx.Done():
			t.Fatalf("brig %s did not exit after SIGTERM", p.name)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("brig %s exited %d after SIGTERM, want 0:\n%s", p.name, code, p.output())
		}
		return time.Since(start)
	}

	t.Run("finishes within grace", func(t *testing.T) {
		w := workerProc(workerID+"-grace", "20s")
		h, err := fe.client.Submit(ctx, pythonJob("graceful", "import time\ntime.sleep(2)\nprint('finished')"))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		waitEventType(ctx, t, h, schema.EventStarted)
		took := sigterm(w)
		ev, err := h.Result(ctx)
		if ev == nil {
			t.Fatalf("no terminal event: %v", err)
		}
		wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
		if ev.Attempt != 1 || ev.Stdout != "finished\n" {
			t.Errorf("attempt %d stdout %q: the running job should finish on the stopping worker", ev.Attempt, ev.Stdout)
		}
		if took > 15*time.Second {
			t.Errorf("worker took %s to stop with a 2 s job running", took)
		}
	})

	t.Run("hands back past grace", func(t *testing.T) {
		w := workerProc(workerID+"-short", "1s")
		h, err := fe.client.Submit(ctx, pythonJob("handback", "import time\ntime.sleep(5)\nprint('finished elsewhere')"))
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		waitEventType(ctx, t, h, schema.EventStarted)
		if took := sigterm(w); took > 10*time.Second {
			t.Errorf("worker with a 1 s grace took %s to stop", took)
		}
		if n := terminalCountOn(t, fe.nc, h.Key); n != 0 {
			t.Fatalf("the interrupted job has %d terminal events, want none yet", n)
		}
		workerProc(workerID+"-short", "20s") // same id: removes what the first left
		ev, err := h.Result(ctx)
		if ev == nil {
			t.Fatalf("no terminal event: %v", err)
		}
		wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
		if ev.Attempt != 2 {
			t.Errorf("attempt %d, want 2 (handed back, then run again)", ev.Attempt)
		}
		waitNoContainers(t, "brig.job="+h.Key)
	})

	t.Run("dispatcher", func(t *testing.T) {
		sigterm(disp)
	})
}
