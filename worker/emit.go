package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/brig-dev/brig/internal/gateway"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// emitter numbers and publishes one attempt's events. Seq 1 is the
// dispatcher's accepted event; the worker's start at 2.
type emitter struct {
	w       *Worker
	job     *schema.Job
	attempt int
	mu      sync.Mutex
	seq     int64
	started time.Time // when the job got its sandbox, if it did
}

func (e *emitter) startedAt(t time.Time) {
	e.mu.Lock()
	e.started = t
	e.mu.Unlock()
}

// trace times the job for its terminal event, finished now.
func (e *emitter) trace(work *schema.Work) *schema.Trace {
	e.mu.Lock()
	defer e.mu.Unlock()
	queued := work.SubmittedAt
	if queued.IsZero() {
		queued = work.AcceptedAt
	}
	return &schema.Trace{Queued: queued, Dispatched: work.AcceptedAt, Started: e.started.UTC(), Finished: time.Now().UTC()}
}

func (e *emitter) next(ev *schema.Event) *schema.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	ev.JobID, ev.Seq, ev.Attempt = e.job.ID, e.seq, e.attempt
	if !schema.IsTerminal(ev.Type) {
		ev.ExitCode = -1
	}
	return ev
}

// publish sends a non-terminal event; a failure is logged, not fatal.
func (e *emitter) publish(ctx context.Context, ev *schema.Event, log *slog.Logger) {
	if _, err := e.w.pub.Publish(ctx, e.next(ev), e.job.ReplyTo); err != nil {
		log.Warn("publish event", "type", ev.Type, "err", err)
	}
}

func (e *emitter) terminal(status schema.Status, errType schema.ErrorType, msg string) *schema.Event {
	ev := &schema.Event{Type: schema.TerminalType(status), Status: status, ExitCode: -1}
	if errType != "" {
		ev.Error = &schema.ErrorInfo{Type: errType, Message: msg}
	}
	return e.next(ev)
}

// cancelledMessage is the error message of a job cancelled while it ran.
const cancelledMessage = "job cancelled by request while it ran"

// fromOutcome builds the terminal event of a job that ran. An interrupted
// Outcome that gets here was cancelled by request (execute hands back a
// job interrupted by a shutdown): like a timeout's, its event keeps the
// output the job wrote until it was killed.
func (e *emitter) fromOutcome(out *sandbox.Outcome, spec schema.RunSpec) *schema.Event {
	var ev *schema.Event
	switch {
	case out.Interrupted != nil:
		ev = e.terminal(schema.StatusCancelled, schema.ErrCancelled, cancelledMessage)
	case out.TimedOut:
		ev = e.terminal(schema.StatusTimeout, schema.ErrTimeout, fmt.Sprintf("job exceeded its timeout of %s and was killed", spec.Timeout()))
	case out.Tampered:
		ev = e.terminal(schema.StatusFailed, schema.ErrNonZeroExit,
			"the job wrote into brig's channel from its init (frames that fail authentication); its output and exit status were discarded")
	case out.OOM:
		ev = e.terminal(schema.StatusOOM, schema.ErrOOM, fmt.Sprintf("job ran out of memory (limit %d MB) and was killed", spec.Limits.MemoryMB))
		if out.Exit != nil {
			ev.ExitCode = out.Exit.ExitCode
		}
	case out.Exit == nil && initEndedByJob(out):
		// Nothing but the job runs in the sandbox beside the init, and it
		// shares the init's uid: it can lower the init's limits (a CPU
		// limit kills it, a thread limit starves Go's runtime) and, under
		// gVisor, signal it. That is the job's doing, never brig's failure.
		ev = e.terminal(schema.StatusFailed, schema.ErrNonZeroExit, initKilledMessage(out.ContainerExitCode, spec.Runtime))
		ev.ExitCode = out.ContainerExitCode
	case out.Exit == nil:
		initLog, _ := out.InitLog.Result()
		ev = e.terminal(schema.StatusError, schema.ErrInfrastructure,
			fmt.Sprintf("sandbox ended without reporting a result (container exit code %d): %s", out.ContainerExitCode, initLog))
	case out.Exit.ExitCode == 0:
		ev = e.terminal(schema.StatusSucceeded, "", "")
		ev.ExitCode = 0
	default:
		ev = e.terminal(schema.StatusFailed, schema.ErrNonZeroExit, exitMessage(out.Exit.ExitCode, out.Exit.Signal))
		ev.ExitCode = out.Exit.ExitCode
	}
	if !out.Tampered { // a tampering job's output is discarded
		ev.Stdout, ev.StdoutTruncated = out.Stdout.Result()
		ev.Stderr, ev.StderrTruncated = out.Stderr.Result()
	}
	if out.Exit != nil {
		ev.Output, ev.OutputError = jobOutput(out.Exit)
		ev.DurationMS = time.Duration(out.Exit.DurationNS).Milliseconds()
	}
	return ev
}

// initEndedByJob reports whether a sandbox whose init never reported
// ended the way only something inside it could have made it end: killed by
// a signal (brig's own kills are timeouts and cancellations, told apart
// before; an OOM kill is told apart too) or starved by Go's runtime of a
// thread or memory it needed.
func initEndedByJob(out *sandbox.Outcome) bool {
	if out.ContainerExitCode > 128 {
		return true
	}
	initLog, _ := out.InitLog.Result()
	return out.ContainerExitCode == 2 && strings.Contains(initLog, "fatal error:") && !strings.Contains(initLog, "panic:")
}

// initKilledMessage says why a sandbox ended without its init's report.
// Under gVisor a SIGKILL (137) may also be the kernel's OOM killer ending
// the whole sandbox when the job ran out of memory, which Docker does not
// always report as an OOM kill.
func initKilledMessage(containerExit int, runtime string) string {
	msg := fmt.Sprintf("the sandbox ended without reporting a result: its init was killed (container exit code %d) by what ran beside it; "+
		"a job shares the init's uid and can lower its limits, or under gVisor signal it", containerExit)
	if runtime == schema.RuntimeRunsc && containerExit == 137 {
		msg += "; under gVisor a SIGKILL is also how a sandbox that ran out of memory ends"
	}
	return msg
}

func exitMessage(code, signal int) string {
	if signal != 0 {
		return fmt.Sprintf("job was killed by signal %d", signal)
	}
	return fmt.Sprintf("job exited with code %d", code)
}

// blameQuota says why a job that failed after a refused call failed: it
// went past a quota (or the request rate). blameDenials runs after it, so
// a denied call, when there was one too, is what the job is blamed for.
func blameQuota(ev *schema.Event, qe *gateway.Error) {
	if qe == nil || ev.Status != schema.StatusFailed {
		return
	}
	ev.Error = &schema.ErrorInfo{Type: schema.ErrQuotaExceeded, Message: schema.ClipText(
		"job failed after a call went past a limit: "+qe.Type+": "+qe.Message, schema.MaxEventTextBytes)}
}

// blameEgress records a job's first refused connections and their count
// in its terminal event; a job that failed after one failed because of it,
// unless a quota or a denied resource call (blameQuota and blameDenials,
// after it) is to blame (docs/design.md §2.4).
func blameEgress(ev *schema.Event, refused []schema.EgressDenial, total int) {
	if total == 0 {
		return
	}
	ev.EgressDenials, ev.EgressDeniedCount = refused, total
	if ev.Status == schema.StatusFailed && len(refused) > 0 {
		first := refused[0]
		ev.Error = &schema.ErrorInfo{Type: schema.ErrEgressDenied, Message: schema.ClipText(fmt.Sprintf(
			"job failed after %d refused connection(s); first: %s port %d: %s: %s", total, first.Host, first.Port, first.Reason, first.Message), schema.MaxEventTextBytes)}
	}
}

// blameDenials records a job's first denied calls and their count in its
// terminal event; a job that failed after one failed because of it, as far
// as its caller is concerned.
func blameDenials(ev *schema.Event, denied []schema.AuthError, total int) {
	if total == 0 {
		return
	}
	ev.AuthErrors, ev.AuthErrorCount = denied, total
	if ev.Status == schema.StatusFailed && len(denied) > 0 {
		first := denied[0]
		ev.Error = &schema.ErrorInfo{Type: schema.ErrAuthError, Message: schema.ClipText(fmt.Sprintf(
			"job failed after %d denied resource call(s); first: %s %s: %s", total, first.Action, first.Resource, first.Message), schema.MaxEventTextBytes)}
	}
}

// outputPump coalesces output chunks into events, published in order off
// the frame-reading path: the first chunk goes out at once, later ones are
// gathered for up to pumpFlushEvery. close flushes without waiting.
type outputPump struct {
	em      *emitter
	log     *slog.Logger
	ctx     context.Context
	mu      sync.Mutex
	buf     map[schema.OutputStream][]byte
	order   []schema.OutputStream
	wake    chan struct{}
	closing chan struct{}
	done    chan struct{}
	closed  sync.Once
	sent    int // events published; only run's goroutine touches it
}

// An attempt's output events: the first pumpFastEvents gather for
// pumpFlushEvery, later ones for pumpSlowEvery, so that a job trickling a
// byte at a time makes at most pumpFastEvents + one event a second (plus
// one per pumpMaxChunk of output, which output_bytes caps) however long it
// runs (docs/design.md §13).
const (
	pumpFlushEvery = 50 * time.Millisecond
	pumpSlowEvery  = time.Second
	pumpFastEvents = 100
	pumpMaxChunk   = 64 << 10
)

func newOutputPump(ctx context.Context, em *emitter, log *slog.Logger) *outputPump {
	p := &outputPump{
		em: em, log: log, ctx: ctx, buf: map[schema.OutputStream][]byte{},
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
	}
	go p.run()
	return p
}

func (p *outputPump) add(stream schema.OutputStream, data []byte) {
	p.mu.Lock()
	if len(p.buf[stream]) == 0 {
		p.order = append(p.order, stream)
	}
	p.buf[stream] = append(p.buf[stream], data...)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *outputPump) run() {
	defer close(p.done)
	for {
		select {
		case <-p.wake:
		case <-p.closing:
			p.flush(true)
			return
		}
		p.flush(false)
		every := pumpFlushEvery
		if p.sent >= pumpFastEvents {
			every = pumpSlowEvery
		}
		select { // gather what arrives meanwhile into fewer events
		case <-time.After(every):
		case <-p.closing:
			p.flush(true)
			return
		}
	}
}

// flush publishes what is buffered. Unless final, a character split across
// chunks is held back for the next flush, so that no event carries half of
// one (JSON would turn it into U+FFFD).
func (p *outputPump) flush(final bool) {
	for {
		p.mu.Lock()
		if len(p.order) == 0 {
			p.mu.Unlock()
			return
		}
		stream := p.order[0]
		data := p.buf[stream]
		chunk := data[:min(len(data), pumpMaxChunk)]
		if !final || len(chunk) < len(data) {
			chunk = chunk[:wholeRunes(chunk)]
		}
		if len(chunk) == 0 {
			p.mu.Unlock()
			return // only part of a character so far
		}
		if len(chunk) == len(data) {
			p.order = p.order[1:]
			delete(p.buf, stream)
		} else {
			p.buf[stream] = data[len(chunk):]
		}
		p.mu.Unlock()
		p.sent++
		p.em.publish(p.ctx, &schema.Event{Type: schema.EventOutput, Stream: stream, Data: string(chunk)}, p.log)
	}
}

// close flushes what is left and waits for the pump to finish. add must
// not be called after close.
func (p *outputPump) close() {
	p.closed.Do(func() { close(p.closing) })
	<-p.done
}

// wholeRunes returns the length of p without an incomplete UTF-8 character
// at its end.
func wholeRunes(p []byte) int {
	for i := 1; i < utf8.UTFMax && i <= len(p); i++ {
		if utf8.RuneStart(p[len(p)-i]) {
			if utf8.FullRune(p[len(p)-i:]) {
				return len(p)
			}
			return len(p) - i
		}
	}
	return len(p)
}
