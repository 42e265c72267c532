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

// Exit codes of brig itself (docs/design.md §7).
const (
	exitTimeout = 124
	exitBrig    = 125
)

const usage = `brig runs untrusted code in locked-down containers.

Usage:
  brig dev [--listen ADDR] [--data DIR]   run NATS, a dispatcher and a worker in one process
  brig run [flags] FILE|-                 run code and stream its output
  brig watch JOB_ID                       replay and follow a job's events
  brig cancel JOB_ID                      cancel a queued or running job
  brig bench [--n N] [--json]             measure brig against its floors (needs brig dev)
  brig deploy [--server URL] FILE|-       create or update functions from YAML
  brig functions ls|show|rm [NAME]        list, show or remove functions (admin)
  brig image build [NAME]                 build a sandbox image offline (default: python)
  brig dispatcher | brig worker           the roles as separate processes (production, docker-compose)
  brig nats [--cluster ADDR] [flags]      a NATS node with JetStream, alone or in a cluster
  brig creds --role ROLE [--out FILE]     mint a role's credential (a tenant's: brig tenant)
  brig tenant add|ls|rm|creds [NAME]      manage tenants, their quotas and their credentials (admin)
  brig status [--json]                    pools, workers and their free slots, queues, running jobs, recent failures

Every command that connects takes --server URL (env BRIG_SERVER, default
nats://127.0.0.1:4222), --creds FILE (env BRIG_CREDS) and --tls-ca FILE (env
BRIG_TLS_CA). Every server refuses anonymous clients. Without --server or
--creds, run, watch and cancel use brig dev's DATA/creds/default.creds, and
deploy, status, bench and tenant its DATA/creds/admin.creds, when the file
exists (DATA: brig dev's default --data); dispatcher and worker need --creds.
run, watch and cancel act in the tenant of their credential (with an
admin's, --tenant NAME, default "default").
brig nats, brig creds and brig tenant keep brig's authority in --auth-dir
(default DATA/auth, which brig dev uses too).
Every flag --foo-bar may also come from the environment as BRIG_FOO_BAR, e.g.
BRIG_LOG_LEVEL=debug; the command line wins, and an empty variable counts as unset
(run, watch, cancel and deploy take only BRIG_SERVER, BRIG_CREDS and BRIG_TLS_CA;
creds only BRIG_AUTH_DIR; tenant those four).
Run 'brig COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if args[0] == "sandbox-init" {
		return sandboxInit(args[1:], stdin, stdout, stderr)
	}
	if args[0] == "sandbox-exec" {
		return sandboxExec(args[1:], stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmds := map[string]func(context.Context, []string, io.Reader, io.Writer, io.Writer) int{
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
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "brig: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd(ctx, args[1:], stdin, stdout, stderr)
}
