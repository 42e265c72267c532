package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/bench"
)

func parseBenchArgs(t *testing.T, args ...string) (bench.Config, bool, error) {
	t.Helper()
	fs := newFlagSet("brig bench", io.Discard, io.Discard)
	addConnFlags(fs, devAdminCreds)
	return parseBench(fs, args)
}

func TestBenchFlags(t *testing.T) {
	for _, v := range []string{"BRIG_N", "BRIG_ONLY", "BRIG_QUICK", "BRIG_JSON"} {
		t.Setenv(v, "") // flags from the environment stay out of this test
	}
	cfg, asJSON, err := parseBenchArgs(t)
	if err != nil || asJSON || cfg.Quick || cfg.N != 0 || cfg.Only != nil {
		t.Errorf("no flags: %+v, json %v, %v; want a full run of every group at the default N", cfg, asJSON, err)
	}
	cfg, asJSON, err = parseBenchArgs(t, "--quick", "--only", "messages,queue", "--json", "--n", "3")
	if err != nil || !asJSON || !cfg.Quick || cfg.N != 3 || !slices.Equal(cfg.Only, []string{"queue", "messages"}) {
		t.Errorf("--quick --only messages,queue --json --n 3: %+v, json %v, %v", cfg, asJSON, err)
	}
	for _, args := range [][]string{{"--n", "0"}, {"--n", "-1"}, {"--n", "10001"}, {"--only", "cold,fast"}} {
		if _, _, err := parseBenchArgs(t, args...); err == nil || errors.Is(err, errParsed) {
			t.Errorf("%q: %v; want an error of bench's own", args, err)
		}
	}
	if _, _, err := parseBenchArgs(t, "--quick=maybe"); !errors.Is(err, errParsed) {
		t.Errorf("--quick=maybe: %v; want the flag package's error", err)
	}
	if _, _, err := parseBenchArgs(t, "--help"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

// TestBenchUsageErrors: a bad --only exits 2 before connecting, and
// names every valid group.
func TestBenchUsageErrors(t *testing.T) {
	t.Setenv("BRIG_ONLY", "")
	var stderr bytes.Buffer
	code := cmdBench(t.Context(), []string{"--server", "nats://127.0.0.1:1", "--only", "cold,nope"}, nil, io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), `unknown figure group "nope"; valid: cold,warm,burst,queue,throughput,messages`) {
		t.Errorf("exit %d, stderr %q; want %d and the valid groups", code, stderr.String(), exitUsage)
	}
}

func TestPrintFigures(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	printFigures(&out, []bench.Figure{
		{Name: "raw", Unit: "ms", P50: 10, P95: 11, P99: 12, N: 5},
		{Name: "brig", Unit: "ms", P50: 20, P95: 21, P99: 22, N: 5, Floor: "raw", Ratio: 2, Note: "target ≤ 2×: met"},
		{Name: "bus messages per job (echo, SDK)", Unit: "msgs/job", PerJob: 31.3, RoundTrips: 12, N: 5, Note: "12.0 round trips"},
	})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "msgs/job") {
		t.Fatalf("table:\n%s", out.String())
	}
	if f := strings.Fields(lines[2]); !slices.Contains(f, "2.00×") || !slices.Contains(f, "20.0") {
		t.Errorf("brig row: %q", lines[2])
	}
	if f := strings.Fields(lines[3]); !slices.Contains(f, "31.3") {
		t.Errorf("messages row lacks its count: %q", lines[3])
	}
}
