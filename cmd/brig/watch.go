package main

import (
	"context"
	"fmt"
	"io"
)

func cmdWatch(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig watch", stderr)
	conn := addConnFlags(fs, devClientCreds)
	conn.addTenantFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: brig watch JOB_ID")
		return 2
	}
	interrupted := ctx
	client, ctx, closeClient, err := conn.client(ctx, "brig-watch")
	if err != nil {
		fmt.Fprintf(stderr, "brig watch: %v\n", err)
		return exitBrig
	}
	defer closeClient()
	h, err := client.Watch(ctx, pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "brig watch: %v\n", refusal(ctx, err))
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
			if interrupted.Err() == nil { // the server refused something
				fmt.Fprintf(stderr, "brig watch: %v\n", context.Cause(ctx))
				return exitBrig
			}
			return 130
		}
	}
}
