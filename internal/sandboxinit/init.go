//go:build linux

// Package sandboxinit is the init process of every sandbox container: brig's
// own static binary, mounted read-only and run as PID 1 with the job's uid.
// It reads one initproto.Request from stdin, lays out /work, runs the job's
// command with its stdout and stderr on pipes, forwards their bytes as
// frames, and when the job's process ends kills whatever it left behind and
// reports an Exit frame at once, before the container is torn down.
package sandboxinit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/brig-dev/brig/internal/initproto"
)

// drainGrace bounds how long the init waits for output pipes to close after
// every process of the job is gone.
const drainGrace = 2 * time.Second

// Main runs the init and returns the process exit code. args may be
// "--zygote" and its initproto.Zygote (see startZygote), then "--warmup"
// and a command to run before the first request (see warmUp).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Outside a container's PID namespace, killAll would signal every
	// process of this user: refuse to run anywhere but as PID 1.
	if os.Getpid() != 1 {
		fmt.Fprintln(stderr, "brig init: runs only as PID 1 inside a sandbox container")
		return 2
	}
	// Not dumpable: the job runs with the same uid, and must not open
	// /proc/1/fd/1 to forge frames, nor ptrace or read this process.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(stderr, "brig init: prctl: %v\n", err)
		return 1
	}
	// As PID 1 we only receive signals we handle; handling (not ignoring)
	// them keeps the job from killing us while its own dispositions reset to
	// default on exec.
	sigs := make(chan os.Signal, 16)
	// Every signal: Go's runtime crashes on SIGSEGV, SIGABRT and the like
	// unless they are handled here.
	signal.Notify(sigs)
	go func() {
		for range sigs {
		}
	}()

	// The init is its process's main: nothing above it cancels. Its log
	// (the egress relay's) goes where its own errors do, warnings only.
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	zcfg, warmup, err := zygoteArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "brig init: %v\n", err)
		return 2
	}
	// What every wipe restores, taken before anything runs in the sandbox:
	// now when a warm-up or the zygote will run before the job, or when the
	// init waits for its job anyway; else (a cold start, its job already
	// waiting) only once a request asks for reuse, before that job runs. A
	// single-use job is never wiped after, and a cold one does not wait for
	// the baseline (it reads /proc/net, /dev and /run: tens of ms).
	var base *baseline
	if warmup != nil || zcfg != nil || !stdinReady() {
		if base, err = newBaseline(wipeDirs, touchDirs); err != nil {
			fmt.Fprintf(stderr, "brig init: %v\n", err)
			return 1
		}
	}
	if warmup != nil {
		if err := warmUp(warmup, base); err != nil {
			fmt.Fprintf(stderr, "brig init: warm-up: %v\n", err)
			return 1
		}
	}
	var zyg *zygote
	if zcfg != nil && !stdinReady() {
		// Without it the job runs by a plain exec: slower, not wrong.
		if zyg, err = startZygote(zcfg); err != nil {
			fmt.Fprintf(stderr, "brig init: %v\n", err)
		} else if !zyg.waitReady(zygoteReadyBudget) {
			fmt.Fprintln(stderr, "brig init: the zygote died or did not finish its preload in time; the job will run by a plain exec")
			zyg.discard()
			zyg = nil
		}
	}
	if zcfg != nil || warmup != nil {
		// A prewarmed sandbox tells its worker it is ready for a job
		// (docs/design.md §5): one byte, before any frame.
		if _, err := stdout.Write([]byte{initproto.Ready}); err != nil {
			fmt.Fprintf(stderr, "brig init: report ready: %v\n", err)
			return 1
		}
	}
	for first := true; ; first = false {
		req, err := initproto.ReadRequest(stdin)
		if !first && errors.Is(err, io.EOF) {
			return 0 // a reused sandbox's worker is done with it
		}
		if err != nil {
			fmt.Fprintf(stderr, "brig init: %v\n", err)
			return 1
		}
		if len(req.Key) < 16 {
			fmt.Fprintln(stderr, "brig init: request carries no frame key")
			return 1
		}
		if req.Reuse && base == nil {
			// Nothing ran yet: no warm-up, no zygote, no job.
			if base, err = newBaseline(wipeDirs, touchDirs); err != nil {
				fmt.Fprintf(stderr, "brig init: %v\n", err)
				return 1
			}
		}
		out := &frameWriter{w: stdout, f: initproto.NewFramer(req.Key)}
		exit, err := run(ctx, log, req, out, base, zyg)
		zyg = nil // it served its one job, or is gone
		if err != nil {
			fmt.Fprintf(stderr, "brig init: %v\n", err)
			return 1
		}
		if err := out.writeExit(exit); err != nil {
			fmt.Fprintf(stderr, "brig init: report exit: %v\n", err)
			return 1
		}
		if !exit.Reusable {
			return 0
		}
	}
}

func run(ctx context.Context, log *slog.Logger, req *initproto.Request, out *frameWriter, base *baseline, zyg *zygote) (*initproto.Exit, error) {
	if err := layout(req); err != nil {
		if zyg == nil || base == nil {
			return nil, err
		}
		// The zygote's preload (the function's own list) left something in
		// the job's way: it goes, the sandbox is wiped back to its baseline
		// and the job runs by a plain exec (docs/design.md §5.1).
		zyg.discard()
		zyg = nil
		if werr := wipeButSockets(base); werr != nil {
			return nil, fmt.Errorf("%w; wiping what the zygote left: %w", err, werr)
		}
		if err := layout(req); err != nil {
			return nil, err
		}
	}
	// The job's network, before the job: a relay that cannot start is a
	// setup failure, brig's (docs/design.md §12.1).
	rl, err := startEgress(ctx, log, req.Egress)
	if err != nil {
		return nil, err
	}
	defer rl.stop()
	var p *jobProc
	if zyg != nil {
		p = zyg.take(req)
	}
	start := time.Now()
	if p == nil {
		if p, err = startProc(jobArgv(req), req.Dir, req.Env, nil); err != nil {
			return nil, err
		}
	}
	stdinW, stdoutR, stderrR, startErr := p.stdinW, p.stdoutR, p.stderrR, p.startErr
	exit := &initproto.Exit{Zygote: zyg != nil && p == zyg.proc}

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); io.WriteString(stdinW, req.Stdin); stdinW.Close() }()
	go func() { defer wg.Done(); out.forward(initproto.FrameStdout, stdoutR, req.OutputLimit) }()
	go func() { defer wg.Done(); out.forward(initproto.FrameStderr, stderrR, req.OutputLimit) }()

	oomBefore := oomKills()
	if startErr != nil {
		// Report like a shell would: the command could not be run.
		fmt.Fprintf(jobStderr(out), "brig: cannot run %q: %v\n", req.Command[0], startErr)
		exit.ExitCode = 127
		stdinW.Close()
	} else {
		status := reap(p.pid)
		exit.DurationNS = int64(time.Since(start))
		exit.ExitCode, exit.Signal = exitCode(status)
	}
	// The job is over when its main process is: end every process it left.
	killAll()
	rl.stop() // before a wipe, which would count its sockets as the job's
	drained := waitTimeout(&wg, drainGrace)
	stdoutR.Close()
	stderrR.Close()
	exit.Result, exit.ResultError = readResult(req.ResultPath, req.ResultMaxBytes)
	exit.OOMKills = oomKills() - oomBefore
	if req.Reuse {
		// Reusable only when nothing of this job can reach the next one: its
		// output goroutines are done (no stale frame follows the Exit), no
		// OOM kill hit it, and the wipe left nothing.
		err := wipe(base, req.GatewayPath)
		if err != nil {
			exit.WipeError = err.Error()
		}
		exit.Reusable = drained && exit.OOMKills == 0 && err == nil
	}
	return exit, nil
}

// jobArgv is the job's command, through ExecCommand when it needs limits
// of its own.
func jobArgv(req *initproto.Request) []string {
	if req.NProc <= 0 {
		return req.Command
	}
	// The limit must bind the job, not this init: under gVisor it counts
	// the uid's threads, and an init that cannot make one dies.
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	return append([]string{self, ExecCommand, strconv.FormatInt(req.NProc, 10)}, req.Command...)
}

// jobStderr writes a diagnostic as a stderr frame of the job.
func jobStderr(out *frameWriter) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		return len(p), out.frame(initproto.FrameStderr, p)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// reap waits for pid, reaping any orphan that exits meanwhile.
func reap(pid int) syscall.WaitStatus {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return ws
		}
		if got == pid {
			return ws
		}
	}
}

// killAll kills every process this init may signal (all but itself) and
// reaps them. The kill is repeated until nothing is left: a process forked
// while kill(-1) ran can miss it (gVisor lets a fork bomb's child through),
// and waiting for it would hang the init.
func killAll() {
	for {
		_ = syscall.Kill(-1, syscall.SIGKILL)
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil { // ECHILD: nothing left
				return
			}
			if pid == 0 { // some live on: signal again
				break
			}
		}
		time.Sleep(killRetry)
	}
}

// killRetry paces killAll's repeated kills.
const killRetry = 2 * time.Millisecond

func exitCode(ws syscall.WaitStatus) (code, sig int) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ws.ExitStatus(), 0
}

// waitTimeout waits for wg for at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
