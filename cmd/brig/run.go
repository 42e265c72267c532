package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/devstack"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
	"github.com/brig-dev/brig/worker"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func cmdRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("brig run", stdout, stderr)
	conn := addConnFlags(fs, devClientCreds)
	conn.addTenantFlag(fs)
	function := fs.String("function", "python", "function to run the code with")
	id := fs.String("id", "", "job id (default: a fresh random one)")
	timeout := fs.Duration("timeout", 0, "job timeout, e.g. 10s (default: the function's)")
	memory := fs.Int64("memory", 0, "memory limit in MB (default: the function's)")
	network := fs.Bool("network", false, "give the job a network")
	restricted := fs.Bool("restricted", true, "grant the job no scopes (--allow implies false)")
	runtime := fs.String("runtime", "", "container runtime: runc or runsc")
	singleUse := fs.Bool("single-use", true, "run in a fresh container (false: a reused container of the function, see README)")
	asJSON := fs.Bool("json", false, "print the terminal event as one JSON object instead of the output")
	logLevel := fs.String("log-level", "warn", "log level of an embedded brig")
	var allow, egress multiFlag
	fs.Var(&allow, "allow", "request a scope, e.g. dict:cache:read (repeatable)")
	fs.Var(&egress, "egress", "let the job reach `HOST[:PORT]` (or *.SUFFIX) and nothing else, within its function's egress list (repeatable; docs/design.md §12)")
	input := addInputFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: %s\nRun 'brig run -h' for its flags.\n", helpOf(fs.Name()).synopsis)
		return exitUsage
	}
	job := schema.Job{ID: *id, Function: *function, Runtime: *runtime, Scopes: allow, Egress: egress}
	job.SetTimeout(*timeout) // rounds up: --timeout 500us is 1 ms, not the default
	if job.ID == "" {
		job.ID = sdk.NewJobID()
	}
	if *memory != 0 {
		job.Limits = &schema.Limits{MemoryMB: *memory}
	}
	if *network {
		job.Network = schema.Ptr(true)
	}
	restrictedSet := false
	fs.Visit(func(f *flag.Flag) {
		restrictedSet = restrictedSet || f.Name == "restricted"
		if f.Name == "single-use" {
			job.SingleUse = schema.Ptr(*singleUse)
		}
	})
	if !*restricted || (len(allow) > 0 && !restrictedSet) {
		job.Restricted = schema.Ptr(false)
	}
	tenant, err := conn.jobTenant(conn.credsFile())
	if err != nil {
		fmt.Fprintf(stderr, "brig run: %v\n", err)
		return exitBrig
	}
	if code, ok := buildJob(ctx, &job, input, pos[0], stdin, tenant, *asJSON, stdout, stderr); !ok {
		return code
	}
	jc, runCtx, err := connectOrEmbed(ctx, conn, tenant, stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "brig run: %v\n", err)
		return exitBrig
	}
	defer jc.close()
	return runJob(ctx, runCtx, jc, job, *asJSON, stdout, stderr)
}

// buildJob reads the code and the input flags into job and checks the job
// as the dispatcher would, before anything is sent. ok is false when the
// job cannot go: code is then exitUsage for a command line it cannot
// make a job of, or the exit code of the job rejected here, reported as
// brig would (a terminal rejected event with --json).
func buildJob(ctx context.Context, job *schema.Job, input *jobInput, codeArg string, stdin io.Reader, tenant string, asJSON bool, stdout, stderr io.Writer) (code int, ok bool) {
	// Reading may block (a terminal, a stuck pipe, a FIFO nobody writes):
	// SIGINT and SIGTERM end ctx, and brig run then ends at once (exit
	// 130) with nothing sent, leaving the read behind.
	built := make(chan error, 1)
	go func() { built <- input.build(job, codeArg, stdin) }()
	var err error
	select {
	case err = <-built:
	case <-ctx.Done():
		fmt.Fprintln(stderr, "brig run: interrupted while reading the job's input; nothing was sent")
		return exitCancelled, false
	}
	var usage *usageError
	if errors.As(err, &usage) {
		fmt.Fprintf(stderr, "brig run: %v\n", err)
		return exitUsage, false
	}
	if err == nil {
		err = checkJob(job)
	}
	if err != nil {
		return report(rejected(tenant, job.ID, err), asJSON, stdout, stderr), false
	}
	return 0, true
}

// rejected is the terminal event of a job refused before it was sent, as
// the dispatcher would have ended it (docs/design.md §2.4).
func rejected(tenant, id string, err error) *schema.Event {
	return &schema.Event{
		JobID: schema.JobKey(tenant, id), Type: schema.EventError, Status: schema.StatusRejected, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: schema.ErrInvalidJob, Message: "invalid job: " + err.Error()},
	}
}

// cancelWait bounds the cancellation of an interrupted brig run's job and
// the wait for its terminal event.
const cancelWait = 10 * time.Second

// runJob submits the job, streams its output (or prints its terminal event
// with asJSON) and returns brig run's exit code. ctx ends on SIGINT or
// SIGTERM: the job is then cancelled, since nothing would follow it any
// more. runCtx, under ctx, also ends when the server refuses something
// (see connFlags.dial).
func runJob(ctx, runCtx context.Context, jc *jobConn, job schema.Job, asJSON bool, stdout, stderr io.Writer) int {
	h, err := jc.Submit(runCtx, job)
	if err != nil {
		var je *sdk.JobError
		if errors.As(err, &je) {
			return report(je.Event, asJSON, stdout, stderr)
		}
		fmt.Fprintf(stderr, "brig run: %v\n", refusal(runCtx, err))
		return exitBrig
	}
	defer h.Stop()
	if !asJSON {
		streamOutput(runCtx, h, stdout, stderr)
	}
	ev, err := h.Result(runCtx)
	if ev == nil && ctx.Err() != nil {
		ev, err = cancelJob(context.WithoutCancel(ctx), jc, h, stderr)
	}
	if ev == nil {
		fmt.Fprintf(stderr, "brig run: %v\n", refusal(runCtx, err))
		return exitBrig
	}
	return report(ev, asJSON, stdout, stderr)
}

// cancelJob cancels an interrupted brig run's job and returns its terminal
// event: cancelled, or how it had ended already.
func cancelJob(ctx context.Context, jc *jobConn, h *sdk.Handle, stderr io.Writer) (*schema.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	fmt.Fprintf(stderr, "brig run: interrupted: cancelling job %s\n", h.ID)
	// The handle's Cancel asks again while no dispatcher has taken the job
	// yet (NotFound right after the submission), so a job interrupted that
	// early is cancelled too, not left to run.
	if _, err := h.Cancel(ctx); err != nil {
		return nil, fmt.Errorf("interrupted, and the job may still run: %w", err)
	}
	ev, err := h.Result(ctx)
	if ev == nil {
		return nil, fmt.Errorf("interrupted; the job was cancelled: %w", err)
	}
	return ev, nil
}

// streamOutput copies the job's output until its events end, or ctx does
// (an interrupt, the connection closed or refused: see connFlags.dial),
// since a handle whose connection is gone may never end its events.
func streamOutput(ctx context.Context, h *sdk.Handle, stdout, stderr io.Writer) {
	for {
		select {
		case ev, ok := <-h.Events():
			if !ok {
				return
			}
			if ev.Type != schema.EventOutput {
				continue
			}
			if ev.Stream == schema.StreamStderr {
				io.WriteString(stderr, ev.Data)
			} else {
				io.WriteString(stdout, ev.Data)
			}
		case <-ctx.Done():
			return
		}
	}
}

// report prints what a person needs to know of a terminal event and maps
// it to an exit code.
func report(ev *schema.Event, asJSON bool, stdout, stderr io.Writer) int {
	if asJSON {
		printEvent(stdout, ev)
	} else {
		if ev.OutputError != "" {
			fmt.Fprintf(stderr, "brig: the job's output was not kept: %s\n", ev.OutputError)
		}
		if ev.StdoutTruncated {
			fmt.Fprintln(stderr, "brig: stdout was truncated at the output limit")
		}
		if ev.StderrTruncated {
			fmt.Fprintln(stderr, "brig: stderr was truncated at the output limit")
		}
		if ev.Error != nil && (ev.Status != schema.StatusFailed || ev.Error.Type == schema.ErrAuthError) {
			fmt.Fprintf(stderr, "brig: job %s %s: %s: %s\n", ev.JobID, ev.Status, ev.Error.Type, ev.Error.Message)
		}
	}
	return exitCode(ev)
}

// exitCode is brig run's exit code for a terminal event (docs/design.md §7).
func exitCode(ev *schema.Event) int {
	switch ev.Status {
	case schema.StatusSucceeded:
		return 0
	case schema.StatusFailed, schema.StatusOOM:
		if ev.ExitCode > 0 && ev.ExitCode < 256 {
			return ev.ExitCode
		}
		if ev.Status == schema.StatusOOM {
			return 137
		}
		return 1
	case schema.StatusTimeout:
		return exitTimeout
	case schema.StatusCancelled:
		return 130
	}
	return exitBrig
}

// connectOrEmbed connects to the chosen server and checks that brig runs
// there (a dispatcher answers). With no server chosen and none answering
// at the default address, it starts an embedded brig for this one command
// and says so; a server that answers but refuses the credentials, or runs
// no brig, is an error, never a reason to fall back. The context it
// returns is the one to run under (see connFlags.dial); jobConn.close
// closes the client (and stops the embedded brig).
func connectOrEmbed(ctx context.Context, conn *connFlags, tenant string, stderr io.Writer, logLevel string) (*jobConn, context.Context, error) {
	jc, cctx, err := conn.client(ctx, "brig-run")
	if err == nil {
		if err := jc.brigAnswers(cctx); err != nil {
			jc.close()
			return nil, nil, refusal(cctx, err)
		}
		return jc, cctx, nil
	}
	if conn.explicit || !errors.Is(err, nats.ErrNoServers) {
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "brig: nothing answers at %s; running this job on an embedded brig (start `brig dev` to keep one running)\n", conn.url)
	jc, err = embed(ctx, stderr, logLevel, tenant)
	return jc, ctx, err
}

// embed starts a brig for one job in a temporary directory and connects to
// it as a client of tenant, as `brig run` would to brig dev; the embedded
// brig has the default tenant only. Closing the jobConn stops it and
// removes the directory.
func embed(ctx context.Context, stderr io.Writer, logLevel, tenant string) (*jobConn, error) {
	dir, err := os.MkdirTemp("", "brig-run-")
	if err != nil {
		return nil, err
	}
	stack, err := devstack.Start(ctx, devstack.Config{
		Listen:   "127.0.0.1:0",
		DataDir:  dir + "/jetstream",
		Logger:   newLogger(stderr, logLevel),
		Progress: stderr,
		// Its own worker id: a worker removes the containers labelled with
		// its id when it starts, and must not take another worker's (the
		// default, the hostname, is any id-less worker's on this host).
		Worker: worker.Config{ID: "run-" + filepath.Base(dir)},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded brig: %w", err)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = stack.Stop(sctx)
		os.RemoveAll(dir)
	}
	nc, err := stack.Connect(auth.User{Role: auth.RoleClient, Tenant: tenant, Name: "brig-run"})
	if err != nil {
		stop()
		return nil, err
	}
	client, err := sdk.New(nc, sdk.WithTenant(tenant))
	if err != nil {
		nc.Close()
		stop()
		return nil, err
	}
	return &jobConn{Client: client, nc: nc, tenant: tenant, close: func() { client.Close(); nc.Close(); stop() }}, nil
}

// printEvent writes ev as one line of JSON, as brig stores it: no HTML
// escaping, the job's output as the job wrote it.
func printEvent(w io.Writer, ev *schema.Event) {
	data, err := schema.MarshalEvent(ev)
	if err != nil {
		data, _ = schema.Marshal(ev)
	}
	_, _ = w.Write(append(data, '\n'))
}
