package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// The tests below make the calls of sdk's Examples (sdk/example_test.go)
// against the shared stack, connecting as a user's program does, and check
// that they print what the Examples' comments say. sdk's own directory
// compiles the Examples without running them: a module that imports sdk
// must not inherit Docker and nats-server through sdk's tests.

// exampleClient connects as the Examples do: Connect, with the default
// tenant's credential.
func exampleClient(ctx context.Context, t *testing.T) *sdk.Client {
	t.Helper()
	c, err := sdk.Connect(ctx, stack.URL(), sdk.WithCreds(stack.ClientCreds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// wantPrinted compares what an Example's calls printed with its comments.
func wantPrinted(t *testing.T, got *strings.Builder, want string) {
	t.Helper()
	if got.String() != want {
		t.Errorf("printed %q, want %q", got.String(), want)
	}
}

// sdk's Example: Run submits a job and waits for its terminal event.
func TestSDKExample(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	c := exampleClient(ctx, t)

	var out strings.Builder
	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `print(6 * 7)`})
	if err != nil {
		t.Fatalf("run: %v (%s)", err, brief(res))
	}
	fmt.Fprint(&out, res.Status, " ", res.Stdout)
	wantPrinted(t, &out, "succeeded 42\n")
}

// sdk's ExampleClient_Submit: the handle's events arrive as the job runs.
func TestSDKExampleClientSubmit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	c := exampleClient(ctx, t)

	h, err := c.Submit(ctx, schema.Job{Function: "python", Code: `print("working")`})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	var out, stdout strings.Builder
	for ev := range h.Events() {
		switch ev.Type {
		case schema.EventStarted:
			fmt.Fprintln(&out, "started")
		case schema.EventOutput:
			if ev.Stream == schema.StreamStdout {
				stdout.WriteString(ev.Data)
			}
		case schema.EventResult:
			fmt.Fprint(&out, "stdout: ", stdout.String())
			fmt.Fprintln(&out, "ended:", ev.Status)
		}
	}
	wantPrinted(t, &out, "started\nstdout: working\nended: succeeded\n")
}

// sdk's ExampleClient_Run_timeout: a job's failure is an error that
// errors.Is classifies, and the terminal event comes back too.
func TestSDKExampleClientRunTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	c := exampleClient(ctx, t)

	var out strings.Builder
	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `while True: pass`, TimeoutMS: 1000})
	if errors.Is(err, sdk.ErrTimeout) {
		fmt.Fprintln(&out, "timed out:", res.Status, res.Error.Type)
	}
	wantPrinted(t, &out, "timed out: timeout Timeout\n")
	if t.Failed() {
		t.Logf("run: %v (%s)", err, brief(res))
	}
}

// sdk's ExampleClient_Watch: Watch picks a job up again by its key and
// replays it from its first event.
func TestSDKExampleClientWatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	c := exampleClient(ctx, t)

	done, err := c.Run(ctx, schema.Job{Function: "python", Code: `import sys; sys.exit(3)`})
	if done == nil {
		t.Fatalf("run: no terminal event: %v", err)
	}
	h, err := c.Watch(ctx, done.JobID)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	var out strings.Builder
	res, err := h.Result(ctx)
	if res == nil {
		t.Fatalf("watch: no terminal event: %v", err)
	}
	fmt.Fprintln(&out, res.Status, res.ExitCode, errors.Is(err, sdk.ErrFailed))
	wantPrinted(t, &out, "failed 3 true\n")
}
