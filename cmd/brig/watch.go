package main

import (
	"context"
	"fmt"
	"io"

	"github.com/brig-dev/brig/sdk"
)

func cmdWatch(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig watch", stderr)
	srv := addServerFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: brig watch JOB_ID")
		return 2
	}
	client, err := sdk.Connect(ctx, srv.url)
	if err != nil {
		fmt.Fprintf(stderr, "brig watch: %v\n", err)
		return exitBrig
	}
	defer client.Close()
	h, err := client.Watch(ctx, pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "brig watch: %v\n", err)
		return exitBrig
	}
	defer h.Stop()
	for {
		select {
		case ev, ok := <-h.Events():
			if !ok {
				res, _ := h.Result(ctx)
				if res == nil {
					return exitBrig
				}
				return exitCode(res)
			}
			printEvent(stdout, &ev)
		case <-ctx.Done():
			return 130
		}
	}
}
