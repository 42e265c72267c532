// Package worker runs jobs, each in its own locked-down Docker container.
//
// A Worker pulls work for its pools only while it has free slots (no
// prefetch buffer), starts one container per job with every isolation
// default of docs/design.md §5, feeds the job to brig's own init inside it, streams
// the job's output as events, enforces the timeout, detects OOM kills, and
// publishes exactly one terminal event before it acks. Containers it left
// behind in an earlier life are removed at Start.
//
//	docker, _ := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
//	w, err := worker.New(worker.Config{Conn: nc, Docker: docker, Logger: log})
//	if err != nil { ... }
//	if err := w.Start(ctx); err != nil { ... }
//	defer w.Stop(ctx)
package worker
