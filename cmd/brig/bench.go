package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/bench"
)

func cmdBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig bench", stdout, stderr)
	conn := addConnFlags(fs, devAdminCreds)
	n := fs.Int("n", 20, "samples per container latency figure (the queue figures take more)")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return parseExit(err)
	}
	if *n < 1 {
		fmt.Fprintln(stderr, "brig bench: --n must be at least 1")
		return 2
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
	figs, err := bench.Run(ctx, bench.Config{Conn: nc, Docker: docker, N: *n, Logger: newLogger(stderr, "warn"),
		Progress: func(s string) { fmt.Fprintf(stderr, "brig bench: %s…\n", s) }})
	// The figures measured before an error are still worth seeing.
	if *asJSON {
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

// printFigures prints the figures as a table; a brig figure follows its
// floor, to which its ratio is, and names the floor only when it is not the
// row above.
func printFigures(w io.Writer, figs []bench.Figure) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tp50 ms\tp95 ms\tp99 ms\tjobs/s\tratio\tnote")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, cell(f.P50, "%.1f"), cell(f.P95, "%.1f"), cell(f.P99, "%.1f"),
			cell(f.Rate, "%.1f"), cell(f.Ratio, "%.2f×"), note)
	}
	_ = tw.Flush()
}
