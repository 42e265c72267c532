// Package schema holds brig's public wire types: the Job a client submits, the
// Events a job emits, and the Work message a dispatcher hands to a worker.
//
// Every message is decoded strictly where it enters the system: unknown
// fields, wrong types, trailing data and oversize payloads are errors that
// name the offending field.
//
//	job, err := schema.DecodeJob(data, 0)
//	if err != nil {
//		var fe *schema.FieldError
//		if errors.As(err, &fe) { /* fe.Field names the problem */ }
//	}
package schema
