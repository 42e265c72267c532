package worker

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
func (w *Worker) egressNetwork(ctx context.Context) (string, error) {
	w.egress.mu.Lock()
	defer w.egress.mu.Unlock()
	if w.egress.name != "" {
		return w.egress.name, nil
	}
	ctx, cancel := context.WithTimeout(ctx, egressBudget)
	defer cancel()
	name, err := egress.Ensure(ctx, w.cfg.Docker, w.log)
	if err != nil {
		return "", fmt.Errorf("worker: prepare the network of jobs with network: true: %w", err)
	}
	w.egress.name = name
	w.log.Info("egress network ready", "network", name)
	return name, nil
}

// forgetEgress makes the next job with a network prepare the network
// again, as when it was removed while the worker ran.
func (w *Worker) forgetEgress() {
	w.egress.mu.Lock()
	defer w.egress.mu.Unlock()
	w.egress.name = ""
}
