//go:build linux

package sandboxinit

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procState is what a job can set on its init from outside, since they
// share a uid: each thread's nice value, scheduling policy, I/O priority
// and CPU affinity (setpriority, sched_setscheduler, ioprio_set and
// sched_setaffinity all allow it, thread by thread) and the process's
// resource limits (prlimit). Every later job inherits them from the thread
// that starts it; a job can only lower them, and the init cannot raise them
// back without capabilities, so a change is never reset: the sandbox is
// discarded. A value that cannot be read is -1 (on both sides of the
// comparison).
type procState struct {
	nice     int
	policy   int
	ioprio   int
	affinity unix.CPUSet
	rlimits  [rlimitCount]unix.Rlimit
}

// rlimitCount is RLIM_NLIMITS.
const rlimitCount = 16

// readProcState reads thread tid of this process, and the process's limits.
func readProcState(tid int) procState {
	var p procState
	p.nice = -1
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil {
		p.nice = 20 - prio // the raw syscall answers 20 - nice
	}
	p.policy = syscallInt(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0)
	p.ioprio = syscallInt(unix.SYS_IOPRIO_GET, 1 /* IOPRIO_WHO_PROCESS */, uintptr(tid))
	_ = unix.SchedGetaffinity(tid, &p.affinity)
	for i := range p.rlimits {
		if unix.Getrlimit(i, &p.rlimits[i]) != nil {
			p.rlimits[i] = unix.Rlimit{Cur: ^uint64(0) - 1, Max: ^uint64(0) - 1}
		}
	}
	return p
}

func syscallInt(trap, a1, a2 uintptr) int {
	r, _, errno := unix.RawSyscall(trap, a1, a2, 0)
	if errno != 0 {
		return -1
	}
	return int(r)
}

// differences lists how got differs from the baseline p.
func (p *procState) differences(got *procState) []string {
	var d []string
	if got.nice != p.nice {
		d = append(d, fmt.Sprintf("nice %d, was %d", got.nice, p.nice))
	}
	if got.policy != p.policy {
		d = append(d, fmt.Sprintf("scheduling policy %d, was %d", got.policy, p.policy))
	}
	if got.ioprio != p.ioprio {
		d = append(d, fmt.Sprintf("I/O priority %#x, was %#x", got.ioprio, p.ioprio))
	}
	if got.affinity != p.affinity {
		d = append(d, fmt.Sprintf("CPU affinity of %d CPUs, was %d", got.affinity.Count(), p.affinity.Count()))
	}
	for i := range p.rlimits {
		if got.rlimits[i] != p.rlimits[i] {
			d = append(d, fmt.Sprintf("resource limit %d %d/%d, was %d/%d", i,
				got.rlimits[i].Cur, got.rlimits[i].Max, p.rlimits[i].Cur, p.rlimits[i].Max))
		}
	}
	return d
}

// checkThreads compares every thread of this process with the baseline p:
// a job may have changed any of them, and the Go runtime starts new ones
// from old ones.
func (p *procState) checkThreads(taskDir string) error {
	entries, err := os.ReadDir(taskDir)
	if err != nil {
		return fmt.Errorf("wipe: list the init's threads: %w", err)
	}
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		got := readProcState(tid)
		if d := p.differences(&got); len(d) > 0 {
			return fmt.Errorf("wipe: the job changed the init's %s (thread %d), which it cannot change back", strings.Join(d, ", "), tid)
		}
	}
	return nil
}
