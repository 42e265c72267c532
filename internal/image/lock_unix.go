//go:build unix

package image

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/brig-dev/brig/internal/filelock"
)

// lockPollInterval is how often a waiting build retries the lock. flock
// cannot wait on a context, so waiting polls a non-blocking attempt.
const lockPollInterval = 250 * time.Millisecond

// lockRef takes an exclusive lock for building ref, shared by every
// goroutine and process of the same user (flock locks belong to the open
// file, so two opens in one process exclude each other too). It returns
// the function that releases it. When no lock file can be created (no
// writable cache directory), the build goes ahead unlocked, with a warning.
func lockRef(ctx context.Context, ref string, out io.Writer, log *slog.Logger) (func(), error) {
	f, err := openLockFile(ref)
	if err != nil {
		log.Warn("building without a lock; concurrent builds of this image may both run", "ref", ref, "err", err)
		return func() {}, nil
	}
	unlock, err := filelock.Lock(ctx, f, lockPollInterval, func() {
		fmt.Fprintf(out, "waiting for another build of %s to finish\n", ref)
	})
	if err != nil {
		return nil, fmt.Errorf("lock build of %s: %w", ref, err)
	}
	return unlock, nil
}

// openLockFile opens (creating it if needed) the lock file for ref in the
// user's cache directory, e.g. ~/.cache/brig/image-brig_python_latest.lock.
func openLockFile(ref string) (*os.File, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "brig")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	name := "image-" + strings.Map(lockNameRune, ref) + ".lock"
	return os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
}

func lockNameRune(r rune) rune {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
		return r
	}
	return '_'
}
