package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
	"github.com/brig-dev/brig/schema"
)

// setupGateway prepares what every job's gateway needs: the key ring and
// the gateway itself.
func (w *Worker) setupGateway(ctx context.Context) error {
	replicas := w.cfg.Streams.WithDefaults().Replicas
	ring, err := signing.OpenRing(ctx, w.js, replicas)
	if err != nil {
		return err
	}
	w.ring = ring
	w.gw, err = gateway.New(gateway.Config{
		JS:   w.js,
		Keys: ring.Func,
		// Child jobs (function.call) are submitted, followed and cancelled
		// through an SDK client of the calling job's tenant on the worker's
		// connection, which may use every tenant's subjects and inboxes.
		Conn:     w.cfg.Conn,
		Replicas: replicas,
		Logger:   w.log,
	})
	return err
}

// checkCredential verifies the token a dispatcher minted for the work.
func (w *Worker) checkCredential(ctx context.Context, work *schema.Work) error {
	claims, err := token.Verify(work.Token, w.ring.Func(ctx), time.Now())
	switch {
	case errors.Is(err, token.ErrExpired):
		return &jobFailure{errType: schema.ErrTimeout, status: schema.StatusTimeout,
			msg: "the job's credential expired before it could run (it waited in the queue too long)"}
	case errors.Is(err, token.ErrMalformed), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrUnknownKey):
		return &jobFailure{errType: schema.ErrInfrastructure, status: schema.StatusError,
			msg: "the work message carries an invalid credential: " + err.Error()}
	case err != nil:
		return fmt.Errorf("verify credential of job %s: %w", work.Job.ID, err)
	case claims.JobID != work.Job.ID || claims.Function != work.Spec.Function:
		return &jobFailure{errType: schema.ErrInfrastructure, status: schema.StatusError,
			msg: "the work message carries another job's credential"}
	}
	return nil
}

// jobFailure is a failure of the worker's own that retrying cannot fix
// (the job's credential): it ends the job.
type jobFailure struct {
	errType schema.ErrorType
	status  schema.Status
	msg     string
}

func (f *jobFailure) Error() string { return f.msg }

// refusals tallies one job's refused gateway calls: the first
// schema.MaxTerminalAuthErrors denials and how many in all, and the first
// call refused for a quota or the request rate.
type refusals struct {
	mu         sync.Mutex
	denied     []schema.AuthError
	deniedN    int
	quota      *gateway.Error
	egress     []schema.EgressDenial // the first distinct refusals
	egressN    int                   // every refusal
	egressSeen map[egressKey]struct{}
	egressOver bool // a distinct refusal came past the event bound
}

// binding is the gateway binding of work's job, which its sandbox's socket
// gets when the job is handed over (the sandbox sets its Deadline then).
// onDenied hears of the first schema.MaxAuthErrorEvents denials one by
// one; later ones are only counted, so that a job looping on denied calls
// costs brig a counter, not an event each (docs/design.md §13).
func (r *refusals) binding(work *schema.Work, onDenied func(schema.AuthError)) gateway.Binding {
	return gateway.Binding{
		JobID:  work.Job.ID,
		Quotas: work.Spec.Quotas,
		OnQuotaExceeded: func(qe *gateway.Error) {
			r.mu.Lock()
			if r.quota == nil {
				r.quota = qe
			}
			r.mu.Unlock()
		},
		OnDenied: func(ae schema.AuthError) {
			ae = ae.Clipped() // docs/design.md §13
			r.mu.Lock()
			r.deniedN++
			n := r.deniedN
			if len(r.denied) < schema.MaxTerminalAuthErrors {
				r.denied = append(r.denied, ae)
			}
			r.mu.Unlock()
			if n <= schema.MaxAuthErrorEvents {
				onDenied(ae)
			}
		},
	}
}

// onEgressDenied tallies the job's refused connections and DNS queries and
// passes each distinct refusal (host, port and reason) to onDenied once: a
// resolver asking again, or a client retrying, is counted, not reported
// again. At most schema.MaxEgressDeniedEvents are passed on, and the terminal
// event lists the first schema.MaxTerminalEgressDenials (docs/design.md §13).
func (r *refusals) onEgressDenied(onDenied func(schema.EgressDenial)) func(schema.EgressDenial) {
	return func(d schema.EgressDenial) {
		d = d.Clipped()
		key := egressKey{d.Host, d.Port, d.Reason}
		r.mu.Lock()
		r.egressN++
		_, seen := r.egressSeen[key]
		report := !seen && len(r.egressSeen) < schema.MaxEgressDeniedEvents
		r.egressOver = r.egressOver || !seen && !report
		if report {
			if r.egressSeen == nil {
				r.egressSeen = map[egressKey]struct{}{}
			}
			r.egressSeen[key] = struct{}{}
			if len(r.egress) < schema.MaxTerminalEgressDenials {
				r.egress = append(r.egress, d)
			}
		}
		r.mu.Unlock()
		if report {
			onDenied(d)
		}
	}
}

// egressKey is what makes two refusals the same.
type egressKey struct {
	host   string
	port   int
	reason schema.EgressReason
}

// egressDenials returns the first distinct refusals, how many refusals
// there were in all, and whether every distinct one was reported (false
// once more than schema.MaxEgressDeniedEvents came: a summary is due).
func (r *refusals) egressDenials() ([]schema.EgressDenial, int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]schema.EgressDenial(nil), r.egress...), r.egressN, !r.egressOver
}

// authErrors returns the first denials and how many there were in all.
func (r *refusals) authErrors() ([]schema.AuthError, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]schema.AuthError(nil), r.denied...), r.deniedN
}

// quotaError returns the first call refused for a quota or the request
// rate, or nil.
func (r *refusals) quotaError() *gateway.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.quota
}
