package sdk_test

// These examples need a running brig (`brig dev` serves one at
// nats://127.0.0.1:4222 and writes its client credential,
// ~/.local/share/brig/creds/default.creds), so `go test` compiles them but
// does not run them: a module that imports sdk must not inherit a test
// environment of Docker and nats-server through sdk's own tests (go mod
// tidy follows them). e2e/sdk_example_test.go makes the same calls
// against a real brig and checks what the comments below say they print.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// Run submits a job and waits for its terminal event.
func Example() {
	ctx := context.Background()
	// brig's servers refuse anonymous clients: connect with the tenant's
	// credential (brig dev's is ~/.local/share/brig/creds/default.creds).
	c, err := sdk.Connect(ctx, "nats://127.0.0.1:4222", sdk.WithCreds("default.creds"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `print(6 * 7)`})
	if err != nil {
		panic(err)
	}
	fmt.Print(res.Status, " ", res.Stdout) // succeeded 42
}

// Submit returns a handle whose events arrive as the job runs.
func ExampleClient_Submit() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, "nats://127.0.0.1:4222", sdk.WithCreds("default.creds"))
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
			fmt.Print("stdout: ", stdout.String()) // stdout: working
			fmt.Println("ended:", ev.Status)       // ended: succeeded
		}
	}
}

// A job's failure is an error that errors.Is can classify; the terminal
// event comes back too.
func ExampleClient_Run_timeout() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, "nats://127.0.0.1:4222", sdk.WithCreds("default.creds"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `while True: pass`, TimeoutMS: 1000})
	if errors.Is(err, sdk.ErrTimeout) {
		fmt.Println("timed out:", res.Status, res.Error.Type) // timed out: timeout Timeout
	}
}

// Watch picks a job up again by id (or by its key, an event's job_id) and
// replays it from its first event.
func ExampleClient_Watch() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, "nats://127.0.0.1:4222", sdk.WithCreds("default.creds"))
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
	fmt.Println(res.Status, res.ExitCode, errors.Is(err, sdk.ErrFailed)) // failed 3 true
}

// A client made WithCancelOnDone cancels a Run's job when the Run's
// context ends first; without it the job would run on, here for its whole
// 15 minutes.
func ExampleWithCancelOnDone() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, "nats://127.0.0.1:4222", sdk.WithCreds("default.creds"), sdk.WithCancelOnDone())
	if err != nil {
		panic(err)
	}
	defer c.Close()

	job := schema.Job{Function: "python", Code: "import time\ntime.sleep(600)"}
	job.SetTimeout(15 * time.Minute) // rounded up to whole milliseconds
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := c.Run(short, job)
	fmt.Println(res.Status, errors.Is(err, context.DeadlineExceeded), errors.Is(err, sdk.ErrCancelled)) // cancelled true true
}

// Handle.Cancel ends a submitted job, queued or running.
func ExampleHandle_Cancel() {
	ctx := context.Background()
	c, err := sdk.Connect(ctx, "nats://127.0.0.1:4222", sdk.WithCreds("default.creds"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	h, err := c.Submit(ctx, schema.Job{Function: "python", Code: "import time\ntime.sleep(600)"})
	if err != nil {
		panic(err)
	}
	defer h.Stop()
	status, err := h.Cancel(ctx)
	if err != nil {
		panic(err)
	}
	res, err := h.Result(ctx)
	fmt.Println(status, res.Status, errors.Is(err, sdk.ErrCancelled)) // cancelled cancelled true
}
