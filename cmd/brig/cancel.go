package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

func cmdCancel(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig cancel", stderr)
	conn := addConnFlags(fs, devClientCreds)
	conn.addTenantFlag(fs)
	wait := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: brig cancel JOB_ID")
		return 2
	}
	client, ctx, closeClient, err := conn.client(ctx, "brig-cancel")
	if err != nil {
		fmt.Fprintf(stderr, "brig cancel: %v\n", err)
		return exitBrig
	}
	defer closeClient()
	cctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	status, err := client.Cancel(cctx, pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "brig cancel: %v\n", refusal(ctx, err))
		return exitBrig
	}
	fmt.Fprintf(stdout, "%s %s\n", pos[0], status)
	return 0
}
