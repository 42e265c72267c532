// Command brig runs untrusted code as restricted functions on NATS
// JetStream and Docker. See the README and docs/design.md §7 for the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of brig (docs/design.md §7; exitCodesHelp says the same to the
// user). brig run and brig watch otherwise exit with the job's own code.
const (
	// exitFailed: a job that failed without an exit code of its own; the
	// other commands' own failure (brig deploy: an invalid file).
	exitFailed = 1
	// exitUsage: the command line is wrong; nothing was sent.
	exitUsage = 2
	// exitTimeout: the job ran past its timeout (timeout(1)'s code).
	exitTimeout = 124
	// exitBrig: brig could not do it: unreachable, no brig at the server,
	// refused, the job rejected, NotFound, or brig's own failure (docker
	// run's code for its own errors).
	exitBrig = 125
	// exitCancelled: the job was cancelled, or the command interrupted
	// (128 + SIGINT).
	exitCancelled = 130
	// exitOOM: the job was killed for memory without an exit code of its
	// own (128 + SIGKILL).
	exitOOM = 137
)

// exitCodesHelp documents the exit codes, in the general usage and in the
// help of the commands that exit with a job's code.
const exitCodesHelp = `Exit codes:
  0      success
  1-255  brig run, brig watch: the job's own exit code when it failed with one
           (1 when it had none); any code below can also be the job's own,
           --json tells them apart
  1      brig run, brig watch: the job failed without an exit code; the other
           commands: they failed (brig deploy: the file is invalid, nothing stored)
  2      usage: unknown command or flag, wrong arguments, a flag value or an
           input file that cannot be used; nothing was sent
  124    the job timed out
  125    brig could not do it: the server is unreachable, refused the
           credential, or runs no brig ("no brig at URL": no dispatcher
           answered, or it lets anyone in); the job was rejected (invalid,
           over the 512 KiB submission limit, no such function); brig watch,
           brig cancel: NotFound (brig has no event of the job); brig's own
           failure
  130    the job was cancelled, or brig was interrupted (SIGINT, SIGTERM;
           brig run then cancels its job)
  137    the job ran out of memory and had no exit code of its own`

const usage = `brig runs untrusted code in locked-down containers.

Usage:
  brig dev [--listen ADDR] [--data DIR]   run NATS, a dispatcher and a worker in one process
                                          (and the HTTP API: --http ADDR, default 127.0.0.1:4280)
  brig run [flags] FILE|-                 run code and stream its output
  brig watch JOB_ID                       replay and follow a job's events
  brig cancel JOB_ID                      cancel a queued or running job
  brig bench [--only GROUPS] [--quick]    measure brig against its floors (needs brig dev)
  brig deploy [--server URL] FILE|-       create or update functions from YAML
  brig functions ls|show|rm [NAME]        list, show or remove functions (admin)
  brig image build [NAME]                 build a sandbox image offline (default: python)
  brig dispatcher | brig worker           the roles as separate processes (production, docker-compose)
  brig nats [--cluster ADDR] [flags]      a NATS node with JetStream, alone or in a cluster
  brig http --listen ADDR [--server URL]  the HTTP API for tenants (bearer tokens: NAME.token)
  brig creds --role ROLE [--out FILE]     mint a role's credential (a tenant's: brig tenant)
  brig tenant add|ls|rm|creds [NAME]      manage tenants, their quotas and their credentials (admin)
  brig status [--json]                    pools, workers and their free slots, queues, running jobs, recent failures
  brig version [--json]                   brig's version, VCS revision and Go version
  brig help [COMMAND]                     this text, or a command's usage and flags

Every command that connects takes --server URL (env BRIG_SERVER, default
nats://127.0.0.1:4222), --creds FILE (env BRIG_CREDS) and --tls-ca FILE (env
BRIG_TLS_CA). Every server refuses anonymous clients. Without --server or
--creds, run, watch and cancel use brig dev's DATA/creds/default.creds, and
deploy, functions, status, bench and tenant its DATA/creds/admin.creds, when the file
exists (DATA: brig dev's default --data); dispatcher and worker need --creds.
run, watch and cancel act in the tenant of their credential (with an
admin's, --tenant NAME, default "default").
brig nats, brig creds and brig tenant keep brig's authority in --auth-dir
(default DATA/auth, which brig dev uses too).
Every flag --foo-bar may also come from the environment as BRIG_FOO_BAR, e.g.
BRIG_LOG_LEVEL=debug; the command line wins, and an empty variable counts as unset
(run, watch, cancel, deploy and functions take only BRIG_SERVER, BRIG_CREDS and BRIG_TLS_CA;
creds only BRIG_AUTH_DIR; tenant those four).
Run 'brig help COMMAND' or 'brig COMMAND -h' for a command's usage and flags.

` + exitCodesHelp + "\n"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// command is one of brig's commands: its flags and positional arguments,
// the streams, and its exit code.
type command func(context.Context, []string, io.Reader, io.Writer, io.Writer) int

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if args[0] == "sandbox-init" {
		return sandboxInit(args[1:], stdin, stdout, stderr)
	}
	if args[0] == "sandbox-exec" {
		return sandboxExec(args[1:], stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmds := commands()
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return cmdHelp(ctx, cmds, args[1:], stdout, stderr)
	case "--version":
		return cmdVersion(ctx, args[1:], stdin, stdout, stderr)
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "brig: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	return cmd(ctx, args[1:], stdin, stdout, stderr)
}

// commands are brig's commands by name (brig help is not among them: it
// runs them).
func commands() map[string]command {
	return map[string]command{
		"dev":        cmdDev,
		"run":        cmdRun,
		"watch":      cmdWatch,
		"image":      cmdImage,
		"deploy":     cmdDeploy,
		"functions":  cmdFunctions,
		"cancel":     cmdCancel,
		"bench":      cmdBench,
		"dispatcher": cmdDispatcher,
		"worker":     cmdWorker,
		"nats":       cmdNats,
		"status":     cmdStatus,
		"creds":      cmdCreds,
		"tenant":     cmdTenant,
		"http":       cmdHTTP,
		"version":    cmdVersion,
	}
}

// cmdHelp is brig help [COMMAND [SUBCOMMAND]]: the general usage, or the
// command's own, which the command prints when given -h (so it is the
// same text, flags included, and nothing runs: every command parses its
// flags before it does anything).
func cmdHelp(ctx context.Context, cmds map[string]command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "brig help: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	sub := append(append([]string{}, args[1:]...), "-h")
	return cmd(ctx, sub, eofReader{}, stdout, stderr)
}

// eofReader is the stdin of a command run for its help: it never reads.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// cmdHelpText is what a command's -h prints above its flags.
type cmdHelpText struct {
	synopsis string
	about    string
}

// helpOf is the help of the command whose flag set is named name
// ("brig run", "brig tenant add"); a command without an entry gets a
// synopsis of its name and flags.
func helpOf(name string) cmdHelpText {
	if h, ok := commandHelp[name]; ok {
		return h
	}
	return cmdHelpText{synopsis: name + " [flags]"}
}

// commandHelp is each command's help above its flags, by flag set name.
var commandHelp = map[string]cmdHelpText{
	"brig functions ls": {"brig functions ls [--tenant NAME] [--json] [flags]",
		"Lists the deployed functions (global, then each tenant's) and the built-ins; with --tenant, what\n" +
			"that tenant's jobs resolve each name to. Admin credential. Exit 1 when a stored definition is invalid."},
	"brig functions show": {"brig functions show NAME [--tenant NAME] [--json] [flags]",
		"Prints the definition NAME resolves to, as brig deploy takes it. Exit 1: NotFound."},
	"brig functions rm": {"brig functions rm NAME [--tenant NAME] [flags]",
		"Deletes a global function, or with --tenant that tenant's own. Exit 1: NotFound, or a built-in."},
	"brig dev": {"brig dev [--listen ADDR] [--data DIR] [flags]",
		"Runs embedded NATS with JetStream, one dispatcher and one worker in one process. Builds the\n" +
			"sandbox image if missing; on first start creates the authority and DATA/creds/admin.creds and\n" +
			"default.creds; prints `ready nats://HOST:PORT` on stderr. Exits 0 on SIGINT or SIGTERM, 1 when it\n" +
			"cannot start."},
	"brig run": {"brig run [flags] FILE|-",
		"Submits FILE's code (- reads it from stdin) to a function (default python), streams the job's\n" +
			"stdout and stderr, and exits with its exit code. With no server named (--server, BRIG_SERVER)\n" +
			"and none answering, it runs the job on an embedded brig. SIGINT or SIGTERM cancels the job.\n\n" +
			"The job's input:\n" +
			"  --stdin FILE|-        the job's stdin (the code must then come from FILE, not -)\n" +
			"  --args JSON|@FILE     a JSON value, written to /work/args.json (@- reads stdin)\n" +
			"  --file LOCAL[:PATH]   LOCAL's content at /work/PATH (default: LOCAL's base name; LOCAL\n" +
			"                        holds no ':'); repeatable\n" +
			"  --env K=V             an environment variable; repeatable\n" +
			"Code, stdin and files are UTF-8 text. The whole job must fit the 512 KiB submission limit:\n" +
			"a larger or invalid job is refused before anything is sent (rejected, exit 125).\n\n" +
			exitCodesHelp},
	"brig watch": {"brig watch [flags] JOB_ID",
		"Replays a job's events from its first and follows them to its terminal one, one JSON object\n" +
			"per line, then exits as brig run would for that job. A job brig has no event of (never\n" +
			"submitted, or not accepted yet) is NotFound: exit 125 at once, and nothing changes.\n\n" +
			exitCodesHelp},
	"brig cancel": {"brig cancel [flags] JOB_ID",
		"Cancels a queued job (it never runs) or a running one (killed, its output so far kept) and\n" +
			"prints `JOB_ID STATUS`: cancelled, or how the job had ended already (exit 0). A job brig\n" +
			"has no event of is NotFound: exit 125, and nothing changes."},
	"brig deploy": {"brig deploy [flags] FILE|-",
		"Validates the function definitions of a YAML file (- reads stdin), then creates or updates\n" +
			"them; needs an admin credential. Exit 1 when the file is invalid (nothing is stored), 125\n" +
			"when brig cannot be reached, is not at the server, or refuses."},
	"brig image build": {"brig image build [NAME]",
		"Builds a sandbox image offline from Debian's packages (python → brig/python:latest).\n" +
			"Exit 1 when the build fails."},
	"brig dispatcher": {"brig dispatcher --creds FILE [flags]",
		"Runs a dispatcher: validates submissions, resolves functions, routes jobs to pools.\n" +
			"Exits 0 on SIGINT or SIGTERM after --grace; 125 when it cannot connect or start."},
	"brig worker": {"brig worker --creds FILE [flags]",
		"Runs a worker: takes jobs of its --pools within its free slots and runs each in a container.\n" +
			"Exits 0 on SIGINT or SIGTERM after --grace; 125 when it cannot connect or start."},
	"brig nats": {"brig nats [--listen ADDR] [--cluster HOST:PORT --routes URLS] [flags]",
		"Runs one NATS node with JetStream, alone or in a cluster; prints `ready nats://HOST:PORT`.\n" +
			"Exits 0 on SIGTERM after handing its leaderships over, 1 when it cannot start."},
	"brig status": {"brig status [--json] [flags]",
		"With an admin credential: pools, streams, workers, running jobs, recent failures and every\n" +
			"tenant. With a tenant's: that tenant's quotas, queued and running jobs. Exit 125 when brig\n" +
			"cannot be reached or is not at the server."},
	"brig bench": {"brig bench [--only GROUPS] [--quick] [--n N] [--json] [flags]",
		"Measures the raw floors (Engine API, JetStream) and brig's own figures beside them; needs a\n" +
			"running brig (brig dev) and the Docker daemon."},
	"brig creds": {"brig creds [--auth-dir DIR] [--create] --role ROLE [--tenant NAME] [--out FILE]",
		"Mints a credential of the authority in --auth-dir for a role (admin, dispatcher, worker,\n" +
			"client with --tenant, system). A tenant's recorded credentials come from brig tenant creds."},
	"brig tenant add": {"brig tenant add NAME [--max-running N] [--max-queued N] [--max-storage-mb N] [--out-dir DIR]",
		"Adds a tenant (or updates its quotas) and mints a recorded credential of it; prints its path."},
	"brig tenant ls":    {"brig tenant ls [--json]", "Lists the tenants and their quotas."},
	"brig tenant rm":    {"brig tenant rm NAME", "Removes a tenant and revokes every credential of it."},
	"brig tenant creds": {"brig tenant creds NAME [--out FILE]", "Mints one more recorded credential of a tenant."},
	"brig version": {"brig version [--json]",
		"Prints brig's module version, the VCS revision it was built from (when the build recorded\n" +
			"one) and the Go version that built it."},
}
