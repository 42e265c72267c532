package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-units"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/schema"
)

// Sandbox filesystems. /work is owned by the job's uid through mount
// options: Docker drops a bare mode= when the image's WORKDIR is /work.
const (
	tmpfsTmp       = "rw,nosuid,nodev,noexec,size=64m"
	tmpfsWork      = "rw,nosuid,nodev,noexec,size=64m,uid=65534,gid=65534,mode=0755"
	maxFileBytes   = 64 << 20
	maxOpenFiles   = 1024
	initStderrCap  = 4 << 10
	teardownBudget = 30 * time.Second
	hardStopGrace  = 30 * time.Second
	startBudget    = time.Minute
	// runscPidsGuard: under gVisor the host's pids cgroup also counts the
	// sandbox's own threads and helper processes, and gVisor panics when it
	// runs out; the job's own limit is enforced inside as RLIMIT_NPROC.
	runscPidsGuard = 4096
	// initPidsHeadroom is what a runc container's pids limit adds to the
	// job's for the init's threads (Go's runtime uses about 8).
	initPidsHeadroom = 16
)

// outcome is how a sandboxed job ended.
type outcome struct {
	exit     *initproto.Exit // nil when the init never reported
	timedOut bool
	oom      bool
	stdout   *capture
	stderr   *capture
	initLog  *capture
	exitCode int // the container's own exit code when the init never reported
	// tampered: the stream carried frames the init did not write.
	tampered bool
	// container is removed by the caller once the terminal event is out,
	// off the latency path, or kept for the next job when reusable.
	container string
	box       *box
	reusable  bool
}

// jobFailure is a failure that retrying cannot fix: it ends the job.
type jobFailure struct {
	errType string
	status  string
	msg     string
}

func (f *jobFailure) Error() string { return f.msg }

// sandboxJob is one job on its way into a container.
type sandboxJob struct {
	work     *schema.Work
	onOutput func(stream string, p []byte)
	onStart  func(*box)
	// gatewaySock is the host path of the job's gateway socket.
	gatewaySock string
	// env is brig's own environment for the job (token, gateway, paths).
	env map[string]string
	// box, when set, is a prewarmed or reused container to run in.
	box *box
}

// runSandbox runs one job in a fresh, prewarmed or reused container. On
// success the caller removes outcome.container or, in reuse mode, may keep
// it for the next job when outcome.reusable; on error it is already gone.
// Errors are platform failures unless they are *jobFailure.
func (w *Worker) runSandbox(ctx context.Context, sj *sandboxJob) (_ *outcome, err error) {
	spec := sj.work.Spec
	out := &outcome{
		stdout:  newCapture(spec.Limits.OutputBytes),
		stderr:  newCapture(spec.Limits.OutputBytes),
		initLog: newCapture(initStderrCap),
	}
	// The job goes to the init as early as possible: a cold container gets
	// it before it is started, so that the init finds it at once.
	key := initproto.NewKey()
	feed := func(b *box) {
		b.initLog.Store(out.initLog)
		go func() {
			req := initRequest(sj.work, sj.env)
			req.Key, req.Reuse, req.GatewayPath = key, b.reuse, sj.gatewaySock
			if err := initproto.WriteRequest(b.hijack.Conn, req); err != nil {
				w.log.Warn("feed job to container", "job", sj.work.Job.ID, "err", err)
			}
			if !b.reuse {
				_ = b.hijack.CloseWrite()
			}
		}()
	}
	b := sj.box
	if b == nil {
		if b, err = w.startContainer(ctx, spec, sj.work.Job.ID, sj.gatewaySock, nil, feed); err != nil {
			return nil, err
		}
		w.cfg.Metrics.ContainerStarted("cold")
	} else {
		feed(b)
	}
	out.box, out.container = b, b.id
	id := b.id
	defer func() {
		if err != nil {
			b.close()
			w.removeContainer(ctx, id)
		}
	}()
	if sj.onStart != nil {
		sj.onStart(b)
	}

	var timedOut atomic.Bool
	kill := func() { _ = w.cfg.Docker.ContainerKill(context.WithoutCancel(ctx), id, "KILL") }
	timer := time.AfterFunc(spec.Timeout(), func() { timedOut.Store(true); kill() })
	defer timer.Stop()
	// Should the kill not end the stream (a wedged daemon), stop reading.
	hard := time.AfterFunc(spec.Timeout()+hardStopGrace, b.close)
	defer hard.Stop()
	stopOnCancel := context.AfterFunc(ctx, kill)
	defer stopOnCancel()

	out.exit = w.readFrames(b.frames, initproto.NewFramer(key), out, sj.onOutput)
	if out.tampered {
		kill()
	}
	timer.Stop()
	// A job that reported its exit finished in time, even if the timer
	// fired while the report was on its way.
	out.timedOut = timedOut.Load() && out.exit == nil
	if ctx.Err() != nil {
		return nil, fmt.Errorf("job %s interrupted: %w", sj.work.Job.ID, context.Cause(ctx))
	}
	b.jobs++
	out.reusable = b.reuse && !timedOut.Load() && !out.tampered && out.exit != nil && out.exit.Reusable &&
		b.jobs < reuseMaxJobs
	if b.reuse && out.exit != nil && out.exit.WipeError != "" {
		w.log.Warn("reused container discarded: its wipe could not undo what the job changed",
			"job", sj.work.Job.ID, "container", id, "reason", schema.ClipText(out.exit.WipeError, schema.MaxEventTextBytes))
	}
	if !out.reusable {
		b.close()
	}
	w.settle(ctx, id, out)
	return out, nil
}

// startContainer creates, attaches and starts a container for spec; owner
// is its job's id, or what it waits for ("prewarmed", "reuse"). Its init
// runs warmup first, when given, unless the job is already there.
// beforeStart, when set, is given the attached box before the container
// starts.
func (w *Worker) startContainer(ctx context.Context, spec schema.RunSpec, owner, sock string, warmup []string, beforeStart func(*box)) (*box, error) {
	id, err := w.createContainer(ctx, spec, owner, sock, warmup)
	if err != nil {
		return nil, err
	}
	hijack, err := w.cfg.Docker.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		w.removeContainer(ctx, id)
		return nil, fmt.Errorf("attach container for job %s: %w", owner, err)
	}
	b := newBox(id, hijack)
	if beforeStart != nil {
		beforeStart(b)
	}
	sctx, cancelStart := context.WithTimeout(ctx, startBudget) // a wedged runtime must not hold the slot
	err = w.cfg.Docker.ContainerStart(sctx, id, container.StartOptions{})
	cancelStart()
	if err != nil {
		b.close()
		w.removeContainer(ctx, id)
		return nil, dockerError("start", owner, err, spec)
	}
	return b, nil
}

// readFrames consumes the init's frames until its Exit frame or the end of
// the stream.
func (w *Worker) readFrames(frames io.Reader, framer *initproto.Framer, out *outcome, onOutput func(string, []byte)) *initproto.Exit {
	for {
		typ, payload, err := framer.ReadFrame(frames)
		switch {
		case errors.Is(err, initproto.ErrBadMAC), errors.Is(err, initproto.ErrFrameTooLarge):
			// Only the init holds the key: the job wrote into the stream.
			out.tampered = true
			out.initLog.add([]byte("brig: bad frame in the sandbox's stream: " + err.Error() + "\n"))
			return nil
		case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
			// The attach stream itself broke (the daemon, the connection):
			// brig's failure, which the missing exit report will say.
			out.initLog.add([]byte("brig: the sandbox's stream broke: " + err.Error() + "\n"))
			return nil
		case err != nil:
			return nil
		}
		switch typ {
		case initproto.FrameStdout:
			if kept := out.stdout.add(payload); len(kept) > 0 && onOutput != nil {
				onOutput(schema.StreamStdout, kept)
			}
		case initproto.FrameStderr:
			if kept := out.stderr.add(payload); len(kept) > 0 && onOutput != nil {
				onOutput(schema.StreamStderr, kept)
			}
		case initproto.FrameExit:
			exit, err := decodeExit(payload)
			if err != nil {
				out.initLog.add([]byte("brig: bad exit frame: " + err.Error() + "\n"))
				return nil
			}
			return exit
		}
	}
}

// settle waits for the container to stop and learns whether it ran out of
// memory, which the init can only sometimes see.
func (w *Worker) settle(ctx context.Context, id string, out *outcome) {
	if out.exit != nil && out.exit.OOMKills > 0 {
		out.oom = true
	}
	if out.exit != nil && (out.exit.Signal == 0 || out.box.reuse) {
		// A clean exit needs no waiting for teardown; a reused sandbox's
		// init reported its cgroup's OOM kills and keeps running.
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	waitC, errC := w.cfg.Docker.ContainerWait(wctx, id, container.WaitConditionNotRunning)
	select {
	case res := <-waitC:
		out.exitCode = int(res.StatusCode)
	case <-errC:
	}
	if info, err := w.cfg.Docker.ContainerInspect(wctx, id); err == nil && info.State != nil && info.State.OOMKilled {
		out.oom = true
	}
}

func (w *Worker) createContainer(ctx context.Context, spec schema.RunSpec, owner, sock string, warmup []string) (string, error) {
	netMode, err := w.networkMode(ctx, spec.Network)
	if err != nil {
		return "", err
	}
	pids := spec.Limits.Pids
	cpus := min(spec.Limits.CPUs, float64(w.hostCPUs))
	cfg := &container.Config{
		Image:           spec.Image,
		Entrypoint:      initCommand(warmup),
		User:            "65534:65534",
		Env:             []string{},
		Hostname:        "sandbox",
		AttachStdin:     true,
		AttachStdout:    true,
		AttachStderr:    true,
		OpenStdin:       true,
		StdinOnce:       true,
		NetworkDisabled: !spec.Network,
		Labels:          map[string]string{LabelJob: owner, LabelWorker: w.cfg.ID},
	}
	ulimits := []*units.Ulimit{
		{Name: "nofile", Soft: maxOpenFiles, Hard: maxOpenFiles},
		{Name: "fsize", Soft: maxFileBytes, Hard: maxFileBytes},
		{Name: "core", Soft: 0, Hard: 0},
	}
	if spec.Runtime == schema.RuntimeRunsc {
		// The job's own limit is RLIMIT_NPROC, set by the init on the job
		// alone (initRequest); Docker's limit only guards the host.
		pids = max(runscPidsGuard, 64*pids)
	} else {
		// The cgroup counts the init's own threads too: without room for
		// them a job at the smallest pids limit could not even start.
		pids += initPidsHeadroom
	}
	host := &container.HostConfig{
		NetworkMode:    netMode,
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Tmpfs:          map[string]string{"/tmp": tmpfsTmp, schema.WorkDir: tmpfsWork},
		IpcMode:        "private",
		LogConfig:      container.LogConfig{Type: "none"},
		Runtime:        spec.Runtime,
		Mounts:         w.mounts(sock),
		Resources: container.Resources{
			Memory:     spec.Limits.MemoryMB << 20,
			MemorySwap: spec.Limits.MemoryMB << 20,
			NanoCPUs:   int64(cpus * 1e9),
			PidsLimit:  &pids,
			Ulimits:    ulimits,
		},
	}
	name := "brig-" + owner + "-" + randomSuffix()
	resp, err := w.cfg.Docker.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		if spec.Network && cerrdefs.IsNotFound(err) {
			w.forgetEgress() // removed behind our back: the retry prepares it anew
		}
		return "", dockerError("create", owner, err, spec)
	}
	return resp.ID, nil
}

// initCommand is the init's command line: brig's binary, and the warm-up
// command it runs before the job when there is one.
func initCommand(warmup []string) []string {
	cmd := []string{InitPath, "sandbox-init"}
	if len(warmup) > 0 {
		cmd = append(append(cmd, "--warmup"), warmup...)
	}
	return cmd
}

// networkMode is none for a job without a network and brig's egress
// network for one with it: never Docker's default bridge, from which a job
// would reach the host, NATS and its neighbours (docs/design.md §5).
func (w *Worker) networkMode(ctx context.Context, enabled bool) (container.NetworkMode, error) {
	if !enabled {
		return "none", nil
	}
	name, err := w.egressNetwork(ctx)
	return container.NetworkMode(name), err
}

// dockerError turns a Docker error that no retry can fix into a job
// failure, and wraps any other for a retry. Only Docker's own error is read:
// the job id in the wrapping is the client's and must not steer this.
func dockerError(op, jobID string, err error, spec schema.RunSpec) error {
	msg := strings.ToLower(err.Error())
	switch {
	case cerrdefs.IsNotFound(err) && strings.Contains(msg, "image"):
		return &jobFailure{errType: schema.ErrNotFound, status: schema.StatusError,
			msg: fmt.Sprintf("image %q not found on this worker's Docker daemon (build it with `brig image build`)", spec.Image)}
	case cerrdefs.IsInvalidArgument(err) && strings.Contains(msg, "runtime"):
		return &jobFailure{errType: schema.ErrInvalidJob, status: schema.StatusRejected,
			msg: fmt.Sprintf("runtime %q is not available on this worker's Docker daemon: %v", spec.Runtime, err)}
	}
	return fmt.Errorf("%s container for job %s: %w", op, jobID, err)
}

// removeContainer removes a container off the caller's cancellation.
func (w *Worker) removeContainer(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownBudget)
	defer cancel()
	if err := w.cfg.Docker.ContainerRemove(rctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		w.log.Warn("remove container", "container", id, "err", err)
	}
}

// mounts are brig's files in the container, all read-only but the socket.
func (w *Worker) mounts(sock string) []mount.Mount {
	ms := []mount.Mount{
		{Type: mount.TypeBind, Source: w.initBinary, Target: InitPath, ReadOnly: true},
		{Type: mount.TypeBind, Source: w.pythonPath, Target: PythonPath, ReadOnly: true},
	}
	if sock != "" {
		ms = append(ms, mount.Mount{Type: mount.TypeBind, Source: sock, Target: gateway.Socket})
	}
	return ms
}

// initRequest is what the init needs to run the job. brigEnv is added last
// and wins, but PYTHONPATH keeps what the function or job put after it.
func initRequest(work *schema.Work, brigEnv map[string]string) *initproto.Request {
	job, spec := &work.Job, &work.Spec
	files := maps.Clone(job.Files)
	if files == nil {
		files = map[string]string{}
	}
	if job.Code != "" {
		files[spec.CodeFile] = job.Code
	}
	if len(job.Args) > 0 {
		files["args.json"] = string(job.Args)
	}
	env := map[string]string{}
	maps.Copy(env, spec.Env)
	maps.Copy(env, job.Env)
	for k, v := range brigEnv {
		if k == "PYTHONPATH" && env[k] != "" {
			v += ":" + env[k]
		}
		env[k] = v
	}
	envList := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}
	var nproc int64
	if spec.Runtime == schema.RuntimeRunsc {
		// Per sandbox under gVisor; under runc RLIMIT_NPROC would count uid
		// 65534 across every container of the host, so the pids cgroup does it.
		nproc = spec.Limits.Pids
	}
	return &initproto.Request{
		NProc:          nproc,
		Command:        spec.Command,
		Env:            envList,
		Dir:            schema.WorkDir,
		Files:          files,
		Stdin:          job.Stdin,
		OutputLimit:    spec.Limits.OutputBytes,
		ResultPath:     schema.WorkDir + "/" + schema.ResultFile,
		ResultMaxBytes: schema.MaxResultBytes,
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
