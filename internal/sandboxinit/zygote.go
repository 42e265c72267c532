//go:build linux

package sandboxinit

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/brig-dev/brig/internal/initproto"
)

// zygoteDriver is the Python code the zygote runs (docs/design.md §5.1).
//
//go:embed zygote.py
var zygoteDriver string

// zygote is a Python interpreter started before the job: it has imported
// its preload list and waits on a pipe (its fd 3) for the job's env. It
// serves the first request only, and only one it accepts; otherwise it is
// killed and the job runs by a plain exec.
type zygote struct {
	cfg  *initproto.Zygote
	proc *jobProc
	ctl  *os.File // the init's end of the control pipe
	// readyR hears the driver's one byte once it has imported its preload
	// and put its stdio back: only then does the init report the sandbox
	// ready, so that nothing of the preload runs beside the job's files or
	// is blamed on the job (docs/design.md §5.1).
	readyR *os.File
}

// startZygote starts the interpreter, its stdio on pipes as a job's are.
func startZygote(cfg *initproto.Zygote) (*zygote, error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("zygote control pipe: %w", err)
	}
	defer ctlR.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		ctlW.Close()
		return nil, fmt.Errorf("zygote ready pipe: %w", err)
	}
	defer readyW.Close()
	argv := append([]string{cfg.Command[0], "-c", zygoteDriver, cfg.Command[1]}, cfg.Preload...)
	proc, err := startProc(argv, cfg.Dir, cfg.Env, []*os.File{ctlR, readyW})
	if err == nil && proc.startErr != nil {
		proc.close()
		err = proc.startErr
	}
	if err != nil {
		ctlW.Close()
		readyR.Close()
		return nil, fmt.Errorf("start zygote: %w", err)
	}
	return &zygote{cfg: cfg, proc: proc, ctl: ctlW, readyR: readyR}, nil
}

// zygoteReadyBudget bounds the wait for a zygote's preload: one that takes
// longer (a tenant's list that hangs at import) is killed, and the job
// runs by a plain exec.
const zygoteReadyBudget = 20 * time.Second

// waitReady waits until the driver reports its preload done (one byte on
// its fd 4), at most d, and reports whether it did; a driver that dies
// first closes the pipe.
func (z *zygote) waitReady(d time.Duration) bool {
	defer z.readyR.Close()
	_ = z.readyR.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, _ := z.readyR.Read(b[:])
	return n == 1
}

// take hands req to the zygote and returns it as the job's process, or
// returns nil when the zygote cannot run req as a plain exec would (it is
// then gone).
func (z *zygote) take(req *initproto.Request) *jobProc {
	if !z.cfg.Accepts(req) || !z.alive() {
		z.discard()
		return nil
	}
	msg := strings.Join(req.Env, "\x00") + "\x00"
	go func() {
		// The driver reads to EOF; should it be dead, the write fails.
		_, _ = z.ctl.WriteString(msg)
		z.ctl.Close()
	}()
	return z.proc
}

// alive reports whether the interpreter still waits: nothing reaps it
// before the job, so a dead one is a zombie that WNOHANG finds.
func (z *zygote) alive() bool {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(z.proc.pid, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return err == nil && pid == 0
	}
}

// discard kills the interpreter (the only process there is before the
// job) and closes the init's ends of its pipes.
func (z *zygote) discard() {
	killAll()
	z.proc.close()
	z.ctl.Close()
}

// zygoteArgs parses the init's arguments: an optional `--zygote CONFIG`,
// then an optional `--warmup CMD ARGS...`.
func zygoteArgs(args []string) (*initproto.Zygote, []string, error) {
	var cfg *initproto.Zygote
	if len(args) >= 2 && args[0] == "--zygote" {
		var err error
		if cfg, err = initproto.DecodeZygote(args[1]); err != nil {
			return nil, nil, err
		}
		args = args[2:]
	}
	if len(args) == 0 {
		return cfg, nil, nil
	}
	if args[0] != "--warmup" || len(args) < 2 {
		return nil, nil, fmt.Errorf("unknown arguments %q", args)
	}
	return cfg, args[1:], nil
}

// startProc starts argv with its stdio on fresh pipes and extra files from
// fd 3 on. A program that cannot start is a jobProc with startErr set; an
// error is the init's own.
func startProc(argv []string, dir string, env []string, extra []*os.File) (*jobProc, error) {
	var ends [6]*os.File // stdin r/w, stdout r/w, stderr r/w
	for i := 0; i < len(ends); i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range ends[:i] {
				f.Close()
			}
			return nil, fmt.Errorf("job pipe: %w", err)
		}
		ends[i], ends[i+1] = r, w
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env, cmd.ExtraFiles = dir, env, extra
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ends[0], ends[3], ends[5]
	p := &jobProc{stdinW: ends[1], stdoutR: ends[2], stderrR: ends[4]}
	p.startErr = cmd.Start()
	ends[0].Close()
	ends[3].Close()
	ends[5].Close()
	if p.startErr == nil {
		p.pid = cmd.Process.Pid
	}
	return p, nil
}

// jobProc is the job's main process and the init's ends of its stdio.
type jobProc struct {
	pid                      int
	startErr                 error // the program could not be started
	stdinW, stdoutR, stderrR *os.File
}

func (p *jobProc) close() {
	p.stdinW.Close()
	p.stdoutR.Close()
	p.stderrR.Close()
}
