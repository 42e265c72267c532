package sandbox_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/internal/testenv"
	"github.com/brig-dev/brig/internal/testenv/needs"
	"github.com/brig-dev/brig/schema"
)

// These tests run sandboxes on the real Docker daemon. Without one they
// skip, unless BRIG_REQUIRE_DOCKER=1 makes them fail.

const pythonImage = "brig/python:latest"

// binDir holds the static brig binary that brigBinary builds; TestMain
// removes it.
var binDir string

// brigBinary builds the static brig binary (every sandbox's init) once for
// the package's tests, on first use: tests that skip need none.
var brigBinary = sync.OnceValues(func() (string, error) {
	return testenv.BuildBrig(context.Background(), binDir)
})

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "brig-sandbox-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// needDocker returns a client of the Docker daemon, or skips the test
// (fails it with BRIG_REQUIRE_DOCKER=1) when the daemon or the python
// image is missing.
func needDocker(t *testing.T) *client.Client {
	t.Helper()
	needs.Docker(t)
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	if _, err := docker.ImageInspect(t.Context(), pythonImage); err != nil {
		if needs.DockerRequired() {
			t.Fatalf("image %s missing: %v", pythonImage, err)
		}
		t.Skipf("image %s missing (build it with `brig image build`; %s=1 makes this a failure): %v", pythonImage, needs.RequireDockerVar, err)
	}
	return docker
}

// rig is a Runner on the real daemon, with a real gateway on embedded NATS.
type rig struct {
	t      *testing.T
	docker *client.Client
	keys   *natstest.Keys
	runner *sandbox.Runner
	id     string
}

func newRig(t *testing.T, tune func(*sandbox.Config)) *rig {
	t.Helper()
	docker := needDocker(t)
	bin, err := brigBinary()
	if err != nil {
		t.Fatal(err)
	}
	_, _, js := natstest.Start(t)
	keys := natstest.PublishKeys(t, js)
	gw, err := gateway.New(gateway.Config{JS: js, Keys: keys.Ring.Func})
	if err != nil {
		t.Fatal(err)
	}
	id := "sbtest-" + testenv.RandomHex(4)
	cfg := sandbox.Config{
		Engine: docker, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		WorkerID: id, Slots: 2, InitBinary: bin, RuntimeDir: t.TempDir(),
		Listen: func(ctx context.Context, path string) (sandbox.Listener, error) {
			return gw.Listen(ctx, path, gateway.Binding{})
		},
	}
	if tune != nil {
		tune(&cfg)
	}
	r, err := sandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		_ = gw.Stop(context.Background())
		if err := testenv.RemoveLeftovers(context.Background(), id); err != nil {
			t.Errorf("after Stop: %v", err)
		}
	})
	return &rig{t: t, docker: docker, keys: keys, runner: r, id: id}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// work is a python job of the default tenant running code.
func (rg *rig) work(id, code string) *schema.Work {
	key := "default." + id
	fn := schema.Python()
	return &schema.Work{
		Version: schema.Version,
		Job:     schema.Job{ID: key, Function: fn.Name, Code: code},
		Spec: schema.RunSpec{
			Function: fn.Name, Image: fn.Image, Command: fn.Command, Warmup: fn.Warmup, Env: fn.Env,
			Zygote: schema.Bool(fn.Zygote, false), Preload: fn.Preload,
			CodeFile: "main.py", Pool: schema.DefaultPool, TimeoutMS: 30_000, Runtime: schema.RuntimeRunc,
			SingleUse: true, Restricted: true,
			Limits: schema.Limits{MemoryMB: 256, CPUs: 1, Pids: 128, OutputBytes: 1 << 10},
		},
		Token: rg.keys.Mint(key),
	}
}

// run runs work and records what its callbacks heard.
type run struct {
	out               *sandbox.Outcome
	err               error
	container         string
	kind              schema.SandboxKind
	stdout, stderr    strings.Builder
	denied            []schema.AuthError
	startedBeforeExit bool
	mu                sync.Mutex            // guards what the callbacks write
	egress            []schema.EgressDenial // read with denials
}

// denials returns the egress refusals heard so far.
func (r *run) denials() []schema.EgressDenial {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]schema.EgressDenial(nil), r.egress...)
}

func (rg *rig) run(ctx context.Context, work *schema.Work) *run {
	rg.t.Helper()
	res := &run{}
	mu := &res.mu
	res.out, res.err = rg.runner.Run(ctx, &sandbox.Job{
		Work: work,
		Binding: gateway.Binding{JobID: work.Job.ID, Quotas: work.Spec.Quotas, OnDenied: func(ae schema.AuthError) {
			mu.Lock()
			res.denied = append(res.denied, ae)
			mu.Unlock()
		}},
		OnStart: func(container string, kind schema.SandboxKind) { res.container, res.kind = container, kind },
		OnEgressDenied: func(d schema.EgressDenial) {
			mu.Lock()
			defer mu.Unlock()
			res.egress = append(res.egress, d)
		},
		OnOutput: func(stream schema.OutputStream, p []byte) {
			mu.Lock()
			defer mu.Unlock()
			if stream == schema.StreamStdout {
				res.stdout.Write(p)
			} else {
				res.stderr.Write(p)
			}
		},
	})
	return res
}

// waitPrewarmed waits up to a minute for n prewarmed sandboxes.
func (rg *rig) waitPrewarmed(n int) {
	rg.t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for prewarmed, _ := rg.runner.Sizes(); prewarmed != n; prewarmed, _ = rg.runner.Sizes() {
		select {
		case <-tick.C:
		case <-deadline:
			rg.t.Fatalf("%d prewarmed sandboxes after a minute, want %d", prewarmed, n)
		}
	}
}

func (rg *rig) exists(id string) bool {
	rg.t.Helper()
	_, err := rg.docker.ContainerInspect(context.Background(), id)
	if err != nil && !cerrdefs.IsNotFound(err) {
		rg.t.Fatal(err)
	}
	return err == nil
}

// A cold job: its container is made for it, carries brig's labels, streams
// its output, reports its exit and result, and goes on Release.
func TestRunCold(t *testing.T) {
	rg := newRig(t, nil)
	work := rg.work("cold", `
import json, sys
print("hello")
print("warn", file=sys.stderr)
json.dump({"n": 1}, open("/work/out/result.json", "w"))
`)
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatal(res.err)
	}
	out := res.out
	if res.kind != schema.SandboxCold || res.container == "" || res.container != out.Container {
		t.Errorf("OnStart heard %q %q; outcome's container %q", res.container, res.kind, out.Container)
	}
	if out.Exit == nil || out.Exit.ExitCode != 0 || string(out.Exit.Result) != `{"n": 1}` {
		log, _ := out.InitLog.Result()
		t.Fatalf("exit %+v; init log %q", out.Exit, log)
	}
	if stdout, _ := out.Stdout.Result(); stdout != "hello\n" || res.stdout.String() != stdout {
		t.Errorf("stdout %q, streamed %q; want hello", stdout, res.stdout.String())
	}
	if stderr, _ := out.Stderr.Result(); stderr != "warn\n" || res.stderr.String() != stderr {
		t.Errorf("stderr %q, streamed %q; want warn", stderr, res.stderr.String())
	}
	if out.TimedOut || out.OOM || out.Tampered {
		t.Errorf("TimedOut %v, OOM %v, Tampered %v", out.TimedOut, out.OOM, out.Tampered)
	}
	info, err := rg.docker.ContainerInspect(t.Context(), out.Container)
	if err != nil {
		t.Fatalf("container gone before Release: %v", err)
	}
	if l := info.Config.Labels; l[sandbox.LabelJob] != work.Job.ID || l[sandbox.LabelWorker] != rg.id {
		t.Errorf("labels %v", l)
	}
	out.Release()
	if rg.exists(out.Container) {
		t.Error("container still there after Release")
	}
}

// A function with single_use: false gets its sandbox back for its next
// job, whose files the first job's do not survive into.
func TestRunReused(t *testing.T) {
	rg := newRig(t, nil)
	code := `
import os
print(os.path.exists("/tmp/mark"))
open("/tmp/mark", "w").write("x")
`
	var containers []string
	for i, want := range []struct {
		kind   schema.SandboxKind
		stdout string
	}{
		{schema.SandboxCold, "False\n"}, {schema.SandboxReused, "False\n"},
	} {
		work := rg.work("reuse"+string(rune('a'+i)), code)
		work.Spec.SingleUse = false
		res := rg.run(t.Context(), work)
		if res.err != nil {
			t.Fatal(res.err)
		}
		stdout, _ := res.out.Stdout.Result()
		if res.kind != want.kind || stdout != want.stdout {
			t.Errorf("job %d: %s sandbox, stdout %q; want %s, %q", i, res.kind, stdout, want.kind, want.stdout)
		}
		containers = append(containers, res.out.Container)
		res.out.Release()
		if _, reusable := rg.runner.Sizes(); reusable != 1 {
			t.Errorf("job %d: %d reusable sandboxes after Release, want 1", i, reusable)
		}
	}
	if containers[0] != containers[1] {
		t.Errorf("containers %v: want the same one twice", containers)
	}
}

// With Prewarm, the first job of a template starts cold and leaves a
// prewarmed sandbox for the next, which serves it alone.
func TestRunPrewarmed(t *testing.T) {
	rg := newRig(t, func(c *sandbox.Config) { c.Prewarm = 1 })
	first := rg.run(t.Context(), rg.work("warm1", `print(1)`))
	if first.err != nil {
		t.Fatal(first.err)
	}
	first.out.Release()
	if first.kind != schema.SandboxCold {
		t.Errorf("first job of its template: %s sandbox, want cold", first.kind)
	}
	rg.waitPrewarmed(1)
	second := rg.run(t.Context(), rg.work("warm2", `print(2)`))
	if second.err != nil {
		t.Fatal(second.err)
	}
	second.out.Release()
	if second.kind != schema.SandboxPrewarmed || second.container == first.container {
		t.Errorf("second job: %s sandbox %s (first %s), want a prewarmed one", second.kind, second.container, first.container)
	}
}

// A job past its timeout is killed and reported as timed out.
func TestRunTimeout(t *testing.T) {
	rg := newRig(t, nil)
	work := rg.work("slow", "import time\nprint('start', flush=True)\ntime.sleep(60)\n")
	work.Spec.TimeoutMS = 1500
	start := time.Now()
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.out.Release()
	if !res.out.TimedOut || res.out.Exit != nil {
		t.Errorf("TimedOut %v, exit %+v; want a timeout without a report", res.out.TimedOut, res.out.Exit)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a 1.5 s timeout took %s", took)
	}
}

// A job whose context ends is killed; its Outcome is Interrupted by the
// context's cause and keeps what the job had written, and Release (not
// Run: the caller's terminal event comes first) removes its container.
func TestRunCancelled(t *testing.T) {
	rg := newRig(t, nil)
	stop := errors.New("stop that job")
	ctx, cancel := context.WithCancelCause(t.Context())
	work := rg.work("cancel", "import sys, time\nprint('so far', flush=True)\nsys.stderr.write('err so far\\n')\nsys.stderr.flush()\ntime.sleep(60)\n")
	var container string
	var mu sync.Mutex
	var heard int
	out, err := rg.runner.Run(ctx, &sandbox.Job{Work: work, Binding: gateway.Binding{JobID: work.Job.ID},
		OnStart: func(id string, _ schema.SandboxKind) { container = id },
		OnOutput: func(_ schema.OutputStream, p []byte) {
			mu.Lock()
			defer mu.Unlock()
			// Cancel once both lines are in: the job then sleeps.
			if heard += len(p); heard == len("so far\nerr so far\n") {
				cancel(stop)
			}
		}})
	if err != nil {
		t.Fatalf("Run = %v, want an interrupted Outcome", err)
	}
	if !errors.Is(out.Interrupted, stop) || out.TimedOut {
		t.Errorf("Interrupted %v, TimedOut %v; want the cancellation's cause", out.Interrupted, out.TimedOut)
	}
	stdout, _ := out.Stdout.Result()
	stderr, _ := out.Stderr.Result()
	if stdout != "so far\n" || stderr != "err so far\n" {
		t.Errorf("stdout %q, stderr %q; want what the job wrote before it was cancelled", stdout, stderr)
	}
	if !rg.exists(container) {
		t.Error("container removed before Release: the caller's terminal event must come first")
	}
	out.Release()
	if rg.exists(container) {
		t.Error("container of a cancelled job still there after Release")
	}
}

// A missing image ends the job: a *Failure, no retry.
func TestRunImageMissing(t *testing.T) {
	rg := newRig(t, nil)
	work := rg.work("noimage", "print(1)")
	work.Spec.Image = "brig/no-such-image:" + testenv.RandomHex(4)
	_, err := rg.runner.Run(t.Context(), &sandbox.Job{Work: work, Binding: gateway.Binding{JobID: work.Job.ID}})
	var f *sandbox.Failure
	if !errors.As(err, &f) || f.ErrType != schema.ErrNotFound || f.Status != schema.StatusError {
		t.Fatalf("Run = %v (%T), want a NotFound *Failure", err, err)
	}
}

// The job's gateway socket is bound to it: a call outside its scopes is
// denied, and the binding hears of it.
func TestRunBindsGateway(t *testing.T) {
	rg := newRig(t, nil)
	work := rg.work("gate", `
import brig
try:
    brig.Dict("d").put("k", 1)
except brig.AuthError as e:
    print("denied", e.resource, e.action)
`)
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatal(res.err)
	}
	res.out.Release()
	stdout, _ := res.out.Stdout.Result()
	if stdout != "denied dict:d write\n" || len(res.denied) != 1 || res.denied[0].Resource != "dict:d" {
		t.Errorf("stdout %q, denials %+v; want one denied dict:d write", stdout, res.denied)
	}
}

// Start removes containers an earlier run of the same worker left behind,
// and Stop those that appeared meanwhile (an earlier run's creation that
// the daemon carried out late).
func TestLeftoversRemoved(t *testing.T) {
	docker := needDocker(t)
	id := "sbtest-" + testenv.RandomHex(4)
	leftover := func() string {
		t.Helper()
		c, err := docker.ContainerCreate(t.Context(), &container.Config{Image: pythonImage, Cmd: []string{"true"},
			Labels: map[string]string{sandbox.LabelWorker: id, sandbox.LabelJob: "leftover"}}, nil, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		})
		return c.ID
	}
	gone := func(when, id string) {
		t.Helper()
		if _, err := docker.ContainerInspect(t.Context(), id); !cerrdefs.IsNotFound(err) {
			t.Errorf("leftover container after %s: inspect = %v, want not found", when, err)
		}
	}
	before := leftover()
	bin, err := brigBinary()
	if err != nil {
		t.Fatal(err)
	}
	r, err := sandbox.New(sandbox.Config{Engine: docker, WorkerID: id, Slots: 1, InitBinary: bin,
		RuntimeDir: filepath.Join(t.TempDir(), "run"),
		Listen:     func(context.Context, string) (sandbox.Listener, error) { return nil, errors.New("no jobs here") }})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	gone("Start", before)
	meanwhile := leftover()
	if err := r.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	gone("Stop", meanwhile)
}
