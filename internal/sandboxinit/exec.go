//go:build linux

package sandboxinit

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// ExecCommand is the subcommand the init runs the job through when the job
// needs limits of its own: `brig sandbox-exec NPROC CMD ARGS...` sets
// RLIMIT_NPROC (soft and hard, so the job cannot raise it) and execs CMD.
const ExecCommand = "sandbox-exec"

// Exec implements ExecCommand; it returns only on failure.
func Exec(args []string, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, "brig sandbox-exec: usage: NPROC CMD [ARGS...]")
		return 127
	}
	n, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || n == 0 {
		fmt.Fprintf(stderr, "brig sandbox-exec: bad NPROC %q\n", args[0])
		return 127
	}
	if err := syscall.Setrlimit(6 /* RLIMIT_NPROC */, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Fprintf(stderr, "brig sandbox-exec: setrlimit: %v\n", err)
		return 127
	}
	path, err := exec.LookPath(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "brig: cannot run %q: %v\n", args[1], err)
		return 127
	}
	err = syscall.Exec(path, args[1:], os.Environ())
	fmt.Fprintf(stderr, "brig: cannot run %q: %v\n", args[1], err)
	return 127
}
