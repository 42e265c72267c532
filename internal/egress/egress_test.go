package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
)

// fakeRunner is an iptables that keeps its chains in memory and records
// every command it is given.
type fakeRunner struct {
	chains map[string][]string // "iptables INPUT" → rule specs, top first
	calls  []string
	fail   error // returned by every call when set
}

type exitErr int

func (e exitErr) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitErr) ExitCode() int { return int(e) }

func newFakeRunner() *fakeRunner { return &fakeRunner{chains: map[string][]string{}} }

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if f.fail != nil {
		return []byte("iptables: Permission denied (you must be root)."), f.fail
	}
	if len(args) < 3 || args[0] != "-w" {
		return nil, exitErr(2)
	}
	key := name + " " + args[2]
	switch args[1] {
	case "-C":
		if slices.Contains(f.chains[key], strings.Join(args[3:], " ")) {
			return nil, nil
		}
		return []byte("iptables: Bad rule (does a matching rule exist in that chain?)."), exitErr(1)
	case "-I":
		if args[3] != "1" {
			return nil, exitErr(2)
		}
		f.chains[key] = append([]string{strings.Join(args[4:], " ")}, f.chains[key]...)
		return nil, nil
	}
	return nil, exitErr(2)
}

func TestRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		ipv6  bool
		count map[string]int // "cmd chain" → rules
	}{
		{"IPv4 only", false, map[string]int{"iptables INPUT": 1, "iptables DOCKER-USER": len(blockedV4())}},
		{"with IPv6", true, map[string]int{"iptables INPUT": 1, "iptables DOCKER-USER": len(blockedV4()), "ip6tables INPUT": 1, "ip6tables FORWARD": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := map[string]int{}
			for _, r := range rules(tt.ipv6) {
				got[r.cmd+" "+r.chain]++
				if !strings.HasSuffix(r.String(), " -i brig-egress0 -m comment --comment brig-egress -j DROP") {
					t.Errorf("rule %q does not drop what comes in from %s", r, Bridge)
				}
			}
			if !reflect.DeepEqual(got, tt.count) {
				t.Errorf("rules per chain = %v, want %v", got, tt.count)
			}
		})
	}
}

func TestRulesExact(t *testing.T) {
	t.Parallel()
	rs := rules(false)
	if got, want := rs[0].String(), "iptables -A INPUT -i brig-egress0 -m comment --comment brig-egress -j DROP"; got != want {
		t.Errorf("first rule = %q, want %q", got, want)
	}
	var dests []string
	for _, r := range rs[1:] {
		dests = append(dests, r.spec[1])
		if want := "iptables -A DOCKER-USER -d " + r.spec[1] + " -i brig-egress0 -m comment --comment brig-egress -j DROP"; r.String() != want {
			t.Errorf("rule = %q, want %q", r, want)
		}
	}
	for _, must := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
		"127.0.0.0/8", "224.0.0.0/4", "0.0.0.0/8", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4"} {
		if !slices.Contains(dests, must) {
			t.Errorf("DOCKER-USER rules miss %s", must)
		}
	}
}

func TestFirewallEnsure(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	run := newFakeRunner()
	fw := firewall{run: run, ipv6: true}
	want := rules(true)

	added, err := fw.ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != len(want) {
		t.Errorf("first run added %d rules, want %d", len(added), len(want))
	}
	// Every rule once, at the top of its chain, in listed order.
	wantChains := map[string][]string{}
	for _, r := range want {
		key := r.cmd + " " + r.chain
		wantChains[key] = append(wantChains[key], strings.Join(r.spec, " "))
	}
	if !reflect.DeepEqual(run.chains, wantChains) {
		t.Errorf("chains after ensure:\n%v\nwant\n%v", run.chains, wantChains)
	}
	for _, c := range run.calls {
		if strings.Contains(c, " -I ") && !strings.Contains(c, " -I "+strings.Fields(c)[3]+" 1 ") {
			t.Errorf("insert not at the top: %s", c)
		}
	}

	run.calls = nil
	added, err = fw.ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 0 {
		t.Errorf("second run added %v", added)
	}
	if len(run.calls) != len(want) {
		t.Errorf("second run issued %d commands, want %d checks", len(run.calls), len(want))
	}
	for _, c := range run.calls {
		if !strings.HasPrefix(strings.SplitN(c, " ", 2)[1], "-w -C ") {
			t.Errorf("second run issued %q, want only -C checks", c)
		}
	}
	if err := fw.check(ctx); err != nil {
		t.Errorf("check after ensure: %v", err)
	}
}

func TestFirewallAddsOnlyMissing(t *testing.T) {
	t.Parallel()
	run := newFakeRunner()
	fw := firewall{run: run}
	if _, err := fw.ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A firewall reload flushed INPUT.
	delete(run.chains, "iptables INPUT")
	err := fw.check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "1 firewall rules missing: iptables -A INPUT -i brig-egress0") {
		t.Errorf("check after INPUT flush = %v, want it to name the INPUT rule", err)
	}
	added, err := fw.ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0].chain != "INPUT" {
		t.Errorf("ensure after INPUT flush added %v, want the INPUT rule alone", added)
	}
}

func TestFirewallErrors(t *testing.T) {
	t.Parallel()
	run := newFakeRunner()
	run.fail = exitErr(4)
	fw := firewall{run: run}
	_, err := fw.ensure(t.Context())
	if err == nil || exitCode(err) != 4 || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("ensure without permission = %v, want exit 4 with iptables' message", err)
	}
	if len(run.calls) != 1 {
		t.Errorf("ensure went on after a failed check: %v", run.calls)
	}
	if err := fw.check(t.Context()); err == nil || strings.Contains(err.Error(), "missing") {
		t.Errorf("check without permission = %v, want the failure, not missing rules", err)
	}
}

// fakeDocker is a daemon with at most the one network.
type fakeDocker struct {
	net     *network.Inspect
	created []network.CreateOptions
	// raced makes the first create fail as though another process had
	// created the network just before.
	raced bool
}

func (d *fakeDocker) NetworkInspect(_ context.Context, name string, _ network.InspectOptions) (network.Inspect, error) {
	if d.net == nil || d.net.Name != name {
		return network.Inspect{}, fmt.Errorf("network %s not found: %w", name, cerrdefs.ErrNotFound)
	}
	return *d.net, nil
}

func (d *fakeDocker) NetworkCreate(_ context.Context, name string, opts network.CreateOptions) (network.CreateResponse, error) {
	d.created = append(d.created, opts)
	info := network.Inspect{Name: name, ID: "n1", Driver: opts.Driver, Options: opts.Options, Labels: opts.Labels, Internal: opts.Internal}
	if opts.EnableIPv6 != nil {
		info.EnableIPv6 = *opts.EnableIPv6
	}
	if d.net != nil || d.raced {
		d.net = &info
		return network.CreateResponse{}, fmt.Errorf("network with name %s already exists: %w", name, cerrdefs.ErrConflict)
	}
	d.net = &info
	return network.CreateResponse{ID: info.ID}, nil
}

func brigNetwork() *network.Inspect {
	return &network.Inspect{
		Name: Network, ID: "n0", Driver: "bridge",
		Options: map[string]string{optBridgeName: Bridge, optICC: "false"},
		Labels:  map[string]string{Label: LabelValue},
	}
}

func TestEnsureNetwork(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name        string
		existing    func(*network.Inspect)
		raced       bool
		wantCreates int
		wantErr     string // substring; "" for success
	}{
		{name: "missing: created", wantCreates: 1},
		{name: "created by another process meanwhile", raced: true, wantCreates: 1},
		{name: "exists as brig made it", existing: func(*network.Inspect) {}},
		{name: "exists with ICC on", existing: func(n *network.Inspect) { delete(n.Options, optICC) },
			wantErr: `option com.docker.network.bridge.enable_icc is unset, want "false"`},
		{name: "exists with another bridge", existing: func(n *network.Inspect) { n.Options[optBridgeName] = "br-x" },
			wantErr: `com.docker.network.bridge.name is "br-x", want "brig-egress0"`},
		{name: "exists with IPv6", existing: func(n *network.Inspect) { n.EnableIPv6 = true }, wantErr: "IPv6 is true, want false"},
		{name: "exists as another driver", existing: func(n *network.Inspect) { n.Driver = "macvlan" }, wantErr: "driver is macvlan, want bridge"},
		{name: "exists without label", existing: func(n *network.Inspect) { n.Labels = nil }, wantErr: "label brig.network is unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := &fakeDocker{raced: tt.raced}
			if tt.existing != nil {
				d.net = brigNetwork()
				tt.existing(d.net)
			}
			err := ensureNetwork(t.Context(), d, log)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ensureNetwork: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ensureNetwork = %v, want an error with %q", err, tt.wantErr)
			}
			if len(d.created) != tt.wantCreates {
				t.Errorf("created %d networks, want %d", len(d.created), tt.wantCreates)
			}
			if tt.wantErr == "" {
				if err := conforms(*d.net); err != nil {
					t.Errorf("the network brig created does not conform: %v", err)
				}
				// Again: nothing more is created.
				n := len(d.created)
				if err := ensureNetwork(t.Context(), d, log); err != nil || len(d.created) != n {
					t.Errorf("second ensureNetwork: err %v, %d more creates", err, len(d.created)-n)
				}
			}
		})
	}
}

func TestEnsureNetworkInspectFailure(t *testing.T) {
	t.Parallel()
	d := failingDocker{errors.New("daemon on fire")}
	err := ensureNetwork(t.Context(), d, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "daemon on fire") {
		t.Errorf("ensureNetwork = %v, want the inspect failure", err)
	}
}

type failingDocker struct{ err error }

func (d failingDocker) NetworkInspect(context.Context, string, network.InspectOptions) (network.Inspect, error) {
	return network.Inspect{}, d.err
}

func (d failingDocker) NetworkCreate(context.Context, string, network.CreateOptions) (network.CreateResponse, error) {
	return network.CreateResponse{}, d.err
}
