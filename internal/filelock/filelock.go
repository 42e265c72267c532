//go:build unix

// Package filelock takes exclusive flock(2) locks that a context can give
// up on: flock itself cannot wait on a context, so a wait polls a
// non-blocking attempt.
package filelock

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// Lock locks f exclusively, retrying every poll until ctx ends; onWait,
// when set, is called once if the lock is held elsewhere. unlock releases
// the lock and closes f. On error f is closed.
func Lock(ctx context.Context, f *os.File, poll time.Duration, onWait func()) (unlock func(), err error) {
	var tick *time.Ticker
	for {
		err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = flock(f, syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if tick == nil {
			if onWait != nil {
				onWait()
			}
			tick = time.NewTicker(poll)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func flock(f *os.File, how int) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := conn.Control(func(fd uintptr) { ferr = syscall.Flock(int(fd), how) }); err != nil {
		return err
	}
	return ferr
}
