package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/egress"
)

// egressBudget bounds preparing the egress network: a few Engine API calls
// and a few dozen iptables runs.
const egressBudget = time.Minute

// egressState is the network of jobs with network: true, prepared on first
// use. A failed preparation leaves it unprepared, so the next job tries
// again.
type egressState struct {
	mu   sync.Mutex
	name string
}

// egressNetwork returns the network for jobs with network: true, preparing
// it (a dedicated Docker network and host firewall rules that keep its
// containers off the host, NATS and private ranges) the first time. An
// error is a platform failure: the job goes back with a backoff.
func (r *Runner) egressNetwork(ctx context.Context) (string, error) {
	r.egress.mu.Lock()
	defer r.egress.mu.Unlock()
	if r.egress.name != "" {
		return r.egress.name, nil
	}
	ctx, cancel := context.WithTimeout(ctx, egressBudget)
	defer cancel()
	name, err := egress.Ensure(ctx, r.cfg.Engine, r.log)
	if err != nil {
		return "", fmt.Errorf("prepare the network of jobs with network: true: %w", err)
	}
	r.egress.name = name
	r.log.Info("egress network ready", "network", name)
	return name, nil
}

// forgetEgress makes the next job with a network prepare the network
// again, as when it was removed while the worker ran.
func (r *Runner) forgetEgress() {
	r.egress.mu.Lock()
	defer r.egress.mu.Unlock()
	r.egress.name = ""
}
