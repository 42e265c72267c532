package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/proxy"
	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/schema"
)

const (
	// initStderrCap is how much of its init's own stderr a job's outcome
	// keeps (shown only in Infrastructure messages).
	initStderrCap = 4 << 10
	// hardStopGrace: should the kill at the timeout not end the stream (a
	// wedged daemon), the Runner stops reading this long after it.
	hardStopGrace = 30 * time.Second
	// gatewayGrace is how long past its timeout a job's gateway keeps
	// answering (the init may still be flushing).
	gatewayGrace = 5 * time.Second
	// reuseMaxJobs bounds how many jobs one reused sandbox serves before
	// it is replaced, so that a slow leak of any kind cannot grow without
	// end.
	reuseMaxJobs = 1000
)

// Job is one job on its way into a sandbox.
type Job struct {
	Work *schema.Work
	// Binding is bound to the sandbox's gateway socket when the job is
	// handed over, its Deadline set then: the hand-over time plus the
	// job's timeout plus gatewayGrace (docs/design.md §4.3).
	Binding gateway.Binding
	// OnStart, when set, hears which container the job got and how, once
	// the job is on its way to the init.
	OnStart func(container string, kind schema.SandboxKind)
	// OnOutput, when set, is given the job's output as it comes, within
	// its output_bytes.
	OnOutput func(stream schema.OutputStream, p []byte)
	// OnEgressDenied, when set, hears of every connection and DNS query of
	// a job with an egress list that the filtering proxy refused.
	OnEgressDenied func(schema.EgressDenial)
}

// Outcome is how a job ended in its sandbox.
type Outcome struct {
	// Exit is the init's report; nil when the init never reported.
	Exit     *initproto.Exit
	TimedOut bool
	OOM      bool
	// Tampered: the stream carried frames the init did not write.
	Tampered bool
	// Interrupted is the cause of Run's ctx when ctx ended while the job
	// ran: the container was killed, and Stdout and Stderr hold what the
	// job wrote until then (a cancellation's terminal event keeps it, as a
	// timeout's does: docs/design.md §6). The caller tells a cancellation
	// from a shutdown by the cause; Release removes the container either
	// way.
	Interrupted error
	// Stdout and Stderr are the job's output within output_bytes; InitLog
	// is the init's own stderr (what it said of a failure).
	Stdout, Stderr, InitLog *Capture
	// ContainerExitCode is the container's own exit code, learnt when the
	// init did not report a clean exit.
	ContainerExitCode int
	// Container is the container's id.
	Container string
	// Release removes the container, off the latency path, or gives it
	// back to the reuse cache for the function's next job. Call it once,
	// when the job's terminal event is out.
	Release func()
}

// Failure is a failure that retrying cannot fix (the image is missing,
// the runtime is not available): it ends the job with Status and an error
// of ErrType. Every other error of Run is brig's own, for a retry.
type Failure struct {
	ErrType schema.ErrorType
	Status  schema.Status
	Message string
}

func (f *Failure) Error() string { return f.Message }

// Run runs one job in a sandbox: a reused one (single_use: false), a
// prewarmed one, or one started for it (cold). It returns when the job
// has ended; on error the sandbox is already gone. Errors are brig's own
// failures, for a retry, unless they are *Failure; a job's own failure
// (a non-zero exit, a timeout, an OOM kill, tampering) is an Outcome, and
// so is a job that ctx ended once it had its sandbox (Interrupted), so
// that the output it had already written is not lost; ctx ending while
// its container is made is an error. Call it between Start and Stop.
func (r *Runner) Run(ctx context.Context, job *Job) (_ *Outcome, err error) {
	defer r.warm.jobRunning()() // the free slots the prewarm depth grows into
	spec := job.Work.Spec
	egressList, err := parseEgress(spec)
	if err != nil {
		return nil, &Failure{ErrType: schema.ErrInvalidJob, Status: schema.StatusRejected,
			Message: fmt.Sprintf("egress list is not valid: %v", err)}
	}
	out := &Outcome{
		Stdout:  NewCapture(spec.Limits.OutputBytes),
		Stderr:  NewCapture(spec.Limits.OutputBytes),
		InitLog: NewCapture(initStderrCap),
	}
	// The job goes to the init as early as possible: a cold container gets
	// it before it is started, so that the init finds it at once.
	key := initproto.NewKey()
	handOver := func(sb *Sandbox) { r.handOver(sb, job, egressList, key, out.InitLog) }
	sb, err := r.sandboxFor(ctx, job, handOver)
	if err != nil {
		return nil, err
	}
	out.Container = sb.id
	if sb.prewarmed {
		defer r.warm.freshDone() // refills held for it may go ahead
	}
	defer func() {
		if err != nil {
			r.discard(ctx, sb)
		}
	}()
	if job.OnStart != nil {
		job.OnStart(sb.id, sb.kind())
	}
	timerFired := r.watch(ctx, sb, spec, key, out, job.OnOutput)
	if out.Interrupted != nil {
		// ctx's kill ended the job (and a reused sandbox's init with it):
		// the container goes, once the caller's terminal event is out.
		sb.close()
		out.Release = r.release(ctx, sb, spec, false)
		return out, nil
	}
	sb.jobs++
	reusable := sb.reuse && !timerFired && !out.Tampered && out.Exit != nil && out.Exit.Reusable &&
		sb.jobs < reuseMaxJobs
	if sb.reuse && out.Exit != nil && out.Exit.WipeError != "" {
		r.log.Warn("reused container discarded: its wipe could not undo what the job changed",
			"job", job.Work.Job.ID, "container", sb.id, "reason", schema.ClipText(out.Exit.WipeError, schema.MaxEventTextBytes))
	}
	if !reusable {
		sb.close()
	}
	r.settle(ctx, sb, out)
	out.Release = r.release(ctx, sb, spec, reusable)
	return out, nil
}

// handOver gives a sandbox its job: its gateway socket is bound to the job
// from now until its timeout plus gatewayGrace, its init's stderr goes to
// initLog, its egress socket (if it has one) is bound to the job's list,
// and the job is written to its init (in the background: the write may
// wait until the container starts).
func (r *Runner) handOver(sb *Sandbox, job *Job, list *allow.List, key []byte, initLog *Capture) {
	b := job.Binding
	b.Deadline = time.Now().Add(job.Work.Spec.Timeout() + gatewayGrace)
	sb.ln.Bind(b)
	var relay *initproto.EgressRelay
	if sb.egress != nil {
		sb.egress.Bind(proxy.Binding{JobID: job.Work.Job.ID, List: list, OnDenied: job.OnEgressDenied})
		relay = &initproto.EgressRelay{Ports: list.Ports()}
	}
	sb.initLog.Store(initLog)
	go func() {
		req := initRequest(job.Work, brigEnv(job.Work))
		req.Key, req.Reuse, req.GatewayPath, req.Egress = key, sb.reuse, sb.sock, relay
		if err := initproto.WriteRequest(sb.hijack.Conn, req); err != nil {
			r.log.Warn("feed job to container", "job", job.Work.Job.ID, "err", err)
		}
		if !sb.reuse {
			_ = sb.hijack.CloseWrite()
		}
	}()
}

// release is what becomes of a sandbox whose job ended, once its terminal
// event is out: a reusable one goes back to the reuse cache, its socket
// reset; any other is removed, its socket closed at once, so that every
// call of the job ends before its terminal event.
func (r *Runner) release(ctx context.Context, sb *Sandbox, spec schema.RunSpec, reusable bool) func() {
	if reusable {
		return func() {
			sb.ln.Reset()
			r.reuse.put(ctx, spec, sb)
		}
	}
	sb.ln.Close()
	sb.closeEgress()
	return func() { r.removeContainer(ctx, sb.id) }
}

// sandboxFor returns the sandbox a job runs in, handed the job: a reused
// one (single_use: false, started on first use), a prewarmed one, or one
// started for the job, which it finds as soon as it starts.
func (r *Runner) sandboxFor(ctx context.Context, job *Job, handOver func(*Sandbox)) (*Sandbox, error) {
	spec := job.Work.Spec
	if len(spec.Egress) > 0 {
		// Never prewarmed nor reused: the sandbox's relay and egress
		// socket are its one job's (docs/design.md §12).
		return r.openCold(ctx, spec, job.Work.Job.ID, handOver)
	}
	if !spec.SingleUse {
		tenant, _, _ := schema.SplitJobKey(job.Work.Job.ID)
		sb := r.reuse.take(tenant, spec)
		if sb == nil {
			var err error
			if sb, err = r.open(ctx, spec, "reuse", nil, nil); err != nil {
				return nil, err
			}
			r.cfg.Metrics.ContainerStarted("reuse")
			sb.reuse, sb.tenant = true, tenant
		}
		handOver(sb)
		return sb, nil
	}
	if sb := r.warm.take(spec); sb != nil {
		handOver(sb)
		return sb, nil
	}
	return r.openCold(ctx, spec, job.Work.Job.ID, handOver)
}

// openCold starts a sandbox for one job, handed the job before it starts.
func (r *Runner) openCold(ctx context.Context, spec schema.RunSpec, owner string, handOver func(*Sandbox)) (*Sandbox, error) {
	sb, err := r.open(ctx, spec, owner, nil, handOver)
	if err != nil {
		return nil, err
	}
	r.cfg.Metrics.ContainerStarted("cold")
	return sb, nil
}

// watch reads the job's frames into out until the init reports its exit
// or the stream ends, killing the container at the job's timeout, on
// tampering and when ctx ends (then out.Interrupted is ctx's cause).
// timerFired says the timeout's kill was sent, even if the exit report
// beat it.
func (r *Runner) watch(ctx context.Context, sb *Sandbox, spec schema.RunSpec, key []byte, out *Outcome, onOutput func(schema.OutputStream, []byte)) (timerFired bool) {
	var timedOut atomic.Bool
	kill := func() { _ = r.cfg.Engine.ContainerKill(context.WithoutCancel(ctx), sb.id, "KILL") }
	timer := time.AfterFunc(spec.Timeout(), func() { timedOut.Store(true); kill() })
	defer timer.Stop()
	// Should the kill not end the stream (a wedged daemon), stop reading.
	hard := time.AfterFunc(spec.Timeout()+hardStopGrace, sb.close)
	defer hard.Stop()
	stopOnCancel := context.AfterFunc(ctx, kill)
	defer stopOnCancel()

	out.Exit = readFrames(sb.frames, initproto.NewFramer(key), out, onOutput)
	if out.Tampered {
		kill()
	}
	timer.Stop()
	// A job that reported its exit finished in time, even if the timer
	// fired while the report was on its way.
	out.TimedOut = timedOut.Load() && out.Exit == nil
	if ctx.Err() != nil {
		// Even an exit report that beat the kill: the caller asked for the
		// job to end, and the kill may have reached the container anyway.
		out.Interrupted, out.TimedOut = context.Cause(ctx), false
		return false
	}
	return timedOut.Load()
}

// readFrames consumes the init's frames until its Exit frame or the end of
// the stream.
func readFrames(frames io.Reader, framer *initproto.Framer, out *Outcome, onOutput func(schema.OutputStream, []byte)) *initproto.Exit {
	for {
		typ, payload, err := framer.ReadFrame(frames)
		switch {
		case errors.Is(err, initproto.ErrBadMAC), errors.Is(err, initproto.ErrFrameTooLarge):
			// Only the init holds the key: the job wrote into the stream.
			out.Tampered = true
			out.InitLog.Add([]byte("brig: bad frame in the sandbox's stream: " + err.Error() + "\n"))
			return nil
		case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
			// The attach stream itself broke (the daemon, the connection):
			// brig's failure, which the missing exit report will say.
			out.InitLog.Add([]byte("brig: the sandbox's stream broke: " + err.Error() + "\n"))
			return nil
		case err != nil:
			return nil
		}
		switch typ {
		case initproto.FrameStdout:
			if kept := out.Stdout.Add(payload); len(kept) > 0 && onOutput != nil {
				onOutput(schema.StreamStdout, kept)
			}
		case initproto.FrameStderr:
			if kept := out.Stderr.Add(payload); len(kept) > 0 && onOutput != nil {
				onOutput(schema.StreamStderr, kept)
			}
		case initproto.FrameExit:
			exit, err := decodeExit(payload)
			if err != nil {
				out.InitLog.Add([]byte("brig: bad exit frame: " + err.Error() + "\n"))
				return nil
			}
			return exit
		}
	}
}

// decodeExit reads the init's Exit frame. What it says of the job's
// result is checked by the worker: the init runs inside the sandbox.
func decodeExit(payload []byte) (*initproto.Exit, error) {
	var e initproto.Exit
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// settle waits for the container to stop and learns whether it ran out of
// memory, which the init can only sometimes see.
func (r *Runner) settle(ctx context.Context, sb *Sandbox, out *Outcome) {
	if out.Exit != nil && out.Exit.OOMKills > 0 {
		out.OOM = true
	}
	if out.Exit != nil && (out.Exit.Signal == 0 || sb.reuse) {
		// A clean exit needs no waiting for teardown; a reused sandbox's
		// init reported its cgroup's OOM kills and keeps running.
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	waitC, errC := r.cfg.Engine.ContainerWait(wctx, sb.id, container.WaitConditionNotRunning)
	select {
	case res := <-waitC:
		out.ContainerExitCode = int(res.StatusCode)
	case <-errC:
	}
	if info, err := r.cfg.Engine.ContainerInspect(wctx, sb.id); err == nil && info.State != nil && info.State.OOMKilled {
		out.OOM = true
	}
}
