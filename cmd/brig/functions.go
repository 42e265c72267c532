package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

const functionsUsage = `usage:
  brig functions ls [--tenant NAME] [--json]
                                 list the deployed functions, global and every tenant's, and the
                                 built-ins; with --tenant, the ones NAME's jobs resolve, one a name
  brig functions show NAME [--tenant NAME] [--json]
                                 print the definition NAME resolves to (for --tenant's jobs), as
                                 brig deploy takes it: YAML, or JSON with --json
  brig functions rm NAME [--tenant NAME]
                                 delete a deployed definition: the global one, or with --tenant
                                 the tenant's own; a built-in cannot be removed
Each takes --server, --creds (an admin's; default brig dev's admin.creds) and
--tls-ca. Exit codes: 0 done; 1 no such function (NotFound), a built-in to
remove, or a stored definition brig cannot use; 2 usage; 125 brig failed,
refused the credential or could not be reached.
`

// Exit code of brig functions for a function that is not there or cannot
// be shown or removed (docs/design.md §7).
const exitNoFunction = 1

// functionsTimeout bounds one brig functions command once connected: a
// listing watches the bucket until its end, which a lost server would
// never send.
const functionsTimeout = 30 * time.Second

// cmdFunctions lists, shows and removes the functions of the bucket
// BRIG_FUNCTIONS (docs/design.md §3), with an admin's credential, as
// brig deploy writes them.
func cmdFunctions(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return runSubcommand(ctx, "brig functions", functionsUsage, map[string]subcommand{
		"ls":   cmdFunctionsLs,
		"show": cmdFunctionsShow,
		"rm":   cmdFunctionsRm,
	}, args, stdout, stderr)
}

// functionsCmd is what the subcommands of brig functions share.
type functionsCmd struct {
	name   string
	conn   *connFlags
	tenant string
	stderr io.Writer
}

func newFunctionsCmd(sub string, stdout, stderr io.Writer) (*flag.FlagSet, *functionsCmd) {
	c := &functionsCmd{name: "brig functions " + sub, stderr: stderr}
	fs := newFlagSet(c.name, stdout, stderr)
	c.conn = addConnFlags(fs, devAdminCreds)
	fs.StringVar(&c.tenant, "tenant", "", "the functions of tenant `NAME`: its own, and for ls and show the global ones and built-ins it resolves (default: global)")
	return fs, c
}

// parse parses the flags and wants exactly nargs positional arguments, the
// first of them (if any) a valid function name. When it fails, code is
// the exit code: 0 for -h, else 2.
func (c *functionsCmd) parse(fs *flag.FlagSet, args []string, nargs int) (pos []string, code int, ok bool) {
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, 0, false
	}
	if err != nil {
		return nil, 2, false
	}
	if len(pos) != nargs {
		fmt.Fprint(c.stderr, functionsUsage)
		return nil, 2, false
	}
	if c.tenant != "" && !schema.ValidTenant(c.tenant) {
		fmt.Fprintf(c.stderr, "%s: invalid tenant name %q (1-%d of a-z, 0-9 and -, starting with a letter)\n", c.name, clipArg(c.tenant), schema.MaxTenantLen)
		return nil, 2, false
	}
	if nargs > 0 && !schema.ValidName(pos[0]) {
		fmt.Fprintf(c.stderr, "%s: invalid function name %q (1-64 of A-Z, a-z, 0-9, _ and -, starting with a letter or digit)\n", c.name, clipArg(pos[0]))
		return nil, 2, false
	}
	return pos, 0, true
}

// clipArg cuts a hostile argument short for an error message.
func clipArg(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}

// start parses the flags and nargs arguments (see parse) and connects to
// the store (see open); a failure to connect is reported (exitBrig). When
// ok, the caller defers stop.
func (c *functionsCmd) start(ctx context.Context, fs *flag.FlagSet, args []string, nargs int) (pos []string, store *functions.Store, _ context.Context, stop func(), code int, ok bool) {
	if pos, code, ok = c.parse(fs, args, nargs); !ok {
		return nil, nil, nil, nil, code, false
	}
	store, ctx, stop, err := c.open(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
		return nil, nil, nil, nil, exitBrig, false
	}
	return pos, store, ctx, stop, 0, true
}

// open dials the server as admin and opens the function bucket without
// creating it: store is nil when nothing was ever deployed, so that
// looking does not change the cluster. The context it returns ends after
// functionsTimeout, or at the server's refusal (see dial); stop closes
// the connection.
func (c *functionsCmd) open(ctx context.Context) (store *functions.Store, _ context.Context, stop func(), _ error) {
	nc, ctx, err := c.conn.dial(ctx, "brig-functions", nats.Timeout(2*time.Second))
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, functionsTimeout)
	stop = func() { cancel(); nc.Close() }
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.KeyValue(ctx, functions.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, ctx, stop, nil
		}
	}
	if err == nil {
		store, err = functions.Open(ctx, js, 0)
	}
	if err != nil {
		stop()
		return nil, nil, nil, fmt.Errorf("%s: %w", c.conn.url, refusal(ctx, err))
	}
	return store, ctx, stop, nil
}

// functionRow is a row of brig functions ls --json.
type functionRow struct {
	Name string `json:"name"`
	// Tenant owns the definition; absent for a global one and a built-in.
	Tenant  string `json:"tenant,omitempty"`
	Builtin bool   `json:"builtin,omitempty"`
	// Image is absent for echo, which runs no container, and for an
	// invalid definition.
	Image    string    `json:"image,omitempty"`
	Revision uint64    `json:"revision,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
	// Error says why a stored definition cannot be used.
	Error string `json:"error,omitempty"`
}

func newFunctionRow(e functions.Entry) functionRow {
	r := functionRow{Name: e.Name, Tenant: e.Tenant, Builtin: e.Builtin, Image: e.Function.Image, Revision: e.Revision}
	if !e.Updated.IsZero() {
		r.Updated = e.Updated.UTC().Truncate(time.Second)
	}
	if e.Err != nil {
		r.Error = e.Err.Error()
	}
	return r
}

func cmdFunctionsLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFunctionsCmd("ls", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the functions as a JSON array")
	_, store, ctx, stop, code, ok := c.start(ctx, fs, args, 0)
	if !ok {
		return code
	}
	defer stop()
	var deployed []functions.Entry
	if store != nil {
		var err error
		if deployed, err = store.Entries(ctx); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
			return exitBrig
		}
	}
	var entries []functions.Entry
	if c.tenant != "" {
		entries = functions.Visible(deployed, c.tenant)
	} else {
		entries = append(deployed, functions.Builtins()...)
		slices.SortFunc(entries, functions.CompareEntries)
	}
	rows := make([]functionRow, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, newFunctionRow(e))
	}
	if *asJSON {
		data, _ := json.Marshal(rows)
		fmt.Fprintf(stdout, "%s\n", data)
	} else {
		printFunctionRows(stdout, rows)
	}
	// A broken definition is listed, and the listing fails, so that a
	// script notices it.
	code = 0
	for _, e := range entries {
		if e.Err != nil {
			fmt.Fprintf(stderr, "%s: %v (deploy it again, or remove it: %s)\n", c.name, e.Err, rmHint(e))
			code = exitNoFunction
		}
	}
	return code
}

// rmHint is the command that removes a stored entry.
func rmHint(e functions.Entry) string {
	if !schema.ValidName(e.Name) {
		return fmt.Sprintf("nats kv del %s %s", functions.Bucket, e.Key())
	}
	if e.Tenant != "" {
		return fmt.Sprintf("brig functions rm %s --tenant %s", e.Name, e.Tenant)
	}
	return "brig functions rm " + e.Name
}

func printFunctionRows(stdout io.Writer, rows []functionRow) {
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tTENANT\tIMAGE\tREVISION\tUPDATED")
	for _, r := range rows {
		// Parenthesised, so that no tenant name reads the same.
		owner, image, rev, updated := r.Tenant, r.Image, "-", "-"
		switch {
		case r.Builtin:
			owner = "(built-in)"
		case owner == "":
			owner = "(global)"
		}
		if r.Error != "" {
			image = "(invalid)"
		}
		if image == "" {
			image = "-"
		}
		if r.Revision != 0 {
			rev = fmt.Sprint(r.Revision)
		}
		if !r.Updated.IsZero() {
			updated = r.Updated.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, owner, image, rev, updated)
	}
	_ = w.Flush()
}

func cmdFunctionsShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFunctionsCmd("show", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the definition as JSON instead of YAML")
	pos, store, ctx, stop, code, ok := c.start(ctx, fs, args, 1)
	if !ok {
		return code
	}
	defer stop()
	name := pos[0]
	e, err := functions.KVResolver{Store: store}.Lookup(ctx, c.tenant, name)
	var ise *functions.InvalidStoredError
	switch {
	case errors.Is(err, functions.ErrNotFound):
		where := ""
		if c.tenant != "" {
			where = fmt.Sprintf(" (tenant %s has none of its own, and there is no global or built-in one)", c.tenant)
		}
		fmt.Fprintf(stderr, "%s: %v%s\n", c.name, err, where)
		return exitNoFunction
	case errors.As(err, &ise):
		hint := "brig functions rm " + name
		if tenant, _, own := strings.Cut(ise.Name, "."); own {
			hint += " --tenant " + tenant
		}
		fmt.Fprintf(stderr, "%s: %v (deploy it again, or remove it: %s)\n", c.name, err, hint)
		return exitNoFunction
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
		return exitBrig
	case e.Function.Echo:
		fmt.Fprintf(stderr, "%s: %s is built in and runs no container (its result's stdout is the job's stdin, its output the job's args): it has no definition to show\n", c.name, name)
		return exitNoFunction
	}
	data, err := encodeDefinition(e.Function, *asJSON)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return exitBrig
	}
	switch {
	case e.Builtin:
		fmt.Fprintf(stderr, "%s: %s is built in; a definition deployed under its name replaces it\n", c.name, name)
	case e.Tenant != c.tenant:
		fmt.Fprintf(stderr, "%s: tenant %s has no %s of its own; its jobs resolve this global one\n", c.name, c.tenant, name)
	}
	_, _ = stdout.Write(data)
	return 0
}

// encodeDefinition encodes fn as brig deploy takes it: YAML, or JSON
// (which is YAML too), indented.
func encodeDefinition(fn schema.Function, asJSON bool) ([]byte, error) {
	if !asJSON {
		return functions.MarshalYAML(fn)
	}
	data, err := schema.Marshal(fn)
	if err != nil {
		return nil, fmt.Errorf("function %q: encode: %w", fn.Name, err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return nil, fmt.Errorf("function %q: encode: %w", fn.Name, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// describe names function name as the command addresses it.
func (c *functionsCmd) describe(name string) string {
	if c.tenant == "" {
		return name
	}
	return fmt.Sprintf("%s for tenant %s", name, c.tenant)
}

func cmdFunctionsRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFunctionsCmd("rm", stdout, stderr)
	pos, store, ctx, stop, code, ok := c.start(ctx, fs, args, 1)
	if !ok {
		return code
	}
	defer stop()
	name := pos[0]
	err := fmt.Errorf("function %q: %w", functions.Key(c.tenant, name), functions.ErrNotFound)
	if store != nil {
		err = store.DeleteFor(ctx, c.tenant, name)
	}
	if errors.Is(err, functions.ErrNotFound) {
		fmt.Fprintf(stderr, "%s: %s\n", c.name, c.notDeployed(ctx, store, name, err))
		return exitNoFunction
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, refusal(ctx, err))
		return exitBrig
	}
	fmt.Fprintf(stdout, "removed %s\n", c.describe(name))
	if c.tenant == "" && isBuiltin(name) {
		fmt.Fprintf(stderr, "%s: the built-in %s applies again\n", c.name, name)
	}
	return 0
}

// notDeployed says why rm found nothing to delete, and what there is
// instead: a built-in, which cannot be removed, or a global definition,
// which rm without --tenant removes.
func (c *functionsCmd) notDeployed(ctx context.Context, store *functions.Store, name string, err error) string {
	if isBuiltin(name) {
		if c.tenant != "" {
			return fmt.Sprintf("tenant %s has no %s of its own, and the built-in %s cannot be removed", c.tenant, name, name)
		}
		return fmt.Sprintf("%s is built in and cannot be removed", name)
	}
	if c.tenant != "" && store != nil {
		if _, gerr := store.EntryFor(ctx, "", name); gerr == nil || errors.Is(gerr, functions.ErrInvalidStored) {
			return fmt.Sprintf("%v (there is a global %s: brig functions rm %s without --tenant removes it)", err, name, name)
		}
	}
	return err.Error()
}

func isBuiltin(name string) bool {
	_, ok := functions.BuiltinFunction(name)
	return ok
}
