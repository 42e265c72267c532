package e2e

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"testing"

	"github.com/brig-dev/brig/internal/egress"
	"github.com/brig-dev/brig/schema"
)

// networkProbe dials every target in args.json, all at once, and reports
// which it reached and which network interfaces it had.
const networkProbe = `
import json, socket, threading
reached, errors = [], {}
def dial(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        reached.append("%s:%d" % (host, port))
    except OSError as e:
        errors["%s:%d" % (host, port)] = str(e)
    finally:
        s.close()
threads = [threading.Thread(target=dial, args=(h, p)) for h, p in json.load(open("/work/args.json"))]
for t in threads: t.start()
for t in threads: t.join()
lines = open("/proc/net/dev").read().splitlines()[2:]
interfaces = sorted(l.split(":")[0].strip() for l in lines if l.strip())
json.dump({"reached": reached, "errors": errors, "interfaces": interfaces}, open("/work/out/result.json", "w"))
`

// TestNetworkJobCannotReachHost gives a job a network (network: true) and
// has it dial a port this test listens on, on every address of the host,
// and NATS, on loopback and every address of the host: docs/design.md §5 says such
// a job still cannot reach NATS, the worker or the host.
func TestNetworkJobCannotReachHost(t *testing.T) {
	t.Parallel()
	// The worker prepares the same network on its first such job; doing it
	// here first puts its bridge's address among the host's addresses that
	// the job probes.
	ctx, cancel := context.WithTimeout(context.Background(), pollBudget)
	defer cancel()
	if _, err := egress.Ensure(ctx, docker, logger); err != nil {
		t.Fatalf("egress network: %v", err)
	}

	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	accepted := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	targets := natsTargets(t)
	for _, nt := range natsTargets(t) {
		if nt[0] != "127.0.0.1" {
			targets = append(targets, [2]any{nt[0], port})
		}
	}
	if len(targets) < 3 {
		t.Fatalf("the host has no non-loopback IPv4 address to probe: %v", targets)
	}
	args, _ := json.Marshal(targets)
	job := pythonJob("net-host", networkProbe)
	job.Args = args
	job.Network = schema.Ptr(true)
	ev, err := runJob(t, job)
	if err != nil {
		t.Fatalf("probe: %v (event %s)", err, brief(ev))
	}
	var got struct {
		Reached    []string          `json:"reached"`
		Errors     map[string]string `json:"errors"`
		Interfaces []string          `json:"interfaces"`
	}
	if err := json.Unmarshal(ev.Output, &got); err != nil {
		t.Fatalf("probe output %q: %v (stderr %q)", ev.Output, err, ev.Stderr)
	}
	t.Logf("probe: %s", ev.Output)
	if !slices.Contains(got.Interfaces, "eth0") {
		t.Errorf("a job with network: true had interfaces %v, want an eth0 besides lo", got.Interfaces)
	}
	if len(got.Reached) > 0 {
		t.Errorf("a job with network: true reached the host at %v", got.Reached)
	}
	if len(got.Errors) != len(targets) {
		t.Errorf("probe reported %d failures for %d targets %v", len(got.Errors), len(targets), targets)
	}
	select {
	case from := <-accepted:
		t.Errorf("the host accepted a connection from the job (%s)", from)
	default:
	}
}
