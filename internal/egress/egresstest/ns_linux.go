//go:build linux

package egresstest

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNamespace runs f on a thread that has entered the named network
// namespace (made by `ip netns add`). Sockets f opens stay in that
// namespace, whatever thread later uses them. The thread then goes back to
// the namespace it came from before it is unlocked. Should that fail it
// stays locked, and Go ends it with its goroutine rather than let it run
// other goroutines in the wrong namespace; ending a thread also SIGKILLs
// every child forked from it with Pdeathsig, so the usual path keeps it.
func inNamespace(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread() // not moved yet
			errc <- fmt.Errorf("open this thread's namespace: %w", err)
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open namespace %s: %w", name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", name, err) // thread left locked: it may be half moved
			return
		}
		ferr := f()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
