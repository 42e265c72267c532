package e2e

import (
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestStartLockedSurvivesThreadExits checks startLocked's point: a child
// started with Pdeathsig outlives the threads Go ends because a goroutine
// exited locked to them, as the network namespace helpers' may. (A CI run
// lost a restarted `brig worker` this way: SIGKILLed, silently, mid-test.)
// A child started plainly is the control: it is killed as often as not.
func TestStartLockedSurvivesThreadExits(t *testing.T) {
	start := func(locked bool) (exitedEarly bool) {
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		exited := make(chan struct{})
		defer close(exited)
		var err error
		if locked {
			err = startLocked(cmd, exited)
		} else {
			err = cmd.Start()
		}
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		for range 200 { // each ends the thread it ran on
			done := make(chan struct{})
			go func() { runtime.LockOSThread(); close(done) }()
			<-done
		}
		time.Sleep(200 * time.Millisecond)
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pid != 0 {
			cmd.Process.Release() // reaped here
			t.Logf("locked=%v: child ended: %v", locked, ws)
		}
		return pid != 0
	}
	if start(true) {
		t.Errorf("a child started by startLocked was killed when other goroutines ended their locked threads")
	}
	if !start(false) {
		t.Logf("control: a plainly started child survived this time (the hazard is the scheduler's luck)")
	}
}
