//go:build unix

package image

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownProcessGroup starts mmdebstrap in a process group of its own and makes
// cancellation send SIGTERM to that whole group. mmdebstrap relies on
// this: on some failures it sends SIGHUP to its own process group, which
// must not be ours; and on SIGTERM it unmounts /proc, /sys and /dev from
// its chroot and removes its temporary directory before exiting, which a
// SIGKILL would skip.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

// killProcessGroup kills what is left of mmdebstrap's process group after
// a failed or cancelled build, e.g. children of a leader that ignored
// SIGTERM past the grace period and was killed.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
