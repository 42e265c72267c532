package egress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/brig-dev/brig/internal/testenv/needs"
)

// These tests change the host's firewall and leave the egress network and
// its rules in place: they are shared, idempotent infrastructure that any
// brig worker on this host would set up the same way.

const (
	probeImage  = "brig/python:latest"
	probeBudget = 2 * time.Minute
)

// probe dials every target it is given and prints the ones it reached.
const probe = `
import json, socket, sys
reached, errors = [], {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, int(port)))
        reached.append(target)
    except OSError as e:
        errors[target] = str(e)
    finally:
        s.close()
print(json.dumps({"reached": reached, "errors": errors}))
`

type probeResult struct {
	Reached []string          `json:"reached"`
	Errors  map[string]string `json:"errors"`
}

func TestEnsureIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("changes the host's firewall and needs Docker")
	}
	needs.Docker(t)
	if os.Geteuid() != 0 {
		t.Fatal("the egress firewall needs root: run these tests as root, or with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), probeBudget)
	defer cancel()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	log := slog.New(slog.NewTextHandler(tWriter{t}, nil))

	first, err := Ensure(ctx, docker, log)
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	before, err := docker.NetworkInspect(ctx, first, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Ensure(ctx, docker, log)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	after, err := docker.NetworkInspect(ctx, second, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first != Network || second != Network || before.ID != after.ID {
		t.Errorf("Ensure twice gave %s (%.12s) then %s (%.12s), want %s both times", first, before.ID, second, after.ID, Network)
	}
	if err := Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
	fw, err := hostFirewall()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules(fw.ipv6) {
		if n := countRule(ctx, t, r); n != 1 {
			t.Errorf("rule %q is in place %d times, want once", r, n)
		}
	}

	t.Run("sandbox cannot reach the host", func(t *testing.T) {
		probeHost(ctx, t, docker, after)
	})
}

// probeHost runs a container on the egress network that dials the host on
// every address it has there; a listener on all the host's addresses must
// see nothing.
func probeHost(ctx context.Context, t *testing.T, docker *client.Client, egressNet network.Inspect) {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
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
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)

	if len(egressNet.IPAM.Config) == 0 || egressNet.IPAM.Config[0].Gateway == "" {
		t.Fatalf("network %s has no IPv4 gateway: %+v", Network, egressNet.IPAM)
	}
	gateway := egressNet.IPAM.Config[0].Gateway
	targets := []string{"172.17.0.1:" + port, gateway + ":" + port, "127.0.0.1:" + port}

	// Control: on Docker's default bridge the same probe reaches the host,
	// so that a failure on the egress network is the firewall's doing.
	control := runProbe(ctx, t, docker, "bridge", targets[:1])
	if len(control.Reached) != 1 {
		t.Fatalf("control probe on the default bridge did not reach the host: %+v", control)
	}
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("control probe reached the host but the listener saw nothing")
	}

	got := runProbe(ctx, t, docker, Network, targets)
	t.Logf("probe on %s: %+v", Network, got)
	if len(got.Reached) > 0 {
		t.Errorf("a container on %s reached the host at %v", Network, got.Reached)
	}
	if len(got.Errors) != len(targets) {
		t.Errorf("probe reported %d failures for %d targets: %+v", len(got.Errors), len(targets), got)
	}
	select {
	case from := <-accepted:
		t.Errorf("the host accepted a connection from %s", from)
	default:
	}
}

// runProbe runs the probe on network netName and returns what it reached.
func runProbe(ctx context.Context, t *testing.T, docker *client.Client, netName string, targets []string) probeResult {
	t.Helper()
	resp, err := docker.ContainerCreate(ctx, &container.Config{
		Image:  probeImage,
		Cmd:    append([]string{"python3", "-c", probe}, targets...),
		User:   "65534:65534",
		Labels: map[string]string{"brig.test": "egress"},
	}, &container.HostConfig{
		NetworkMode: container.NetworkMode(netName),
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
	}, nil, nil, "brig-egress-probe-"+fmt.Sprint(time.Now().UnixNano()))
	if err != nil {
		t.Fatalf("create probe on %s: %v", netName, err)
	}
	t.Cleanup(func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := docker.ContainerRemove(rctx, resp.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("remove probe %.12s: %v", resp.ID, err)
		}
	})
	waitC, errC := docker.ContainerWait(ctx, resp.ID, container.WaitConditionNextExit)
	if err := docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start probe on %s: %v", netName, err)
	}
	var code int64
	select {
	case res := <-waitC:
		code = res.StatusCode
	case err := <-errC:
		t.Fatalf("wait for probe on %s: %v", netName, err)
	}
	logs, err := docker.ContainerLogs(ctx, resp.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("probe logs: %v", err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatalf("probe logs: %v", err)
	}
	var res probeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || code != 0 {
		t.Fatalf("probe on %s exited %d: %q (stderr %q)", netName, code, stdout.String(), stderr.String())
	}
	return res
}

// countRule counts how often a rule stands in its chain.
func countRule(ctx context.Context, t *testing.T, r rule) int {
	t.Helper()
	out, err := hostRunner{}.Run(ctx, r.cmd, "-w", "-S", r.chain)
	if err != nil {
		t.Fatalf("%s -S %s: %v: %s", r.cmd, r.chain, err, out)
	}
	want := "-A " + r.chain + " " + strings.Join(r.spec, " ")
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == want {
			n++
		}
	}
	return n
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
