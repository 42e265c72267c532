//go:build unix

package egress

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/brig-dev/brig/internal/filelock"
)

// lockPath serialises Ensure across the processes of a host (two workers
// of one docker-compose), so that two of them never both find a rule
// missing and both insert it. /run, not /tmp: only root writes there, and
// only root can set up the firewall anyway.
const lockPath = "/run/brig-egress.lock"

// lockPollInterval is how often a waiting Ensure retries the lock. flock
// cannot wait on a context, so waiting polls a non-blocking attempt.
const lockPollInterval = 100 * time.Millisecond

// lockHost takes the host-wide lock and returns its release. When the lock
// file cannot be opened, Ensure goes ahead unlocked, with a warning: the
// worst a race does is a duplicate DROP rule.
func lockHost(ctx context.Context, log *slog.Logger) (func(), error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		log.Warn("preparing the egress network without a lock", "err", err)
		return func() {}, nil
	}
	unlock, err := filelock.Lock(ctx, f, lockPollInterval, nil)
	if err != nil {
		return nil, fmt.Errorf("egress: lock %s: %w", lockPath, err)
	}
	return unlock, nil
}
