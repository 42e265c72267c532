package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/bench"
)

func cmdBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig bench", stdout, stderr)
	conn := addConnFlags(fs, devAdminCreds)
	cfg, asJSON, err := parseBench(fs, args)
	if err != nil {
		if !errors.Is(err, errParsed) && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "brig bench: %v\n", err)
		}
		return parseExit(err)
	}
	nc, ctx, err := conn.dial(ctx, "brig-bench", nats.Timeout(2*time.Second))
	if err != nil {
		fmt.Fprintf(stderr, "brig bench: %v\n", err)
		return exitBrig
	}
	defer nc.Close()
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(stderr, "brig bench: docker: %v\n", err)
		return exitBrig
	}
	defer docker.Close()
	cfg.Conn, cfg.Docker, cfg.Logger = nc, docker, newLogger(stderr, "warn")
	cfg.Progress = func(s string) { fmt.Fprintf(stderr, "brig bench: %s…\n", s) }
	figs, err := bench.Run(ctx, cfg)
	// The figures measured before an error are still worth seeing.
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(figs)
	} else {
		printFigures(stdout, figs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "brig bench: %v\n", refusal(ctx, err))
		return exitBrig
	}
	return 0
}

// errParsed wraps a parse error that the flag set has already printed.
var errParsed = errors.New("flags")

// parseBench reads bench's own flags into a Config (without its
// connections) and whether to print JSON. An error that wraps errParsed
// was printed already; flag.ErrHelp asks for exit 0.
func parseBench(fs *flag.FlagSet, args []string) (bench.Config, bool, error) {
	n := fs.Int("n", 0, "samples per container latency figure (default 20, 5 with --quick; the queue figures take more)")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	only := fs.String("only", "", "run only these figure `GROUPS`, comma-separated: "+strings.Join(bench.Groups(), ","))
	quick := fs.Bool("quick", false, "a run of about a minute: fewer samples, throughput at concurrency 8 only, one burst")
	if _, err := parseInterleaved(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return bench.Config{}, false, err
		}
		return bench.Config{}, false, fmt.Errorf("%w: %w", errParsed, err)
	}
	nSet := false
	fs.Visit(func(f *flag.Flag) { nSet = nSet || f.Name == "n" })
	if (nSet && *n < 1) || *n > maxBenchN {
		return bench.Config{}, false, fmt.Errorf("--n must be between 1 and %d", maxBenchN)
	}
	groups, err := bench.ParseOnly(*only)
	if err != nil {
		return bench.Config{}, false, err
	}
	return bench.Config{N: *n, Only: groups, Quick: *quick}, *asJSON, nil
}

// maxBenchN bounds --n: the echo throughput takes 100×N jobs.
const maxBenchN = 10000

// printFigures prints the figures as a table; a brig figure follows its
// floor, to which its ratio is, and names the floor only when it is not the
// row above.
func printFigures(w io.Writer, figs []bench.Figure) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tp50 ms\tp95 ms\tp99 ms\tjobs/s\tmsgs/job\tratio\tnote")
	cell := func(v float64, format string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	for i, f := range figs {
		note := f.Note
		if f.Floor != "" && (i == 0 || figs[i-1].Name != f.Floor) {
			note = fmt.Sprintf("to %s; %s", f.Floor, note)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, cell(f.P50, "%.1f"), cell(f.P95, "%.1f"), cell(f.P99, "%.1f"),
			cell(f.Rate, "%.1f"), cell(f.PerJob, "%.1f"), cell(f.Ratio, "%.2f×"), note)
	}
	_ = tw.Flush()
}
