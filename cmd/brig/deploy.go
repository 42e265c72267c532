package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

// Exit code of brig deploy for a file it will not deploy.
const exitDeployInvalid = 1

// cmdDeploy creates or updates the functions defined in a YAML file
// (docs/design.md §3, §7): global ones, or with --tenant one tenant's own
// (§10.3). The whole file is validated before anything is stored; a
// definition the same as the stored one is reported unchanged and keeps
// its revision.
// There is no embedded fallback: definitions deployed to a brig that
// exits with the command would be lost.
func cmdDeploy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig deploy", stdout, stderr)
	conn := addConnFlags(fs, devAdminCreds)
	tenant := fs.String("tenant", "", "deploy the functions for tenant `NAME` only (its own, which its jobs resolve before a global one); default: global, for every tenant")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: brig deploy [--server URL] [--creds FILE] [--tenant NAME] FILE|-")
		return 2
	}
	if *tenant != "" && !schema.ValidTenant(*tenant) {
		fmt.Fprintf(stderr, "brig deploy: invalid tenant name %q (1-%d of a-z, 0-9 and -, starting with a letter)\n", *tenant, schema.MaxTenantLen)
		return 2
	}
	fns, err := readDefinitions(pos[0], stdin)
	if err != nil {
		fmt.Fprintf(stderr, "brig deploy: %v\n", err)
		return exitDeployInvalid
	}
	nc, ctx, err := conn.dial(ctx, "brig-deploy", nats.Timeout(2*time.Second))
	if err != nil {
		fmt.Fprintf(stderr, "brig deploy: %v\n", err)
		return exitBrig
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintf(stderr, "brig deploy: %v\n", err)
		return exitBrig
	}
	if err := requireBrigServer(nc); err != nil {
		fmt.Fprintf(stderr, "brig deploy: %v\n", err)
		return exitBrig
	}
	store, err := functions.Open(ctx, js, 0)
	if err != nil {
		fmt.Fprintf(stderr, "brig deploy: %s: %v\n", conn.url, refusal(ctx, err))
		return exitBrig
	}
	for _, fn := range fns {
		// A definition the same as the stored one is left as it is, with
		// its revision (functions.Store.Deploy).
		rev, changed, err := store.Deploy(ctx, *tenant, fn)
		if err != nil {
			fmt.Fprintf(stderr, "brig deploy: %v\n", refusal(ctx, err))
			return exitBrig
		}
		verb, of := "deployed", ""
		if !changed {
			verb = "unchanged"
		}
		if *tenant != "" {
			of = " for tenant " + *tenant
		}
		fmt.Fprintf(stdout, "%s %s%s (revision %d)\n", verb, fn.Name, of, rev)
	}
	return 0
}

// readDefinitions reads and validates the file ("-" is stdin). Its errors
// start with the file's name.
func readDefinitions(name string, stdin io.Reader) ([]schema.Function, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	} else {
		name = "stdin"
	}
	data, err := io.ReadAll(io.LimitReader(r, functions.MaxYAMLBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	fns, err := functions.ParseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return fns, nil
}
