package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/testenv"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// serverURL is the NATS URL of the brig the examples run against, and
// credsFile the credential of its default tenant.
var serverURL, credsFile string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk examples need Docker and the python image:", err)
		os.Exit(1)
	}
	serverURL, credsFile = env.Stack.URL(), env.Stack.ClientCreds
	code := m.Run()
	if err := env.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// Run submits a job and waits for its terminal event.
func Example() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, serverURL, sdk.WithCreds(credsFile))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `print(6 * 7)`})
	if err != nil {
		panic(err)
	}
	fmt.Print(res.Status, " ", res.Stdout)
	// Output: succeeded 42
}

// Submit returns a handle whose events arrive as the job runs.
func ExampleClient_Submit() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, serverURL, sdk.WithCreds(credsFile))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	h, err := c.Submit(ctx, schema.Job{Function: "python", Code: `print("working")`})
	if err != nil {
		panic(err)
	}
	defer h.Stop()
	var stdout strings.Builder
	for ev := range h.Events() {
		switch ev.Type {
		case schema.EventStarted:
			fmt.Println("started")
		case schema.EventOutput: // chunks, as the job writes them
			if ev.Stream == schema.StreamStdout {
				stdout.WriteString(ev.Data)
			}
		case schema.EventResult:
			fmt.Print("stdout: ", stdout.String())
			fmt.Println("ended:", ev.Status)
		}
	}
	// Output:
	// started
	// stdout: working
	// ended: succeeded
}

// A job's failure is an error that errors.Is can classify; the terminal
// event comes back too.
func ExampleClient_Run_timeout() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, serverURL, sdk.WithCreds(credsFile))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `while True: pass`, TimeoutMS: 1000})
	if errors.Is(err, sdk.ErrTimeout) {
		fmt.Println("timed out:", res.Status, res.Error.Type)
	}
	// Output: timed out: timeout Timeout
}

// Watch picks a job up again by id (or by its key, an event's job_id) and
// replays it from its first event.
func ExampleClient_Watch() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, serverURL, sdk.WithCreds(credsFile))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	done, _ := c.Run(ctx, schema.Job{Function: "python", Code: `import sys; sys.exit(3)`})

	h, err := c.Watch(ctx, done.JobID)
	if err != nil {
		panic(err)
	}
	defer h.Stop()
	res, err := h.Result(ctx)
	fmt.Println(res.Status, res.ExitCode, errors.Is(err, sdk.ErrFailed))
	// Output: failed 3 true
}
