package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/brig-dev/brig/internal/auth"
)

// cmdCreds mints a credential of brig's authority (docs/design.md §10.1):
// how a cluster hands its dispatchers and workers theirs. The authority
// must exist (brig nats or brig dev creates it): a credential of a new one
// would be refused by every server. --create makes one first, for setting a
// cluster up before its nodes start.
func cmdCreds(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig creds", stdout, stderr)
	authDir := fs.String("auth-dir", filepath.Join(defaultDataDir(), "auth"), "`DIR` of brig's authority, as given to brig nats (env BRIG_AUTH_DIR)")
	role := fs.String("role", "", "`ROLE` of the credential: admin, dispatcher, worker, client or system (required)")
	tenant := fs.String("tenant", "", "tenant `NAME` of a client credential, e.g. default (required with --role client)")
	create := fs.Bool("create", false, "create the authority in --auth-dir first when it holds none (setting up a cluster before its nodes start)")
	out := fs.String("out", "", "write the credential to `FILE` (mode 0600) and print its path (default: to stdout)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 0 || *role == "" {
		fmt.Fprintln(stderr, "usage: brig creds [--auth-dir DIR] [--create] --role admin|dispatcher|worker|client [--tenant NAME] [--out FILE]")
		return 2
	}
	if auth.Role(*role) == auth.RoleClient && *tenant == "" {
		fmt.Fprintln(stderr, "brig creds: --role client needs --tenant NAME (brig dev's tenant is default)")
		return 2
	}
	if _, err := auth.Permissions(auth.Role(*role), *tenant); err != nil {
		fmt.Fprintf(stderr, "brig creds: %v\n", err)
		return 2
	}
	open := auth.Open
	if *create {
		open = func(dir string) (*auth.Authority, error) { a, _, err := auth.OpenOrCreate(dir); return a, err }
	}
	a, err := open(*authDir)
	if err != nil {
		fmt.Fprintf(stderr, "brig creds: %v (brig nats --auth-dir or brig dev creates one)\n", err)
		return 1
	}
	data, err := a.Creds(auth.User{Role: auth.Role(*role), Tenant: *tenant})
	if err != nil {
		fmt.Fprintf(stderr, "brig creds: %v\n", err)
		return 1
	}
	if auth.Role(*role) == auth.RoleClient {
		fmt.Fprintf(stderr, "brig creds: this credential is not in tenant %s's record, so brig tenant rm will not revoke it; brig tenant creds %s mints a recorded one\n", *tenant, *tenant)
	}
	if *out == "" {
		_, _ = stdout.Write(data)
		return 0
	}
	if err := auth.WriteSecret(*out, data); err != nil {
		fmt.Fprintf(stderr, "brig creds: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, absPath(*out))
	return 0
}
