package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/egress"
	"github.com/brig-dev/brig/internal/egress/allow"
	"github.com/brig-dev/brig/internal/egress/wire"
	"github.com/brig-dev/brig/schema"
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

// parseEgress is spec's egress list, parsed once per job (nil when it has
// none). The dispatcher checked it, admin entries included (an IP or CIDR
// entry in a spec was allowed there); one that does not parse here is the
// job's, refused by Run before any sandbox is made.
func parseEgress(spec schema.RunSpec) (*allow.List, error) {
	if len(spec.Egress) == 0 {
		return nil, nil
	}
	return allow.Parse(spec.Egress, true)
}

// openEgress opens the egress socket of a sandbox whose spec has an egress
// list: in its own directory of RuntimeDir, mounted at wire.SocketPath.
// It returns a nil listener for any other spec.
func (r *Runner) openEgress(ctx context.Context, spec schema.RunSpec) (EgressListener, string, error) {
	if len(spec.Egress) == 0 {
		return nil, "", nil
	}
	if r.cfg.ListenEgress == nil {
		return nil, "", errors.New("this worker has no egress proxy for jobs with an egress list")
	}
	path := filepath.Join(r.egressDir, randomSuffix()+randomSuffix()+".sock")
	ln, err := r.cfg.ListenEgress(ctx, path)
	if err != nil {
		return nil, "", fmt.Errorf("egress socket: %w", err)
	}
	return ln, path, nil
}

// closeEgress closes the sandbox's egress socket, if it has one: every
// connection of its job ends.
func (sb *Sandbox) closeEgress() {
	if sb.egress != nil {
		sb.egress.Close()
	}
}

// prepareEgressFiles makes the directory of egress sockets and the
// resolv.conf every sandbox with an egress list mounts: brig's DNS, on the
// sandbox's own loopback (wire.ResolvConf).
func (r *Runner) prepareEgressFiles() error {
	r.egressDir = filepath.Join(r.cfg.RuntimeDir, "eg")
	if err := os.MkdirAll(r.egressDir, 0o711); err != nil {
		return fmt.Errorf("egress socket dir: %w", err)
	}
	r.resolvConf = filepath.Join(r.cfg.RuntimeDir, "resolv.conf")
	if err := os.WriteFile(r.resolvConf, []byte(wire.ResolvConf), 0o644); err != nil {
		return fmt.Errorf("egress resolv.conf: %w", err)
	}
	return os.Chmod(r.resolvConf, 0o644) // whatever the umask
}
