package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

const tenantUsage = `usage:
  brig tenant add NAME [--max-running N] [--max-queued N] [--max-storage-mb N] [--out-dir DIR]
                                 add a tenant (or update its quotas) and mint a credential of it
  brig tenant ls [--json]        list the tenants and their quotas
  brig tenant rm NAME            remove a tenant and revoke every credential of it
  brig tenant creds NAME [--out FILE]
                                 mint one more credential of a tenant
add and creds --out write beside NAME.creds (FILE) the same credential as a
token of the HTTP API, NAME.token (FILE without .creds, plus .token; 0600).
Each takes --server, --creds (an admin's; default brig dev's admin.creds),
--tls-ca and --auth-dir DIR, brig's authority (default DATA/auth, as brig dev
and brig nats), which add, rm and creds sign and revoke with.
`

// cmdTenant manages tenants (docs/design.md §10.3): their records in
// BRIG_TENANTS, written with an admin connection, and their credentials,
// minted by the authority and recorded, so that removing a tenant revokes
// every one of them.
func cmdTenant(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return runSubcommand(ctx, "brig tenant", tenantUsage, map[string]subcommand{
		"add":   cmdTenantAdd,
		"ls":    cmdTenantLs,
		"rm":    cmdTenantRm,
		"creds": cmdTenantCreds,
	}, args, stdout, stderr)
}

// tenantCmd is what the subcommands of brig tenant share.
type tenantCmd struct {
	name    string
	conn    *connFlags
	authDir *string
	stderr  io.Writer
	// exit is the exit code when parse reports false.
	exit int
}

// newTenantCmd registers the flags every subcommand takes: the
// connection's and --auth-dir (which ls ignores, so that a script can pass
// the same flags to each).
func newTenantCmd(sub string, stdout, stderr io.Writer) (*flag.FlagSet, *tenantCmd) {
	c := &tenantCmd{name: "brig tenant " + sub, stderr: stderr}
	fs := newFlagSet(c.name, stdout, stderr)
	c.conn = addConnFlags(fs, devAdminCreds)
	c.authDir = fs.String("auth-dir", filepath.Join(defaultDataDir(), "auth"),
		"`DIR` of brig's authority, as given to brig nats (env BRIG_AUTH_DIR)")
	return fs, c
}

// parse parses the flags and wants exactly nargs positional arguments, the
// first of them (if any) a valid tenant name. When it reports false, the
// subcommand exits with c.exit: 0 after -h, 2 otherwise.
func (c *tenantCmd) parse(fs *flag.FlagSet, args []string, nargs int) ([]string, bool) {
	c.exit = exitUsage
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		c.exit = parseExit(err)
		return nil, false
	}
	if len(pos) != nargs {
		fmt.Fprint(c.stderr, tenantUsage)
		return nil, false
	}
	if nargs > 0 && !schema.ValidTenant(pos[0]) {
		fmt.Fprintf(c.stderr, "%s: invalid tenant name %q (1-%d of a-z, 0-9 and -, starting with a letter)\n", c.name, pos[0], schema.MaxTenantLen)
		return nil, false
	}
	return pos, true
}

func (c *tenantCmd) fail(err error) int {
	fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
	return 1
}

func (c *tenantCmd) authority() (*auth.Authority, error) {
	a, err := auth.Open(*c.authDir)
	if err != nil {
		return nil, fmt.Errorf("%w (pass --auth-dir, the directory brig nats or brig dev keeps it in)", err)
	}
	return a, nil
}

// open dials the server as admin and opens the tenant records: with
// create, creating the bucket with replicas when missing (see
// auth.OpenTenants); without, a missing bucket is an error wrapping
// auth.ErrNoTenant. stop closes the connection.
func (c *tenantCmd) open(ctx context.Context, create bool, replicas int) (_ *auth.Tenants, _ jetstream.JetStream, _ context.Context, stop func(), _ error) {
	nc, ctx, err := c.conn.dial(ctx, "brig-tenant", nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	var tenants *auth.Tenants
	if create {
		tenants, err = auth.OpenTenants(tctx, js, replicas)
	} else {
		tenants, err = auth.ExistingTenants(tctx, js)
	}
	if errors.Is(err, auth.ErrNoTenant) {
		return nil, js, tctx, func() { cancel(); nc.Close() }, err
	}
	if err != nil {
		cancel()
		nc.Close()
		return nil, nil, nil, nil, fmt.Errorf("%s: %w", c.conn.url, refusal(ctx, err))
	}
	return tenants, js, tctx, func() { cancel(); nc.Close() }, nil
}

// mintRecorded mints a client credential of tenant and records its key in the
// tenant's record (edit, when not nil, changes the record too) before
// returning it: a credential is never handed out unrecorded, so removing
// the tenant revokes it.
func mintRecorded(ctx context.Context, a *auth.Authority, tenants *auth.Tenants, tenant string, create bool,
	edit func(rec *schema.Tenant, exists bool)) (creds []byte, existed bool, _ error) {
	m, err := a.MintUser(auth.User{Role: auth.RoleClient, Tenant: tenant})
	if err != nil {
		return nil, false, err
	}
	_, existed, err = tenants.Update(ctx, tenant, func(rec *schema.Tenant, exists bool) error {
		if !exists && !create {
			return fmt.Errorf("tenant %q: %w (brig tenant add %s creates it)", tenant, auth.ErrNoTenant, tenant)
		}
		if edit != nil {
			edit(rec, exists)
		}
		rec.Users = append(rec.Users, m.PublicKey)
		return nil
	})
	if err != nil {
		return nil, existed, err
	}
	creds, err = m.Creds()
	return creds, existed, err
}

func cmdTenantAdd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newTenantCmd("add", stdout, stderr)
	maxRunning := fs.Int("max-running", 0, "jobs of the tenant routed and not ended at once; the rest wait (0: no limit)")
	maxQueued := fs.Int("max-queued", 0, "jobs of the tenant accepted and not yet ended (0: no limit)")
	maxStorage := fs.Int("max-storage-mb", 0, "MiB the tenant's dicts and queues may hold in all, counted by their caps (0: no limit)")
	outDir := fs.String("out-dir", filepath.Join(defaultDataDir(), "creds"), "`DIR` to write the credential NAME.creds to (mode 0600)")
	replicas := fs.Int("replicas", 0, "replicas of the tenants bucket when this creates it (default: 1; a cluster's dispatchers create it with theirs)")
	pos, ok := c.parse(fs, args, 1)
	if !ok {
		return c.exit
	}
	if *maxRunning < 0 || *maxQueued < 0 || *maxStorage < 0 {
		fmt.Fprintf(stderr, "%s: a quota is 0 (no limit) or more\n", c.name)
		return 2
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	name := pos[0]
	a, err := c.authority()
	if err != nil {
		return c.fail(err)
	}
	tenants, _, ctx, stop, err := c.open(ctx, true, *replicas)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return exitBrig
	}
	defer stop()
	// A new tenant gets every quota; an existing one those given, keeping
	// the others.
	creds, existed, err := mintRecorded(ctx, a, tenants, name, true, func(rec *schema.Tenant, exists bool) {
		for flagName, q := range map[string]struct {
			field *int
			v     int
		}{"max-running": {&rec.MaxRunning, *maxRunning}, "max-queued": {&rec.MaxQueued, *maxQueued}, "max-storage-mb": {&rec.MaxStorageMB, *maxStorage}} {
			if given[flagName] || !exists {
				*q.field = q.v
			}
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
		return exitBrig
	}
	path := filepath.Join(*outDir, name+".creds")
	if err := writeCredsAndToken(path, creds); err != nil {
		return c.fail(err)
	}
	if existed {
		fmt.Fprintf(stderr, "%s: tenant %s exists: updated the quotas given and minted another credential (the ones before stay valid)\n", c.name, name)
	} else {
		fmt.Fprintf(stderr, "%s: added tenant %s\n", c.name, name)
	}
	fmt.Fprintln(stdout, absPath(path))
	return 0
}

func cmdTenantCreds(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newTenantCmd("creds", stdout, stderr)
	out := fs.String("out", "", "write the credential to `FILE` (mode 0600) and print its path (default: to stdout)")
	pos, ok := c.parse(fs, args, 1)
	if !ok {
		return c.exit
	}
	a, err := c.authority()
	if err != nil {
		return c.fail(err)
	}
	tenants, _, ctx, stop, err := c.open(ctx, false, 0)
	if errors.Is(err, auth.ErrNoTenant) {
		stop()
		return c.fail(fmt.Errorf("tenant %q: %w (brig tenant add %s creates it)", pos[0], err, pos[0]))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return exitBrig
	}
	defer stop()
	creds, _, err := mintRecorded(ctx, a, tenants, pos[0], false, nil)
	if errors.Is(err, auth.ErrNoTenant) {
		return c.fail(err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
		return exitBrig
	}
	if *out == "" {
		_, _ = stdout.Write(creds)
		return 0
	}
	if err := writeCredsAndToken(*out, creds); err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(stdout, absPath(*out))
	return 0
}

func cmdTenantLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newTenantCmd("ls", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the records as a JSON array")
	if _, ok := c.parse(fs, args, 0); !ok {
		return c.exit
	}
	tenants, _, ctx, stop, err := c.open(ctx, false, 0)
	if err != nil && !errors.Is(err, auth.ErrNoTenant) {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return exitBrig
	}
	defer stop()
	var recs []schema.Tenant // none when no tenant was ever added
	if tenants != nil {
		recs, err = tenants.List(ctx)
	} else {
		err = nil
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
		return exitBrig
	}
	if *asJSON {
		if recs == nil {
			recs = []schema.Tenant{}
		}
		data, _ := json.Marshal(recs)
		fmt.Fprintf(stdout, "%s\n", data)
		return 0
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tMAX RUNNING\tMAX QUEUED\tMAX STORAGE MB\tCREDENTIALS")
	quota := func(v int) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprint(v)
	}
	for _, r := range recs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", r.Name, quota(r.MaxRunning), quota(r.MaxQueued), quota(r.MaxStorageMB), len(r.Users))
	}
	_ = w.Flush()
	return 0
}

// cmdTenantRm revokes every credential of the tenant, then removes its
// record and its own functions. The order makes a failure safe to retry:
// while the record exists, brig tenant rm finds the keys again.
func cmdTenantRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newTenantCmd("rm", stdout, stderr)
	pos, ok := c.parse(fs, args, 1)
	if !ok {
		return c.exit
	}
	name := pos[0]
	a, err := c.authority()
	if err != nil {
		return c.fail(err)
	}
	tenants, js, ctx, stop, err := c.open(ctx, false, 0)
	if errors.Is(err, auth.ErrNoTenant) {
		stop()
		return c.fail(fmt.Errorf("tenant %q: %w", name, err))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return exitBrig
	}
	defer stop()
	rec, err := tenants.Get(ctx, name)
	if errors.Is(err, auth.ErrNoTenant) {
		return c.fail(err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
		return exitBrig
	}
	if err := c.revoke(ctx, a, rec.Users); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return exitBrig
	}
	deleted, err := tenants.Delete(ctx, name)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
		return exitBrig
	}
	// A credential minted meanwhile (brig tenant creds) is in the deleted
	// record and not in the one read first.
	var late []string
	for _, u := range deleted.Users {
		if !slices.Contains(rec.Users, u) {
			late = append(late, u)
		}
	}
	if err := c.revoke(ctx, a, late); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return exitBrig
	}
	removed, err := deleteOwnFunctions(ctx, js, name)
	if err != nil {
		fmt.Fprintf(stderr, "%s: tenant %s removed, but not its functions: %v\n", c.name, name, refusal(ctx, err))
		return exitBrig
	}
	cancelled, err := cancelActive(ctx, js, name)
	if err != nil {
		fmt.Fprintf(stderr, "%s: tenant %s removed, but not all its jobs cancelled: %v\n", c.name, name, refusal(ctx, err))
		return exitBrig
	}
	fmt.Fprintf(stdout, "removed tenant %s: revoked %d credentials, deleted %d functions, cancelled %d jobs\n", name, len(deleted.Users), removed, cancelled)
	return 0
}

// cancelActive cancels every job of tenant that was accepted and has not
// ended (a marker in BRIG_ACTIVE_<tenant>): a removed tenant's jobs stop
// (docs/design.md §10.3). The cancellations are published without waiting
// for answers: a dispatcher answers only the tenant's own inboxes.
func cancelActive(ctx context.Context, js jetstream.JetStream, tenant string) (int, error) {
	s, err := js.Stream(ctx, schema.ActiveStream(tenant))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(schema.ActivePrefix+tenant+".*"))
	if err != nil {
		return 0, err
	}
	n := 0
	for subject := range info.State.Subjects {
		key := strings.TrimPrefix(subject, schema.ActivePrefix)
		if !schema.ValidJobKey(key) {
			continue
		}
		if err := js.Conn().Publish(schema.CancelSubject(key), nil); err != nil {
			return n, err
		}
		n++
	}
	return n, js.Conn().FlushWithContext(ctx)
}

// revoke adds keys to the authority's revocations and pushes the account
// to the servers over a system connection minted for the purpose, so
// that they close those users' connections now.
func (c *tenantCmd) revoke(ctx context.Context, a *auth.Authority, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := a.Revoke(keys...); err != nil {
		return err
	}
	m, err := a.MintUser(auth.User{Role: auth.RoleSystem, Name: "brig-tenant-rm", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		return err
	}
	opts, err := c.conn.options("")
	if err != nil {
		return err
	}
	sys, err := nats.Connect(c.conn.url, append(opts, nats.Name("brig-tenant-rm"), nats.UserJWTAndSeed(m.JWT, string(m.Seed)))...)
	if err != nil {
		return fmt.Errorf("revoked in %s, but could not reach the servers as the system account: %w; run brig tenant rm again", a.Dir(), c.conn.explain(err, "a system credential of "+a.Dir()))
	}
	defer sys.Close()
	if err := a.PushAccount(ctx, sys); err != nil {
		return fmt.Errorf("revoked in %s, but %w; run brig tenant rm again (a server restarted from that directory refuses them anyway)", a.Dir(), err)
	}
	return nil
}

// deleteOwnFunctions deletes tenant's own functions, so that a tenant
// added again later under the name starts with none.
func deleteOwnFunctions(ctx context.Context, js jetstream.JetStream, tenant string) (int, error) {
	if _, err := js.KeyValue(ctx, functions.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	store, err := functions.Open(ctx, js, 0)
	if err != nil {
		return 0, err
	}
	fns, err := store.ListFor(ctx, tenant)
	var ise *functions.InvalidStoredError
	if errors.As(err, &ise) {
		return 0, fmt.Errorf("%w (delete it with nats kv del %s %s)", err, functions.Bucket, ise.Name)
	}
	if err != nil {
		return 0, err
	}
	for _, fn := range fns {
		if err := store.DeleteFor(ctx, tenant, fn.Name); err != nil && !errors.Is(err, functions.ErrNotFound) {
			return 0, err
		}
	}
	return len(fns), nil
}

// writeCredsAndToken writes a credential to path and, beside it, the same
// credential as an HTTP API token (docs/design.md §11): path without
// .creds, plus .token; both 0600.
func writeCredsAndToken(path string, data []byte) error {
	if err := auth.WriteSecret(path, data); err != nil {
		return err
	}
	return auth.WriteSecret(strings.TrimSuffix(path, ".creds")+".token", []byte(creds.FormatToken(data)))
}
