package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// CancelQueue is the queue group in which one dispatcher answers each
// cancellation and each max-deliveries advisory.
const CancelQueue = "brig-dispatchers"

// workerCancelWait is how long a dispatcher gives the worker of a running
// job to end it as cancelled (with its output so far) before ending it
// itself.
const workerCancelWait = 5 * time.Second

// MaxCancels bounds the cancellations one dispatcher handles at once
// (docs/design.md §13.7). Each may wait up to workerCancelWait for a
// running job's worker; past the bound a request is answered at once with
// ErrBusy rather than queued, so a flood of cancellations costs a
// dispatcher a fixed amount of memory.
const MaxCancels = 64

// ErrBusy is the CancelReply error of a cancellation refused because
// MaxCancels are in hand; the caller should try again.
const ErrBusy = schema.BusyAnswer

// CancelReply answers a request on brig.cancel.<key>.
type CancelReply struct {
	// JobID is the job's key.
	JobID string `json:"job_id"`
	// Status is the job's terminal status: cancelled, or how it had already
	// ended.
	Status schema.Status `json:"status,omitempty"`
	Error  string        `json:"error,omitempty"`
	// ErrorType classifies Error: schema.ErrNotFound for a key with no
	// events at all (nothing was stored), schema.ErrInvalidJob for an
	// invalid key.
	ErrorType schema.ErrorType `json:"error_type,omitempty"`
}

// errNoJob is cancelJob's answer for a key with no events.
var errNoJob = errors.New("no such job")

// onCancel ends a job as cancelled. A queued job gets its terminal event
// here, and the worker that later pulls it acks it without running it; a
// running job is killed by its worker, which hears the same message. A key
// with no events at all is answered NotFound and nothing is stored: a
// cancellation never takes a key before its submission does.
func (d *Dispatcher) onCancel(m *nats.Msg) {
	if !d.allowSubject(m.Subject, schema.CancelPrefix) {
		return
	}
	id, ok := schema.KeyFromSubject(m.Subject, schema.CancelPrefix)
	if !ok {
		d.reply(m, CancelReply{JobID: id, Error: "invalid job key", ErrorType: schema.ErrInvalidJob})
		return
	}
	select {
	case d.cancels <- struct{}{}:
	default:
		d.reply(m, CancelReply{JobID: id, Error: ErrBusy})
		return
	}
	go func() {
		defer func() { <-d.cancels }()
		ctx, cancel := context.WithTimeout(d.ctx, workerCancelWait+10*time.Second)
		defer cancel()
		status, err := d.cancelJob(ctx, id)
		r := CancelReply{JobID: id, Status: status}
		switch {
		case errors.Is(err, errNoJob):
			tenant, jobID, _ := schema.SplitJobKey(id)
			r.Error, r.ErrorType = fmt.Sprintf("no job %s in tenant %s", jobID, tenant), schema.ErrNotFound
		case err != nil:
			r.Error = err.Error()
		}
		d.reply(m, r)
	}()
}

func (d *Dispatcher) cancelJob(ctx context.Context, id string) (schema.Status, error) {
	if seen, err := d.events.Has(ctx, id, ""); err != nil {
		return "", err
	} else if !seen {
		return "", errNoJob
	}
	if ev, err := d.events.Terminal(ctx, id); err != nil || ev != nil {
		return statusOf(ev), err
	}
	if started, err := d.events.Has(ctx, id, schema.EventStarted); err != nil {
		return "", err
	} else if started {
		// Its worker kills it and stores a richer terminal event; wait for it.
		deadline := time.Now().Add(workerCancelWait)
		for time.Now().Before(deadline) {
			if ev, err := d.events.Terminal(ctx, id); err == nil && ev != nil {
				return ev.Status, nil
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	ev := &schema.Event{JobID: id, Type: schema.EventCancelled, Status: schema.StatusCancelled, ExitCode: -1,
		Error: &schema.ErrorInfo{Type: schema.ErrCancelled, Message: "job cancelled by request"}}
	// The job's reply_to is in its accepted event (none before that).
	accepted, err := d.events.Find(ctx, id, schema.EventAccepted)
	if err != nil {
		return "", err
	}
	replyTo := ""
	if accepted != nil {
		replyTo = accepted.ReplyTo
	}
	if _, err := d.events.Publish(ctx, ev, replyTo); err != nil {
		return "", err
	}
	// Whoever stored the terminal event first decided the status.
	final, err := d.events.Terminal(ctx, id)
	return statusOf(final), err
}

func statusOf(ev *schema.Event) schema.Status {
	if ev == nil {
		return ""
	}
	return ev.Status
}

func (d *Dispatcher) reply(m *nats.Msg, r CancelReply) {
	// The answer goes only to an inbox of the key's tenant, as a replay's
	// does: the dispatcher may publish where a client may not, and the
	// reply subject is the client's to choose (docs/design.md §10.2).
	if _, ok := answerable(m.Subject, schema.CancelPrefix, m.Reply); !ok {
		if m.Reply != "" {
			d.log.Debug("not answering a cancellation whose reply subject is not an inbox of the job's tenant", "subject", m.Subject, "reply", m.Reply)
		}
		return
	}
	data, _ := schema.Marshal(r)
	if err := m.Respond(data); err != nil {
		d.log.Warn("answer cancellation", "job", r.JobID, "err", err)
	}
}
