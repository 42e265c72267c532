//go:build linux

package sandboxinit

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// warmupBudget bounds a warm-up: past it, its processes are killed.
const warmupBudget = 10 * time.Second

// warmupEnv is all a warm-up gets: it runs before any job, with no job data.
var warmupEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}

// warmUp runs a prewarmed container's warm-up command (the function's, e.g.
// python3 -c pass), so that the job's own command later finds the image's
// files read: starting a program cold in a fresh container costs several
// times more than in a warm one. It is skipped when the request is already
// waiting on stdin, since then it would only delay the job. Afterwards
// every process it started is killed and the sandbox is wiped as between
// two jobs in reuse mode, sockets left alone (wipeButSockets); a failed wipe is
// an error, and the init then refuses to run a job.
func warmUp(argv []string, base *baseline) error {
	if stdinReady() {
		return nil
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = "/tmp", warmupEnv
	if err := cmd.Start(); err == nil { // a missing program only wastes nothing
		stop := time.AfterFunc(warmupBudget, func() { _ = syscall.Kill(-1, syscall.SIGKILL) })
		reap(cmd.Process.Pid)
		stop.Stop()
	}
	killAll()
	if err := wipeButSockets(base); err != nil {
		return fmt.Errorf("wipe after warm-up: %w", err)
	}
	return nil
}

// stdinReady reports whether the request has (begun to) come in.
func stdinReady() bool {
	fds := []unix.PollFd{{Fd: 0, Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}
