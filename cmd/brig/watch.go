package main

import (
	"context"
	"fmt"
	"io"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

func cmdWatch(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig watch", stdout, stderr)
	conn := addConnFlags(fs, devClientCreds)
	conn.addTenantFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: %s\n", helpOf(fs.Name()).synopsis)
		return exitUsage
	}
	interrupted := ctx
	jc, ctx, err := conn.client(ctx, "brig-watch")
	if err != nil {
		fmt.Fprintf(stderr, "brig watch: %v\n", err)
		return exitBrig
	}
	defer jc.close()
	if err := watchable(ctx, jc, pos[0]); err != nil {
		fmt.Fprintf(stderr, "brig watch: %v\n", refusal(ctx, err))
		return exitBrig
	}
	h, err := jc.Watch(ctx, pos[0])
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
			return exitCancelled
		}
	}
}

// watchable asks brig whether it has any event of the job before
// following it: a replay of an id brig has no event of would follow it
// for a submission on its way (docs/design.md §6.1), and watch would wait
// for ever in silence. A job id never submitted, or whose submission no
// dispatcher has accepted yet, is an error matching sdk.ErrNotFound; a
// server no dispatcher answers at, a *noBrigError.
func watchable(ctx context.Context, jc *jobConn, id string) error {
	id, err := jobIDOf(jc.tenant, id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, askWait)
	defer cancel()
	exists, err := jc.jobExists(ctx, id)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("job %s: %w: brig has no event of it in tenant %s (never submitted, or not accepted yet)", id, sdk.ErrNotFound, jc.tenant)
	}
	return nil
}

// jobIDOf reads what a user names a job by, as the SDK does: its id, or
// its key (an event's job_id) when that is of the tenant; it returns the
// id.
func jobIDOf(tenant, s string) (string, error) {
	if schema.ValidID(s) {
		return s, nil
	}
	if t, id, ok := schema.SplitJobKey(s); ok {
		if t != tenant {
			return "", fmt.Errorf("job %s is tenant %s's, not tenant %s's", s, t, tenant)
		}
		return id, nil
	}
	return "", fmt.Errorf("invalid job id %q", s)
}
