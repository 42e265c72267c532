// Package sdk is brig's Go client: submit jobs, follow their events, and
// wait for their results.
//
//	c, err := sdk.Connect(ctx, "nats://127.0.0.1:4222")
//	if err != nil { ... }
//	defer c.Close()
//	res, err := c.Run(ctx, schema.Job{Function: "python", Code: `print("hi")`})
//	switch {
//	case errors.Is(err, sdk.ErrTimeout): ...
//	case errors.As(err, new(*sdk.AuthError)): ...
//	}
//	fmt.Print(res.Stdout)
//
// Every job's events live in the BRIG_EVENTS stream, so a Handle can be
// re-created with Watch after a reconnect or in another process, and replays
// the job from its first event.
//
// A job runs to its own timeout unless it is cancelled: Handle.Cancel or
// Client.Cancel end it, and a client made WithCancelOnDone cancels the job
// of a Run whose context ends first.
package sdk
