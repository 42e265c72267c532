// Package dispatcher turns submitted jobs into work for a pool of workers.
//
// A Dispatcher pulls from the BRIG_SUBMIT stream through one durable
// consumer shared by every replica, takes each job's tenant from its
// subject (brig.submit.<tenant>.<function>) and names the job by its key
// <tenant>.<id> from then on, checks the tenant's record and max_queued,
// validates each job strictly, resolves its function for the tenant
// (Config.Functions, a functions.Resolver), merges the function's defaults
// with the job's requests into a schema.RunSpec, and publishes a
// schema.Work on brig.work.<pool>. Anything
// it cannot accept ends in a terminal `error` event with status `rejected`
// and the submission is terminated, never redelivered.
//
//	d, err := dispatcher.New(dispatcher.Config{Conn: nc, Logger: log})
//	if err != nil { ... }
//	if err := d.Start(ctx); err != nil { ... }
//	defer d.Stop(ctx)
package dispatcher
