package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/brig-dev/brig/schema"
)

// echoFunction is brig's built-in function that runs no container: its
// result carries the job's stdin as stdout and its args as output.
const echoFunction = "echo"

// jobRunner runs a job to its terminal event, with the errors of
// sdk.Client.Run.
type jobRunner interface {
	Run(ctx context.Context, job schema.Job) (*schema.Event, error)
}

// pythonJob runs the one-liner through brig as a job of function and
// checks what it printed. singleUse false asks for reuse mode.
func pythonJob(c jobRunner, function string, singleUse bool) func(context.Context) error {
	return func(ctx context.Context) error {
		job := schema.Job{Function: function, Code: oneLiner}
		if !singleUse {
			job.SingleUse = schema.Ptr(false)
		}
		ev, err := c.Run(ctx, job)
		if err != nil {
			return jobErr(ev, err)
		}
		if ev.Stdout != "hello\n" || ev.ExitCode != 0 {
			return fmt.Errorf("brig job %s printed %q with exit code %d (stderr %q), want %q and 0",
				ev.JobID, ev.Stdout, ev.ExitCode, ev.Stderr, "hello\n")
		}
		return nil
	}
}

// echoJob runs a job of the echo function with a stdin and args of its
// own and checks that both come back.
func echoJob(c jobRunner) func(context.Context) error {
	var seq atomic.Int64
	return func(ctx context.Context) error {
		i := seq.Add(1)
		stdin := fmt.Sprintf("echo %d\n", i)
		args := json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
		ev, err := c.Run(ctx, schema.Job{Function: echoFunction, Stdin: stdin, Args: args})
		if err != nil {
			return jobErr(ev, err)
		}
		if ev.Stdout != stdin || ev.ExitCode != 0 || !sameJSON(ev.Output, args) {
			return fmt.Errorf("brig echo job %s returned stdout %q, output %s, exit code %d; want %q, %s, 0",
				ev.JobID, ev.Stdout, ev.Output, ev.ExitCode, stdin, args)
		}
		return nil
	}
}

// jobErr adds what a failed job wrote on stderr to its error.
func jobErr(ev *schema.Event, err error) error {
	if ev != nil && ev.Stderr != "" {
		return fmt.Errorf("%w (stderr %q)", err, ev.Stderr)
	}
	return err
}

// sameJSON reports whether a and b are the same JSON text but for
// insignificant whitespace.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
