package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// Files of brig dev's creds dir (docs/design.md §10.1) that the commands
// aimed at the local dev server use when given no --creds.
const (
	devClientCreds = "default.creds"
	devAdminCreds  = "admin.creds"
)

// connFlags are the flags of every command that connects to the bus:
// --server, --creds and --tls-ca (docs/design.md §7, §10). Every such
// command dials through connect.
type connFlags struct {
	*serverFlag
	// creds is --creds (or BRIG_CREDS); "" when neither was given.
	creds string
	// tlsCA is --tls-ca (or BRIG_TLS_CA): the CA of the server's
	// certificate.
	tlsCA string
	// devCreds is the file of brig dev's creds dir the command falls back
	// to when it aims at the local dev server with no --creds; "" when
	// --creds is required (the roles).
	devCreds string
	// devDir is brig dev's default data dir, whose creds dir that is.
	devDir string
	// tenant is --tenant of the job commands (addTenantFlag).
	tenant string
}

// addConnFlags registers --server, --creds and --tls-ca. devCreds is the
// dev file the command falls back to (devClientCreds or devAdminCreds), or
// "" when --creds is required.
func addConnFlags(fs *flag.FlagSet, devCreds string) *connFlags {
	c := &connFlags{serverFlag: addServerFlag(fs), devCreds: devCreds, devDir: defaultDataDir()}
	help := "NATS credentials `FILE` (env BRIG_CREDS); required"
	if devCreds != "" {
		help = "NATS credentials `FILE` (env BRIG_CREDS; default, when --server is not given: " +
			c.devCredsPath() + " if it exists)"
	}
	fs.StringVar(&c.creds, "creds", "", help)
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM `FILE` of the CA that signed the server's TLS certificate (env BRIG_TLS_CA)")
	return c
}

// devCredsPath is where brig dev writes the command's fallback credentials.
func (c *connFlags) devCredsPath() string {
	name := c.devCreds
	if name == "" {
		name = devClientCreds
	}
	return filepath.Join(c.devDir, "creds", name)
}

// credsFile is the credentials file to connect with: --creds (or
// BRIG_CREDS); else, aimed at the local dev server, brig dev's file when it
// exists; else none ("").
func (c *connFlags) credsFile() string {
	if c.creds != "" {
		return c.creds
	}
	if c.explicit || c.devCreds == "" {
		return ""
	}
	if _, err := os.Stat(c.devCredsPath()); err != nil {
		return ""
	}
	return c.devCredsPath()
}

// requireCreds reports, for a role, whether --creds was given, and says
// how to get one when not.
func (c *connFlags) requireCreds(cmd, role string, stderr io.Writer) bool {
	if c.creds != "" {
		return true
	}
	fmt.Fprintf(stderr, "%s: --creds FILE (env BRIG_CREDS) is required; mint one with `brig creds --auth-dir DIR --role %s --out FILE`\n", cmd, role)
	return false
}

// options are the NATS options that carry creds and the TLS CA.
func (c *connFlags) options(creds string) ([]nats.Option, error) {
	var opts []nats.Option
	if creds != "" {
		if err := readable(creds); err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(creds))
	}
	if c.tlsCA != "" {
		if err := readable(c.tlsCA); err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		opts = append(opts, nats.RootCAs(c.tlsCA))
	}
	return opts, nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// connect dials the server as name with the command's credentials and TLS
// CA, then extra; its errors say what to do about a refusal. The roles
// use it as it is; the other commands through dial.
func (c *connFlags) connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	return c.connectWith(c.credsFile(), name, extra...)
}

// connectWith is connect with the credentials file creds ("" for none).
func (c *connFlags) connectWith(creds, name string, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.options(creds)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.url, append(append(opts, nats.Name(name)), extra...)...)
	if err != nil {
		return nil, c.explain(err, creds)
	}
	return nc, nil
}

// dial is connect for a command that does one thing and exits. The context
// it returns ends when the connection closes, or at the server's first
// refusal of a publish or subscription, with a cause that says which (see
// refusal): a command given another role's credential then fails at once
// and says why, rather than waiting for its timeout.
func (c *connFlags) dial(ctx context.Context, name string, extra ...nats.Option) (*nats.Conn, context.Context, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	creds := c.credsFile()
	refused := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		switch {
		case errors.Is(err, nats.ErrPermissionViolation):
			cancel(fmt.Errorf("the server refused %s: %w (this command needs %s)", credsName(creds), err, c.needs()))
		case errors.Is(err, nats.ErrAuthRevoked):
			cancel(fmt.Errorf("the server closed the connection: %s is revoked (%w)", credsName(creds), err))
		}
	})
	closed := nats.ClosedHandler(func(*nats.Conn) { cancel(errConnClosed) })
	nc, err := c.connectWith(creds, name, append([]nats.Option{refused, closed}, extra...)...)
	if err != nil {
		cancel(nil)
		return nil, nil, err
	}
	return nc, ctx, nil
}

// addTenantFlag registers --tenant, for the commands that act on jobs
// (run, watch, cancel) with an admin's credential.
func (c *connFlags) addTenantFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.tenant, "tenant", "", "act in tenant `NAME`, with an admin's credential (default: the credential's tenant; an admin's: "+schema.DefaultTenant+")")
}

// jobTenant is the tenant a job command acts in (docs/design.md §10.3): a
// tenant's credential's own (its JWT's brig-tenant tag), else --tenant,
// else the default tenant. A --tenant other than the credential's is an
// error: the server would refuse every subject of it.
func (c *connFlags) jobTenant(creds string) (string, error) {
	if c.tenant != "" && !schema.ValidTenant(c.tenant) {
		return "", fmt.Errorf("invalid tenant name %q (1-%d of a-z, 0-9 and -, starting with a letter)", c.tenant, schema.MaxTenantLen)
	}
	own := ""
	if creds != "" {
		data, err := os.ReadFile(creds)
		if err != nil {
			return "", fmt.Errorf("credentials: %w", err)
		}
		id, err := auth.ReadCreds(data)
		if err != nil {
			return "", fmt.Errorf("credentials %s: %w", creds, err)
		}
		own = id.Tenant
	}
	switch {
	case own != "" && c.tenant != "" && c.tenant != own:
		return "", fmt.Errorf("the credential in %s is tenant %s's, not %s's (--tenant is for an admin's credential)", creds, own, c.tenant)
	case own != "":
		return own, nil
	case c.tenant != "":
		return c.tenant, nil
	}
	return schema.DefaultTenant, nil
}

// jobConn is what a job command (run, watch, cancel) works through: an
// SDK client of its tenant and the NATS connection under it.
type jobConn struct {
	*sdk.Client
	nc     *nats.Conn
	tenant string
	// close closes the client and the connection (and stops an embedded
	// brig).
	close func()
}

// client dials for an SDK client of the command's tenant (jobTenant), on
// a connection whose inboxes lie under the tenant's prefix, where a
// client credential may subscribe. The context it returns is the one to
// run under (see dial).
func (c *connFlags) client(ctx context.Context, name string) (*jobConn, context.Context, error) {
	tenant, err := c.jobTenant(c.credsFile())
	if err != nil {
		return nil, nil, err
	}
	nc, ctx, err := c.dial(ctx, name, nats.CustomInboxPrefix(schema.InboxPrefix(tenant)))
	if err != nil {
		return nil, nil, err
	}
	cl, err := sdk.New(nc, sdk.WithTenant(tenant))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return &jobConn{Client: cl, nc: nc, tenant: tenant, close: func() { cl.Close(); nc.Close() }}, ctx, nil
}

// noBrigError says that a server answers but runs no brig: no dispatcher
// took a request, or the server lets anyone in. Against someone else's
// NATS server a command says so, rather than wait for ever or report
// what NATS said (docs/design.md §7).
type noBrigError struct {
	// URL is the server's, redacted.
	URL string
	// Why is what showed it; Hint what to do about it.
	Why, Hint string
}

func (e *noBrigError) Error() string {
	return fmt.Sprintf("no brig at %s: %s (%s)", e.URL, e.Why, e.Hint)
}

// errNoDispatcher is the Why of a request no dispatcher answered.
const errNoDispatcher = "no dispatcher answered"

// noDispatcher is the noBrigError of a request that had no responder.
func noDispatcher(nc *nats.Conn) error {
	return &noBrigError{URL: nc.ConnectedUrlRedacted(), Why: errNoDispatcher,
		Hint: "start brig's dispatchers against it, or `brig dev`; or name brig's server with --server or BRIG_SERVER"}
}

// askWait bounds one question to the dispatchers: one answers a peek after
// a lookup or two (each within 5 s, dispatcher/replay.go).
const askWait = 10 * time.Second

// jobExists asks the dispatchers' replay service whether brig has any
// event of the job id in the connection's tenant: the peek of
// docs/design.md §6.1, which reads and changes nothing. A request no
// dispatcher answers (no responders) is a *noBrigError. A busy dispatcher
// is asked again, after a pause that doubles from 100 ms, until ctx ends.
func (j *jobConn) jobExists(ctx context.Context, id string) (bool, error) {
	for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		exists, busy, err := j.peek(ctx, id)
		if !busy {
			return exists, err
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return false, fmt.Errorf("ask about job %s: the dispatchers stayed busy: %w", id, ctx.Err())
		}
	}
}

// peek asks the replay service once whether brig has an event of the job
// (see jobExists; sdk.Client.Job); busy: the dispatcher had too many
// requests in hand.
func (j *jobConn) peek(ctx context.Context, id string) (exists, busy bool, _ error) {
	_, err := j.Job(ctx, id)
	switch {
	case err == nil:
		return true, false, nil
	case errors.Is(err, sdk.ErrNotFound):
		return false, false, nil
	case errors.Is(err, sdk.ErrBusy):
		return false, true, nil
	case errors.Is(err, nats.ErrNoResponders):
		return false, false, noDispatcher(j.nc)
	}
	return false, false, err
}

// brigAnswers checks that a dispatcher answers at the server, with one
// peek of a fresh id, before brig run sends a job: on a server without
// brig a submission would vanish, and the job's handle wait for ever.
// Only no responder at all is an error (*noBrigError); any answer, busy
// or not, or none within askWait, means a dispatcher is there.
func (j *jobConn) brigAnswers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, askWait)
	defer cancel()
	_, _, err := j.peek(ctx, sdk.NewJobID())
	var nb *noBrigError
	if errors.As(err, &nb) {
		return err
	}
	return nil
}

// requireBrigServer refuses a server that lets anyone in: every server
// brig runs requires a credential (docs/design.md §10), so one that does
// not is someone else's NATS. The commands that use the JetStream API
// with an admin's credential (status, deploy) ask it first: there, status
// would show an empty fleet and deploy would create brig's buckets. A
// brig server none of brig's roles ran against yet is brig's all the same.
func requireBrigServer(nc *nats.Conn) error {
	if nc.AuthRequired() {
		return nil
	}
	return &noBrigError{URL: nc.ConnectedUrlRedacted(), Why: "the server lets anyone in, and brig's servers never do",
		Hint: "name brig's server with --server or BRIG_SERVER, or start one with `brig dev`"}
}

// errConnClosed ends a dial's context when its connection closes.
var errConnClosed = errors.New("the connection to the server closed")

// refusal is err, or the server's refusal or revocation that ended ctx
// (see dial) when that is why err happened.
func refusal(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, nats.ErrPermissionViolation) || errors.Is(cause, nats.ErrAuthRevoked) {
		return cause
	}
	return err
}

// needs names the credential the command needs.
func (c *connFlags) needs() string {
	if c.devCreds == devAdminCreds {
		return "an admin credential"
	}
	return "a tenant's credential"
}

func credsName(creds string) string {
	if creds == "" {
		return "this anonymous connection"
	}
	return "the credential in " + creds
}

// explain turns a failed dial into what the user should do.
func (c *connFlags) explain(err error, creds string) error {
	switch {
	case isAuthError(err) && creds == "":
		return fmt.Errorf("the server wants credentials: pass --creds FILE (brig dev writes %s)", c.devCredsPath())
	case isAuthError(err):
		return fmt.Errorf("server %s refused the credentials in %s: %w", c.url, creds, err)
	case errors.Is(err, nats.ErrNoServers):
		hint := ""
		if !c.explicit {
			hint = " (start `brig dev`, or choose a server with --server or BRIG_SERVER)"
		}
		return fmt.Errorf("server %s unreachable: %w%s", c.url, err, hint)
	}
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) && c.tlsCA == "" {
		return fmt.Errorf("server %s: %w (pass --tls-ca FILE, the CA of its certificate)", c.url, err)
	}
	return fmt.Errorf("server %s: %w", c.url, err)
}

// isAuthError reports whether the server refused the connection's
// credentials (or the lack of them).
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired)
}
