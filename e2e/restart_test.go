package e2e

import (
	"context"
	"path/filepath"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/worker"
)

// TestWorkerRestart runs on its own stack: it stops the worker, queues a
// job, leaves a container behind as a crashed worker would, and checks that
// a new worker with the same id cleans up and runs the queued job.
func TestWorkerRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	dir := t.TempDir()
	id := workerID + "-restart"
	wcfg := worker.Config{ID: id, InitBinary: brigBin, RuntimeDir: filepath.Join(dir, "run"), Slots: 1}
	st, err := devstack.Start(ctx, devstack.Config{
		Listen:    "127.0.0.1:0",
		DataDir:   filepath.Join(dir, "jetstream"),
		SkipImage: true,
		Logger:    logger,
		Worker:    wcfg,
	})
	if err != nil {
		t.Fatalf("start own stack: %v", err)
	}
	t.Cleanup(func() { stopWithin(t, "own stack", st.Stop) })
	if err := st.Worker.Stop(ctx); err != nil {
		t.Fatalf("stop worker: %v", err)
	}

	c := tenantClient(t, st)
	h, err := c.Submit(ctx, pythonJob("queued", `print("ran after restart")`))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	select {
	case ev := <-h.Events():
		if ev.Type != schema.EventAccepted {
			t.Fatalf("first event is %s, want accepted: %s", ev.Type, brief(&ev))
		}
	case <-ctx.Done():
		t.Fatal("no accepted event")
	}
	// With no live worker of its pool, the dispatcher holds the job back
	// (it waits up to NoWorkerWait for one) rather than route it.
	waitHeldBack(t, st.Conn)
	info, err := consumerInfo(ctx, st.Conn, schema.StreamWork, bus.WorkConsumer(schema.DefaultPool))
	if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
		t.Fatalf("job routed to a pool with no worker: %+v %v", info, err)
	}
	if n := countStoredIn(t, st.Conn, schema.StreamEvents, schema.EventSubject(h.Key, schema.EventStarted)); n != 0 {
		t.Fatalf("job started with no worker running (%d started events)", n)
	}

	leftover := startLeftover(ctx, t, id)

	w2, err := worker.New(worker.Config{ID: id, Conn: connectAs(t, st, auth.User{Role: auth.RoleWorker}), Docker: st.Docker, Logger: logger,
		InitBinary: wcfg.InitBinary, RuntimeDir: wcfg.RuntimeDir, Slots: wcfg.Slots})
	if err != nil {
		t.Fatalf("new worker: %v", err)
	}
	if err := w2.Start(ctx); err != nil {
		t.Fatalf("start new worker: %v", err)
	}
	t.Cleanup(func() { stopWithin(t, "new worker", w2.Stop) })

	if _, err := docker.ContainerInspect(ctx, leftover); !cerrdefs.IsNotFound(err) {
		t.Errorf("leftover container %.12s still exists after the worker restarted (inspect err: %v)", leftover, err)
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("queued job: no terminal event: %v", err)
	}
	wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
	if ev.Stdout != "ran after restart\n" {
		t.Errorf("stdout = %q", ev.Stdout)
	}
}

// startLeftover starts a long-running container labelled as a job of
// worker id, as a worker that crashed mid-job leaves behind.
func startLeftover(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	resp, err := docker.ContainerCreate(ctx, &container.Config{
		Image:  "brig/python:latest",
		Cmd:    []string{"python3", "-c", "import time; time.sleep(600)"},
		Labels: map[string]string{sandbox.LabelWorker: id, sandbox.LabelJob: "leftover"},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatalf("create leftover container: %v", err)
	}
	t.Cleanup(func() {
		_ = docker.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	if err := docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start leftover container: %v", err)
	}
	return resp.ID
}

func stopWithin(t *testing.T, what string, stop func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Errorf("stop %s: %v", what, err)
	}
}
