// Package worker runs jobs from its pools, each in a sandbox of its own.
//
// A Worker pulls work for its pools only while it has free slots (no
// prefetch buffer), verifies each job's credential, has it run in a
// sandbox (internal/sandbox: a locked-down Docker container with every
// isolation default of docs/design.md §5 and brig's own init in it), binds
// the sandbox's gateway socket to the job, streams the job's output as
// events, retries as the job and brig's failures call for, and publishes
// exactly one terminal event before it acks. Containers it left behind in
// an earlier life are removed at Start.
//
//	docker, _ := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
//	w, err := worker.New(worker.Config{Conn: nc, Docker: docker, Logger: log})
//	if err != nil { ... }
//	if err := w.Start(ctx); err != nil { ... }
//	defer w.Stop(ctx)
package worker
