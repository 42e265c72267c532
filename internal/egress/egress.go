package egress

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
)

// Ensure prepares the egress network and its firewall rules, both
// idempotently and under a host-wide lock, and returns the network's name
// for the containers' NetworkMode. The rules go in first, so that no
// container ever runs on the network without them. log may be nil.
func Ensure(ctx context.Context, docker NetworkAPI, log *slog.Logger) (networkName string, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fw, err := hostFirewall()
	if err != nil {
		return "", err
	}
	unlock, err := lockHost(ctx, log)
	if err != nil {
		return "", err
	}
	defer unlock()
	added, err := fw.ensure(ctx)
	if err != nil {
		return "", err
	}
	for _, r := range added {
		log.Info("added egress firewall rule", "rule", r.String())
	}
	if err := ensureNetwork(ctx, docker, log); err != nil {
		return "", err
	}
	// The rules live in this process's network namespace; they guard the
	// sandboxes only if the daemon's bridge lives here too.
	if _, err := net.InterfaceByName(Bridge); err != nil {
		return "", fmt.Errorf("egress: bridge %s of network %s is not visible here (%w): the firewall rules only apply in the Docker host's network namespace; run the worker there", Bridge, Network, err)
	}
	return Network, nil
}

// Check reports whether every firewall rule of the egress network is in
// place, naming those that are not.
func Check(ctx context.Context) error {
	fw, err := hostFirewall()
	if err != nil {
		return err
	}
	return fw.check(ctx)
}

// hostFirewall is the firewall of this host, with IPv6 rules when the
// kernel speaks IPv6.
func hostFirewall() (firewall, error) {
	fw := firewall{run: hostRunner{}}
	if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
		fw.ipv6 = true
	}
	need := []string{"iptables"}
	if fw.ipv6 {
		need = append(need, "ip6tables")
	}
	for _, cmd := range need {
		if _, err := exec.LookPath(cmd); err != nil {
			return firewall{}, fmt.Errorf("egress: %s is needed to keep jobs with a network off the host (Debian: apt-get install iptables): %w", cmd, err)
		}
	}
	return fw, nil
}
