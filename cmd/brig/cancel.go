package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
)

func cmdCancel(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig cancel", stdout, stderr)
	conn := addConnFlags(fs, devClientCreds)
	conn.addTenantFlag(fs)
	wait := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: %s\n", helpOf(fs.Name()).synopsis)
		return exitUsage
	}
	jc, ctx, err := conn.client(ctx, "brig-cancel")
	if err != nil {
		fmt.Fprintf(stderr, "brig cancel: %v\n", err)
		return exitBrig
	}
	defer jc.close()
	cctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	// A job brig has no event of is sdk.ErrNotFound, and nothing changes
	// (the dispatcher stores nothing for it: docs/design.md §6).
	status, err := jc.Cancel(cctx, pos[0])
	if errors.Is(err, nats.ErrNoResponders) {
		err = noDispatcher(jc.nc)
	}
	if err != nil {
		fmt.Fprintf(stderr, "brig cancel: %v\n", refusal(ctx, err))
		return exitBrig
	}
	fmt.Fprintf(stdout, "%s %s\n", pos[0], status)
	return 0
}
