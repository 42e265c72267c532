package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/brig-dev/brig/dispatcher"
	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/natsserver"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
	"github.com/brig-dev/brig/worker"
)

// faultBudget bounds one fault test: a redelivery after the default 30s
// AckWait, then a few jobs on a loaded 2-core box.
const faultBudget = 3 * time.Minute

// TestFaultWorkerKilledMidJob SIGKILLs a worker process while its job
// runs. A new worker with the same id removes the orphaned container and,
// once JetStream redelivers the job, runs it to exactly one terminal event.
//
// `brig worker` has no flag for the AckWait, so the redelivery waits out the
// default 30s; the kill is a real SIGKILL of a real process.
func TestFaultWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	fe.startDispatcher(ctx, fe.roleConn(auth.RoleDispatcher))
	id := workerID + "-sigkill"
	runDir := filepath.Join(fe.dir, "run")
	first := fe.workerProc(ctx, id, runDir, 1)

	h, err := fe.client.Submit(ctx, pythonJob("killed", "import time\ntime.sleep(4)\nprint('survived')"))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	waitEventType(ctx, t, h, schema.EventStarted)
	running := containersOf(t, h.Key)
	if len(running) != 1 {
		t.Fatalf("containers of the started job: %s, want exactly one", names(running))
	}
	first.kill(t)
	killedAt := time.Now()

	fe.workerProc(ctx, id, runDir, 1)
	if _, err := docker.ContainerInspect(ctx, running[0].ID); !cerrdefs.IsNotFound(err) {
		t.Errorf("first attempt's container %.12s still exists after a worker with the same id started (inspect err: %v)", running[0].ID, err)
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		t.Fatalf("no terminal event after the worker was killed: %v", err)
	}
	t.Logf("terminal event %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
	if ev.Stdout != "survived\n" || ev.Attempt != 2 {
		t.Errorf("stdout %q attempt %d, want \"survived\\n\" on attempt 2", ev.Stdout, ev.Attempt)
	}
	if n := terminalCountOn(t, fe.nc, h.Key); n != 1 {
		t.Errorf("%d terminal events stored, want exactly 1", n)
	}
	waitNoContainers(t, sandbox.LabelJob+"="+h.Key)
}

// TestFaultDispatcherKilledMidStream SIGKILLs a dispatcher process while
// it works through a burst of submissions; another dispatcher takes over
// what the dead one held, and every job ends exactly once.
func TestFaultDispatcherKilledMidStream(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	keyFile := filepath.Join(fe.dir, "dispatcher.key")
	first := fe.dispatcherProc(ctx, keyFile)
	fe.startWorker(ctx, worker.Config{ID: workerID + "-dkill", Slots: 4})

	const n = 30
	handles := make([]*sdk.Handle, n)
	submitted := make(chan error, 1)
	go func() {
		for i := range handles {
			h, err := fe.client.Submit(ctx, pythonJob(fmt.Sprintf("burst%02d", i), fmt.Sprintf("print(%d)", i)))
			if err != nil {
				submitted <- fmt.Errorf("submit %d: %w", i, err)
				return
			}
			handles[i] = h
		}
		submitted <- nil
	}()
	accepted := func() int { return fe.storedTotal(t, schema.EventSubject("*.*", schema.EventAccepted)) }
	pollUntil(ctx, t, 5*time.Millisecond, func() (bool, string) {
		got := accepted()
		return got >= 3, fmt.Sprintf("%d jobs accepted, want 3 before the kill", got)
	})
	first.kill(t)
	atKill := accepted()
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	for _, h := range handles {
		defer h.Stop()
	}
	t.Logf("dispatcher killed with %d of %d jobs accepted (%d once it was dead)", atKill, n, accepted())

	fe.dispatcherProc(ctx, keyFile)
	start := time.Now()
	for i, h := range handles {
		ev, err := h.Result(ctx)
		if ev == nil {
			t.Fatalf("job %s: no terminal event: %v", h.ID, err)
		}
		if ev.Type != schema.EventResult || ev.Status != schema.StatusSucceeded || ev.Stdout != fmt.Sprintf("%d\n", i) {
			t.Errorf("job %s: %s, want succeeded printing %d", h.ID, brief(ev), i)
		}
	}
	t.Logf("all %d ended %s after the second dispatcher started", n, time.Since(start).Round(time.Millisecond))
	counts := fe.storedCounts(t, schema.EventsPrefix+">")
	for _, h := range handles {
		wantOnce(t, counts, h.Key, true)
	}
}

// TestFaultNATSRestart restarts the NATS server on the same port and store
// while jobs wait in the work queue. The dispatcher rides through on its
// reconnecting connection, a new worker starts, and the queued jobs, plus
// jobs submitted after the restart, end exactly once.
func TestFaultNATSRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	// Both reconnect forever, as `brig dispatcher` and `brig worker` do.
	dconn, wconn := fe.roleConn(auth.RoleDispatcher), fe.roleConn(auth.RoleWorker)
	fe.startDispatcher(ctx, dconn)
	wcfg := worker.Config{ID: workerID + "-natsrestart", Conn: wconn, Slots: 2}
	w := fe.startWorker(ctx, wcfg) // creates the pool's consumer
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("stop worker: %v", err)
	}

	var ids []string
	for i := range 3 {
		h, err := fe.client.Submit(ctx, pythonJob("queued", fmt.Sprintf("print('queued %d')", i)))
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		h.Stop()
		ids = append(ids, h.ID)
	}
	// With no live worker the dispatcher accepts them and holds them back.
	eventually(t, pollBudget, func(ctx context.Context) (bool, string) {
		n := 0
		for _, id := range ids {
			n += countStoredIn(t, fe.nc, schema.StreamEvents, schema.EventSubject(keyOf(id), schema.EventAccepted))
		}
		return n == 3, fmt.Sprintf("%d of the 3 jobs accepted", n)
	})

	fe.restartServer(ctx, t)
	for _, nc := range []*nats.Conn{dconn, wconn, fe.nc, fe.clientNC} {
		pollUntil(ctx, t, pollEvery, func() (bool, string) {
			return nc.IsConnected(), fmt.Sprintf("connection %s: %s", nc.Opts.Name, nc.Status())
		})
	}
	fe.startWorker(ctx, wcfg)
	restarted := time.Now()
	for i := range 2 {
		h, err := fe.client.Submit(ctx, pythonJob("after", fmt.Sprintf("print('after %d')", i)))
		if err != nil {
			t.Fatalf("submit after the restart: %v", err)
		}
		h.Stop()
		ids = append(ids, h.ID)
	}
	for _, id := range ids {
		ev, err := watchOn(ctx, fe.client, id)
		if ev == nil {
			t.Fatalf("job %s: no terminal event after the restart: %v", id, err)
		}
		wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
	}
	t.Logf("%d jobs (3 queued across the restart, 2 submitted after it) ended %s after the new worker started",
		len(ids), time.Since(restarted).Round(time.Millisecond))
	counts := fe.storedCounts(t, schema.EventsPrefix+">")
	for _, id := range ids {
		wantOnce(t, counts, keyOf(id), true)
	}
}

// TestFaultDockerUnreachable: a worker that cannot reach Docker at start
// says so and does not start; one whose Docker breaks after it started
// retries with backoff and ends the job with a terminal Infrastructure
// error once the retry budget is spent, or runs it when Docker comes back.
func TestFaultDockerUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	dead, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()

	t.Run("at start", func(t *testing.T) {
		w, err := worker.New(worker.Config{Conn: fe.roleConn(auth.RoleWorker), Docker: dead, Logger: logger, ID: workerID + "-nodocker",
			InitBinary: brigBin, RuntimeDir: filepath.Join(fe.dir, "run-nodocker")})
		if err != nil {
			t.Fatalf("new worker: %v", err)
		}
		sctx, scancel := context.WithTimeout(ctx, pollBudget)
		defer scancel()
		err = w.Start(sctx)
		if err == nil {
			stopWithin(t, "worker without docker", w.Stop)
			t.Fatal("Start succeeded with no Docker daemon")
		}
		t.Logf("Start: %v", err)
		if !client.IsErrConnectionFailed(err) || !strings.Contains(err.Error(), "docker") || !strings.Contains(err.Error(), "/nonexistent.sock") {
			t.Errorf("Start error = %q, want a Docker connection error naming the socket", err)
		}
		if err := w.Stop(sctx); err != nil {
			t.Errorf("Stop after a failed Start: %v", err)
		}
	})

	t.Run("mid-way", func(t *testing.T) {
		fe.startDispatcher(ctx, fe.roleConn(auth.RoleDispatcher))
		tap := newEngineTap(docker)
		fe.startWorker(ctx, worker.Config{ID: workerID + "-flaky", Docker: tap, Slots: 1, MaxDeliver: 2, Backoff: 200 * time.Millisecond})
		failures := 0 // how many creates fail from now on; -1 for all
		var mu sync.Mutex
		tap.setFault(func(ctx context.Context, _ string) error {
			mu.Lock()
			fail := failures != 0
			if failures > 0 {
				failures--
			}
			mu.Unlock()
			if !fail {
				return nil
			}
			_, err := dead.ContainerCreate(ctx, &container.Config{Image: "brig/python:latest"}, &container.HostConfig{}, nil, nil, "")
			return err
		})
		setFailures := func(n int) { mu.Lock(); failures = n; mu.Unlock() }

		setFailures(-1)
		job := pythonJob("nodocker", `print("never")`)
		ev, err := fe.client.Run(ctx, job)
		if ev == nil {
			t.Fatalf("no terminal event: %v", err)
		}
		wantStatus(t, ev, schema.EventError, schema.StatusError, schema.ErrInfrastructure)
		if ev.Attempt != 2 || ev.Error == nil || !strings.Contains(ev.Error.Message, "after 2 attempts") {
			t.Errorf("terminal event %s, want attempt 2 saying it gave up after 2 attempts", brief(ev))
		}
		wantRetriedAfter(t, tap.createsOf(keyOf(job.ID)), 2, 200*time.Millisecond)
		if n := terminalCountOn(t, fe.nc, keyOf(job.ID)); n != 1 {
			t.Errorf("%d terminal events stored, want exactly 1", n)
		}

		setFailures(1)
		job = pythonJob("dockerback", `print("ran on the retry")`)
		ev, err = fe.client.Run(ctx, job)
		if ev == nil {
			t.Fatalf("no terminal event: %v", err)
		}
		wantStatus(t, ev, schema.EventResult, schema.StatusSucceeded, "")
		if ev.Attempt != 2 || ev.Stdout != "ran on the retry\n" {
			t.Errorf("terminal event %s, want success on attempt 2", brief(ev))
		}
		wantRetriedAfter(t, tap.createsOf(keyOf(job.ID)), 2, 200*time.Millisecond)
		waitNoContainers(t, sandbox.LabelWorker+"="+workerID+"-flaky")
	})
}

// TestFaultImageMissing: a function whose image does not exist ends its
// job at once with a NotFound error naming the image; no retry can help.
func TestFaultImageMissing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	fe.startDispatcher(ctx, fe.roleConn(auth.RoleDispatcher))
	tap := newEngineTap(docker)
	fe.startWorker(ctx, worker.Config{ID: workerID + "-noimage", Docker: tap, Slots: 1, Backoff: 200 * time.Millisecond})

	const image = "brig/does-not-exist:latest"
	fn := schema.Function{Name: "no-image", Image: image, Command: []string{"python3", "/work/main.py"}}
	deployOn(ctx, t, fe.nc, fn)
	job := pythonJob("noimage", `print("never")`)
	job.Function = fn.Name
	ev, err := fe.client.Run(ctx, job)
	if ev == nil {
		t.Fatalf("no terminal event: %v", err)
	}
	wantStatus(t, ev, schema.EventError, schema.StatusError, schema.ErrNotFound)
	if ev.Error == nil || !strings.Contains(ev.Error.Message, image) {
		t.Errorf("error message does not name the image %s: %s", image, brief(ev))
	}
	if ev.Attempt != 1 {
		t.Errorf("attempt = %d, want 1: a missing image is not retried", ev.Attempt)
	}
	if got := len(tap.createsOf(keyOf(job.ID))); got != 1 {
		t.Errorf("%d container creates, want 1", got)
	}
	counts := fe.storedCounts(t, schema.EventsFilter(keyOf(job.ID)))
	wantOnce(t, counts, keyOf(job.ID), false)
	if started := counts[schema.EventSubject(keyOf(job.ID), schema.EventStarted)]; started != 0 {
		t.Errorf("%d started events for a job that never started", started)
	}
	eventually(t, pollBudget, consumerIdle(fe.nc, schema.StreamWork, bus.WorkConsumer(schema.DefaultPool)))
}

// TestFaultDeliveryBudgetExhausted: a job whose workers all die before
// settling it uses up its pool consumer's MaxDeliver (whatever the worker
// configures it to: Config.MaxDeliver plus room for the job's own
// retries). JetStream then stops delivering it; docs/design.md §6 says it must
// still end in a terminal event, and it must not run again.
//
// JetStream reports the exhausted budget of a pull consumer only when a
// pull arrives after the last AckWait ran out, so a healthy worker joins
// the pool at the end, as one would in production.
func TestFaultDeliveryBudgetExhausted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), faultBudget)
	defer cancel()
	fe := newFaultEnv(ctx, t)
	fe.startDispatcher(ctx, fe.roleConn(auth.RoleDispatcher))
	advisories, err := fe.nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + schema.StreamWork + ".>")
	if err != nil {
		t.Fatal(err)
	}

	entered := make(chan string, 32)
	release := make(chan struct{})
	var releaseOnce sync.Once
	tap := newEngineTap(docker)
	tap.setFault(func(ctx context.Context, jobID string) error {
		entered <- jobID
		select { // hang as a wedged worker would, until it is gone
		case <-release:
		case <-ctx.Done():
		}
		return errors.New("create abandoned by a dead worker")
	})
	// The dying workers' own warnings (fetching on a closed connection)
	// are expected; keep them out of the log.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dyingWorker := func(n int) *nats.Conn {
		nc := fe.connect(t, fmt.Sprintf("dying-worker-%d", n), auth.User{Role: auth.RoleWorker})
		fe.startWorker(ctx, worker.Config{ID: fmt.Sprintf("%s-budget%d", workerID, n), Conn: nc, Docker: tap,
			Logger: quiet, Slots: 1, MaxDeliver: 2, AckWait: time.Second})
		// Let the held create return before the worker's Stop waits for it.
		t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
		return nc
	}
	nc := dyingWorker(1)
	// The worker sets the pool consumer's delivery budget; use all of it.
	info, err := consumerInfo(ctx, fe.nc, schema.StreamWork, bus.WorkConsumer(schema.DefaultPool))
	if err != nil {
		t.Fatal(err)
	}
	budget := info.Config.MaxDeliver
	if budget < 1 || budget > 20 {
		t.Fatalf("pool consumer MaxDeliver = %d, want a small budget", budget)
	}

	h, err := fe.client.Submit(ctx, pythonJob("budget", `print("never")`))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	defer h.Stop()
	for delivery := 1; delivery <= budget; delivery++ {
		select {
		case id := <-entered:
			if id != h.Key {
				t.Fatalf("create for job %q, want %s", id, h.Key)
			}
		case <-ctx.Done():
			t.Fatalf("delivery %d of %d never reached a worker", delivery, budget)
		}
		nc.Close() // the worker dies: no ack, no nak, no progress
		if delivery < budget {
			nc = dyingWorker(delivery + 1)
		}
	}
	t.Logf("%d deliveries, each to a worker that died holding it", budget)
	// A healthy worker of the pool pulls again; JetStream gives up on the
	// job rather than deliver it a budget+1st time.
	tap.setFault(nil)
	fe.startWorker(ctx, worker.Config{ID: workerID + "-budget-ok", Docker: tap, Slots: 1, MaxDeliver: 2, AckWait: time.Second})
	msg, err := advisories.NextMsg(pollBudget)
	if err != nil {
		t.Fatalf("no max_deliveries advisory: JetStream did not give up on the job: %v", err)
	}
	exhausted := time.Now()
	t.Logf("JetStream gave up on the job: %s", msg.Data)

	const grace = 30 * time.Second
	wctx, wcancel := context.WithTimeout(ctx, grace)
	defer wcancel()
	ev, err := h.Result(wctx)
	if ev == nil {
		t.Fatalf("docs/design.md §6 \"max-delivery ... end in a terminal event\": job %s has no terminal event %s after its "+
			"delivery budget was exhausted (nothing acts on the max_deliveries advisory): %v", h.ID, grace, err)
	}
	t.Logf("terminal event %s after the budget ran out", time.Since(exhausted).Round(time.Millisecond))
	if n := len(tap.createsOf(h.Key)); n != budget {
		t.Errorf("%d container creates, want %d: a job past its delivery budget must not run", n, budget)
	}
	wantStatus(t, ev, schema.EventError, schema.StatusError, schema.ErrInfrastructure)
	if n := terminalCountOn(t, fe.nc, h.Key); n != 1 {
		t.Errorf("%d terminal events stored, want exactly 1", n)
	}
}

// faultEnv is one test's own brig, to break at will: an embedded NATS
// server on a random port with its store in a temp dir, its authority
// (docs/design.md §10), the test's own connections to it, and whatever
// roles the test starts.
type faultEnv struct {
	t    *testing.T
	dir  string // short, for unix socket paths: store, runtime dirs, keys
	addr string // the server's host:port, kept across restarts
	srv  *server.Server
	// auth is the authority the server trusts; it outlives restarts, and
	// so do the credentials it minted.
	auth *auth.Authority
	// nc is an admin connection: the test inspects streams, deploys and
	// forges on it. client is a tenant's, on clientNC with the default
	// tenant's client credential.
	nc       *nats.Conn
	clientNC *nats.Conn
	client   *sdk.Client
	credsMu  sync.Mutex
	creds    map[auth.Role]string // minted files, by role
}

func newFaultEnv(ctx context.Context, t *testing.T) *faultEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "brig-f-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fe := &faultEnv{t: t, dir: dir}
	if fe.auth, _, err = auth.OpenOrCreate(filepath.Join(dir, "auth")); err != nil {
		t.Fatal(err)
	}
	fe.startServer(ctx, "127.0.0.1:0")
	// Registered once, before any role: whichever server runs last goes
	// down after the roles have stopped.
	t.Cleanup(func() { fe.srv.Shutdown(); fe.srv.WaitForShutdown() })
	fe.nc = fe.connect(t, "test-admin", auth.User{Role: auth.RoleAdmin})
	putTenant(ctx, t, fe.nc, schema.Tenant{Name: schema.DefaultTenant}, 1)
	fe.clientNC = fe.connect(t, "test-client", auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant})
	if fe.client, err = sdk.New(fe.clientNC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fe.client.Close)
	return fe
}

func (fe *faultEnv) url() string { return "nats://" + fe.addr }

func (fe *faultEnv) startServer(ctx context.Context, listen string) {
	t := fe.t
	t.Helper()
	srv, err := natsserver.Start(ctx, natsserver.Config{Listen: listen, DataDir: filepath.Join(fe.dir, "jetstream"),
		Logger: logger.With("role", "nats"), Auth: fe.auth})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	fe.srv, fe.addr = srv, strings.TrimPrefix(srv.ClientURL(), "nats://")
}

// restartServer shuts the server down and starts a new one on the same
// address and store.
func (fe *faultEnv) restartServer(ctx context.Context, t *testing.T) {
	t.Helper()
	fe.srv.Shutdown()
	fe.srv.WaitForShutdown()
	fe.startServer(ctx, fe.addr)
}

// connect dials the server with a fresh credential for u, the way brig's
// long-running roles do: it reconnects forever.
func (fe *faultEnv) connect(t *testing.T, name string, u auth.User) *nats.Conn {
	t.Helper()
	token, seed, err := fe.auth.UserJWT(u)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(fe.url(), append(inboxOf(u), nats.Name(name), nats.UserJWTAndSeed(token, string(seed)),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// roleConn is a connection with role's credential, for an in-process
// dispatcher or worker; it lasts as long as the env, as those roles do
// (their Stop is a cleanup of the env's test, not of a subtest).
func (fe *faultEnv) roleConn(role auth.Role) *nats.Conn {
	fe.t.Helper()
	return fe.connect(fe.t, "test-"+string(role), auth.User{Role: role})
}

// credsFile is a .creds file of role's, minted once per env, for the
// roles run as processes and the CLI (--creds).
func (fe *faultEnv) credsFile(role auth.Role) string {
	t := fe.t
	t.Helper()
	fe.credsMu.Lock()
	defer fe.credsMu.Unlock()
	if path, ok := fe.creds[role]; ok {
		return path
	}
	data, err := fe.auth.Creds(auth.User{Role: role})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(fe.dir, "creds", string(role)+".creds")
	if err := auth.WriteSecret(path, data); err != nil {
		t.Fatal(err)
	}
	if fe.creds == nil {
		fe.creds = map[auth.Role]string{}
	}
	fe.creds[role] = path
	return path
}

// startDispatcher starts an in-process dispatcher on nc that resolves
// deployed functions; edits change its config first.
func (fe *faultEnv) startDispatcher(ctx context.Context, nc *nats.Conn, edits ...func(*dispatcher.Config)) *dispatcher.Dispatcher {
	t := fe.t
	t.Helper()
	fns, err := functions.OpenKVResolver(ctx, nc, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dispatcher.Config{Conn: nc, Logger: logger, Functions: fns}
	for _, edit := range edits {
		edit(&cfg)
	}
	d, err := dispatcher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start dispatcher: %v", err)
	}
	t.Cleanup(func() { stopWithin(t, "dispatcher", d.Stop) })
	return d
}

// startWorker starts an in-process worker; cfg's zero Conn, Docker,
// Logger, InitBinary, RuntimeDir and Slots get the test's.
func (fe *faultEnv) startWorker(ctx context.Context, cfg worker.Config) *worker.Worker {
	t := fe.t
	t.Helper()
	if cfg.Conn == nil {
		cfg.Conn = fe.roleConn(auth.RoleWorker)
	}
	if cfg.Docker == nil {
		cfg.Docker = docker
	}
	if cfg.Logger == nil {
		cfg.Logger = logger
	}
	if cfg.InitBinary == "" {
		cfg.InitBinary = brigBin
	}
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = filepath.Join(fe.dir, "run")
	}
	if cfg.Slots == 0 {
		cfg.Slots = 2
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatalf("new worker: %v", err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatalf("start worker %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { stopWithin(t, "worker "+cfg.ID, w.Stop) })
	return w
}

// workerProc runs `brig worker` as a process.
func (fe *faultEnv) workerProc(ctx context.Context, id, runtimeDir string, slots int) *roleProc {
	return fe.startRole(ctx, "worker", "--server", fe.url(), "--creds", fe.credsFile(auth.RoleWorker), "--id", id,
		"--runtime-dir", runtimeDir, "--slots", strconv.Itoa(slots), "--grace", "5s", "--ack-wait", "6s")
}

// dispatcherProc runs `brig dispatcher` as a process.
func (fe *faultEnv) dispatcherProc(ctx context.Context, keyFile string) *roleProc {
	return fe.startRole(ctx, "dispatcher", "--server", fe.url(), "--creds", fe.credsFile(auth.RoleDispatcher),
		"--key-file", keyFile, "--grace", "5s", "--ack-wait", "5s")
}

// storedCounts maps each subject matching filter to its number of stored
// events.
func (fe *faultEnv) storedCounts(t *testing.T, filter string) map[string]int {
	t.Helper()
	return storedCountsOn(t, fe.nc, filter)
}

func (fe *faultEnv) storedTotal(t *testing.T, filter string) int {
	t.Helper()
	return countStoredIn(t, fe.nc, schema.StreamEvents, filter)
}

func storedCountsOn(t *testing.T, nc *nats.Conn, filter string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, schema.StreamEvents)
	if err != nil {
		t.Fatalf("stream %s: %v", schema.StreamEvents, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("stream %s info on %s: %v", schema.StreamEvents, filter, err)
	}
	counts := make(map[string]int, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		counts[subj] = int(n)
	}
	return counts
}

// terminalCountOn counts the stored terminal events of the job of a key
// (jobID) on nc's server.
func terminalCountOn(t *testing.T, nc *nats.Conn, jobID string) int {
	t.Helper()
	n := 0
	for _, typ := range terminalTypes {
		n += countStoredIn(t, nc, schema.StreamEvents, schema.EventSubject(jobID, typ))
	}
	return n
}

// wantOnce checks that the job of a key (jobID) has exactly one stored
// terminal event and one accepted event and, when ran, ran once (one
// started event).
func wantOnce(t *testing.T, counts map[string]int, jobID string, ran bool) {
	t.Helper()
	terminal := 0
	for _, typ := range terminalTypes {
		terminal += counts[schema.EventSubject(jobID, typ)]
	}
	accepted := counts[schema.EventSubject(jobID, schema.EventAccepted)]
	started := counts[schema.EventSubject(jobID, schema.EventStarted)]
	if terminal != 1 || accepted != 1 || (ran && started != 1) {
		t.Errorf("job %s: %d terminal, %d accepted, %d started events stored; want 1 of each", jobID, terminal, accepted, started)
	}
}

// waitEventType reads a handle's events up to the first of type typ.
func waitEventType(ctx context.Context, t *testing.T, h *sdk.Handle, typ schema.EventType) schema.Event {
	t.Helper()
	for {
		select {
		case ev, ok := <-h.Events():
			if !ok {
				t.Fatalf("job %s: events ended before a %s event", h.ID, typ)
			}
			if ev.Type == typ {
				return ev
			}
			if schema.IsTerminal(ev.Type) {
				t.Fatalf("job %s ended before a %s event: %s", h.ID, typ, brief(&ev))
			}
		case <-ctx.Done():
			t.Fatalf("job %s: no %s event: %v", h.ID, typ, ctx.Err())
		}
	}
}

// watchOn follows a job on c until its terminal event.
func watchOn(ctx context.Context, c *sdk.Client, jobID string) (*schema.Event, error) {
	h, err := c.Watch(ctx, jobID)
	if err != nil {
		return nil, err
	}
	defer h.Stop()
	return h.Result(ctx)
}

// pollUntil calls cond every period until it is done, failing the test
// with cond's last word when ctx ends.
func pollUntil(ctx context.Context, t *testing.T, period time.Duration, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		done, state := cond()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not reached: %s", state)
		case <-tick.C:
		}
	}
}

// waitNoContainers waits until no container carries the label (k=v);
// containers are removed after the terminal event, off its path.
func waitNoContainers(t *testing.T, label string) {
	t.Helper()
	eventually(t, removalBudget, func(ctx context.Context) (bool, string) {
		list, err := docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
		if err != nil {
			return false, err.Error()
		}
		return len(list) == 0, fmt.Sprintf("containers with label %s: %s", label, names(list))
	})
}

// removalBudget bounds the wait for a worker to remove its containers:
// after TestLoad's 300 jobs a loaded daemon took over 30 s to answer one
// container list while it worked through the removals.
const removalBudget = 3 * time.Minute

// wantRetriedAfter checks that a job's container was created n times, each
// retry at least backoff after the one before.
func wantRetriedAfter(t *testing.T, creates []time.Time, n int, backoff time.Duration) {
	t.Helper()
	if len(creates) != n {
		t.Errorf("%d container creates, want %d", len(creates), n)
		return
	}
	for i := 1; i < n; i++ {
		if gap := creates[i].Sub(creates[i-1]); gap < backoff {
			t.Errorf("retry %d came %s after the previous attempt, want at least the backoff %s", i, gap, backoff)
		}
	}
}

// engineTap is the tests' real Engine API client with ContainerCreate
// intercepted: it records every call per job and, while a fault is set,
// lets the fault fail or hold the call.
type engineTap struct {
	sandbox.Engine
	mu      sync.Mutex
	creates map[string][]time.Time
	fault   func(ctx context.Context, jobID string) error
}

func newEngineTap(real sandbox.Engine) *engineTap {
	return &engineTap{Engine: real, creates: map[string][]time.Time{}}
}

func (e *engineTap) setFault(f func(ctx context.Context, jobID string) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fault = f
}

func (e *engineTap) createsOf(jobID string) []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.creates[jobID]...)
}

func (e *engineTap) ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig,
	netCfg *network.NetworkingConfig, platform *ocispec.Platform, name string,
) (container.CreateResponse, error) {
	job := cfg.Labels[sandbox.LabelJob]
	e.mu.Lock()
	e.creates[job] = append(e.creates[job], time.Now())
	fault := e.fault
	e.mu.Unlock()
	if fault != nil {
		if err := fault(ctx, job); err != nil {
			return container.CreateResponse{}, err
		}
	}
	return e.Engine.ContainerCreate(ctx, cfg, host, netCfg, platform, name)
}

// roleProc is a brig role running as a process of the static binary.
type roleProc struct {
	name   string
	cmd    *exec.Cmd
	ready  chan struct{}
	exited chan struct{}
	mu     sync.Mutex
	stderr strings.Builder
}

// startRole runs `brigBin args...` and waits for its "ready" line. The
// process is stopped (SIGTERM, then SIGKILL) when the test ends, and its
// stderr logged if the test failed. Its server and credential are those
// args name, never the environment's (BRIG_SERVER, BRIG_CREDS and
// BRIG_TLS_CA are removed).
func (fe *faultEnv) startRole(ctx context.Context, args ...string) *roleProc {
	fe.t.Helper()
	return startProc(ctx, fe.t, scrubbedEnv("BRIG_SERVER=", "BRIG_CREDS=", "BRIG_TLS_CA="), args...)
}

// startProc runs `brigBin args...` with env as startRole does.
func startProc(ctx context.Context, t *testing.T, env []string, args ...string) *roleProc {
	t.Helper()
	p := &roleProc{name: args[0], ready: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(brigBin, args...)
	p.cmd.Env = env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the tests
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startLocked(p.cmd, p.exited); err != nil {
		t.Fatalf("start brig %s: %v", p.name, err)
	}
	go p.read(pipe)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("stderr of brig %s (pid %d):\n%s", p.name, p.cmd.Process.Pid, p.output())
		}
	})
	select {
	case <-p.ready:
		return p
	case <-p.exited:
		t.Fatalf("brig %s exited before it was ready (%v):\n%s", p.name, p.cmd.ProcessState, p.output())
	case <-ctx.Done():
		t.Fatalf("brig %s not ready: %v:\n%s", p.name, ctx.Err(), p.output())
	}
	return nil
}

// startLocked starts cmd from a thread locked to one goroutine until
// exited closes. Pdeathsig fires when the thread that forked the child
// ends, not the test process, and Go ends any thread whose goroutine exits
// while locked to it (network namespace helpers do that): a child forked
// from a thread the scheduler shares could be SIGKILLed mid-test. This
// thread ends only after the child has.
func startLocked(cmd *exec.Cmd, exited <-chan struct{}) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-exited
		}
	}()
	return <-started
}

// read keeps the process's stderr, notes its ready line, and reaps it.
func (p *roleProc) read(pipe io.Reader) {
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.stderr.WriteString(line + "\n")
		p.mu.Unlock()
		if !ready && strings.HasPrefix(line, "ready ") {
			ready = true
			close(p.ready)
		}
	}
	_ = p.cmd.Wait()
	close(p.exited)
}

func (p *roleProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// kill SIGKILLs the process and waits until it is gone.
func (p *roleProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill brig %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(pollBudget):
		t.Fatalf("brig %s (pid %d) still running %s after SIGKILL", p.name, p.cmd.Process.Pid, pollBudget)
	}
}

// stop asks the process to shut down and kills it if it takes too long.
func (p *roleProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(shutdownBudget):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
