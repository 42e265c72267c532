// Package sandbox runs jobs in sandboxes: Docker containers with brig's own
// init as PID 1 and every isolation default of docs/design.md §5. A Runner
// creates, attaches and starts their containers, feeds each job to its
// init, captures its output, enforces its timeout, tells OOM kills and
// tampering apart, and keeps containers for later jobs in two caches: the
// prewarm cache (started single-use sandboxes per template, §8) and the
// reuse cache (sandboxes of functions with single_use: false, §5). It also
// installs the init binary and the in-container Python client, and
// prepares the network of jobs with network: true (§12).
//
// The worker decides what runs and reports it; a Runner only runs it:
//
//	r, err := sandbox.New(sandbox.Config{Engine: docker, WorkerID: id, Slots: 8,
//		InitBinary: exe, RuntimeDir: dir, Listen: listen})
//	if err != nil { ... }
//	if err := r.Start(ctx); err != nil { ... }
//	defer r.Stop(ctx)
//	out, err := r.Run(ctx, &sandbox.Job{Work: work, Binding: binding})
//	if err != nil { ... } // a *Failure ends the job; any other error is brig's
//	defer out.Release()   // once the job's terminal event is out
package sandbox
