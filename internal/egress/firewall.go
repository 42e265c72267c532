package egress

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/brig-dev/brig/internal/egress/allow"
)

// comment tags every rule brig adds, so that an operator can list them
// (iptables -S | grep brig-egress) and tell them from the host's own.
const comment = "brig-egress"

// blockedV4 are the IPv4 destinations a container on the egress network
// may not reach through the host: every range that allow.Public refuses
// (private, shared, loopback, link-local, multicast, documentation,
// reserved...), so that the firewall and the egress proxy keep one list.
func blockedV4() []string {
	var out []string
	for _, p := range allow.NonPublicV4() {
		out = append(out, p.String())
	}
	return out
}

// rule is one firewall rule in the filter table.
type rule struct {
	cmd   string   // iptables or ip6tables
	chain string   // INPUT, DOCKER-USER or FORWARD
	spec  []string // matches and target, in the order `iptables -S` prints them
}

// String is the rule as `iptables -S` lists it, prefixed by its command.
func (r rule) String() string {
	return r.cmd + " -A " + r.chain + " " + strings.Join(r.spec, " ")
}

// rules lists what the egress network needs, in the order they should
// stand at the top of their chains. All drop: the host never opens a
// connection to a sandbox, so no ESTABLISHED exception is needed.
func rules(ipv6 bool) []rule {
	tail := []string{"-i", Bridge, "-m", "comment", "--comment", comment, "-j", "DROP"}
	rs := []rule{{cmd: "iptables", chain: "INPUT", spec: tail}}
	for _, cidr := range blockedV4() {
		rs = append(rs, rule{cmd: "iptables", chain: "DOCKER-USER", spec: append([]string{"-d", cidr}, tail...)})
	}
	if ipv6 {
		// The network has no IPv6, but the kernel still gives the bridge and
		// the containers link-local addresses: nothing of it may pass.
		// Docker manages no ip6tables chains by default, so FORWARD it is.
		rs = append(rs,
			rule{cmd: "ip6tables", chain: "INPUT", spec: tail},
			rule{cmd: "ip6tables", chain: "FORWARD", spec: tail},
		)
	}
	return rs
}

// runner runs one firewall command and returns its combined output. An
// error that has an ExitCode method (as *exec.ExitError has) reports how
// the command exited.
type runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// hostRunner runs the commands on this host.
type hostRunner struct{}

func (hostRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// firewall keeps the egress rules in the host's filter table.
type firewall struct {
	run  runner
	ipv6 bool
}

// ensure inserts the rules that are missing at the top of their chains and
// returns them. Rules already present stay where they are.
func (f firewall) ensure(ctx context.Context) ([]rule, error) {
	missing, err := f.missing(ctx)
	if err != nil {
		return nil, err
	}
	// Inserting at position 1 in reverse leaves them in listed order.
	for _, r := range slices.Backward(missing) {
		if err := f.exec(ctx, r, "-I", "1"); err != nil {
			return nil, fmt.Errorf("egress: add firewall rule %q (%s is Docker's chain: does the daemon manage iptables?): %w", r, r.chain, err)
		}
	}
	return missing, nil
}

// check reports every rule that is not in place.
func (f firewall) check(ctx context.Context) error {
	missing, err := f.missing(ctx)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, len(missing))
	for i, r := range missing {
		names[i] = r.String()
	}
	return fmt.Errorf("egress: %d firewall rules missing: %s", len(missing), strings.Join(names, "; "))
}

func (f firewall) missing(ctx context.Context) ([]rule, error) {
	var out []rule
	for _, r := range rules(f.ipv6) {
		err := f.exec(ctx, r, "-C")
		switch {
		case err == nil:
		case exitCode(err) == 1: // the rule, or its chain, does not exist
			out = append(out, r)
		default:
			return nil, fmt.Errorf("egress: check firewall rule %q: %w", r, err)
		}
	}
	return out, nil
}

// exec runs op (-C, -I 1) on the rule, waiting for the xtables lock that
// Docker also takes.
func (f firewall) exec(ctx context.Context, r rule, op ...string) error {
	args := append([]string{"-w"}, op[0], r.chain)
	args = append(append(args, op[1:]...), r.spec...)
	out, err := f.run.Run(ctx, r.cmd, args...)
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("%s %s: %w: %s", r.cmd, strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("%s %s: %w", r.cmd, strings.Join(args, " "), err)
	}
	return nil
}

// exitCode is the exit code of a failed command, or -1 when it did not run.
func exitCode(err error) int {
	var e interface{ ExitCode() int }
	if errors.As(err, &e) {
		return e.ExitCode()
	}
	return -1
}
