package schema

import (
	"encoding/json"
	"time"
)

// EventType is what an event says about its job (docs/design.md §2.3). It
// is also the last token of the event's subject (EventSubject).
type EventType string

// Event types. The last four are terminal: exactly one per job (IsTerminal).
const (
	EventAccepted  EventType = "accepted"
	EventStarted   EventType = "started"
	EventOutput    EventType = "output"
	EventAuthError EventType = "auth_error"
	// EventEgressDenied: the sandbox's filtering proxy refused one of the
	// job's connections or DNS queries (docs/design.md §12).
	EventEgressDenied EventType = "egress_denied"
	EventResult       EventType = "result"
	EventTimeout      EventType = "timeout"
	EventError        EventType = "error"
	EventCancelled    EventType = "cancelled"
)

// Status is how a job ended, on its terminal event; TerminalType says which
// event type carries it.
type Status string

// Terminal statuses.
const (
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusOOM       Status = "oom"
	StatusCancelled Status = "cancelled"
	StatusRejected  Status = "rejected"
	StatusError     Status = "error"
)

// ErrorType says why a job did not succeed, in a terminal event's
// error.type; docs/design.md §2.4 says which status each goes with, and
// when.
type ErrorType string

// Error types carried in a terminal event's error.type.
const (
	ErrAuthError      ErrorType = "AuthError"
	ErrTimeout        ErrorType = "Timeout"
	ErrOOM            ErrorType = "OOM"
	ErrInvalidJob     ErrorType = "InvalidJob"
	ErrNotFound       ErrorType = "NotFound"
	ErrCancelled      ErrorType = "Cancelled"
	ErrNonZeroExit    ErrorType = "NonZeroExit"
	ErrInfrastructure ErrorType = "Infrastructure"
	// ErrQuotaExceeded: a job or tenant went past a documented bound
	// (storage, resources, calls, request rate) and its code failed after.
	ErrQuotaExceeded ErrorType = "QuotaExceeded"
	// ErrEgressDenied: a job's connection was refused (docs/design.md).
	ErrEgressDenied ErrorType = "EgressDenied"
)

// Error types of a request that is not a job (the functions API,
// docs/design.md §2.4, §3.1): never a terminal event's.
const (
	// ErrInvalidFunction: a function definition failed decoding or
	// validation; the answer names the field.
	ErrInvalidFunction ErrorType = "InvalidFunction"
	// ErrForbidden: the request needs an admin (a field only an admin may
	// set, or a global or built-in function to change).
	ErrForbidden ErrorType = "Forbidden"
	// ErrBusy: the dispatcher had too many requests in hand; ask again.
	ErrBusy ErrorType = "Busy"
)

// OutputStream names the stream an output event's data came from.
type OutputStream string

// Output streams of an output event.
const (
	StreamStdout OutputStream = "stdout"
	StreamStderr OutputStream = "stderr"
)

// Event is everything a job emits, on brig.events.<job_id>.<type>.
type Event struct {
	// JobID is the job's key, <tenant>.<id> (JobKey).
	JobID   string    `json:"job_id"`
	Type    EventType `json:"type"`
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Attempt int       `json:"attempt"`

	// output
	Stream OutputStream `json:"stream,omitempty"`
	Data   string       `json:"data,omitempty"`

	// auth_error
	Resource string `json:"resource,omitempty"`
	Action   string `json:"action,omitempty"`
	Message  string `json:"message,omitempty"`
	// AuthErrorCount, on a terminal event, is how many resource calls the
	// attempt was denied in all (AuthErrors lists the first few); on the
	// summary auth_error event that follows MaxAuthErrorEvents single ones,
	// the same total.
	AuthErrorCount int `json:"auth_error_count,omitempty"`

	// egress_denied: what the job tried to reach (Host, Port) and why it
	// was refused (Reason, one of the EgressReason values; Message says
	// more). EgressDeniedCount, on a terminal event, is how many refusals
	// the attempt had in all (EgressDenials lists the first few); on the
	// summary egress_denied event that follows MaxEgressDeniedEvents single
	// ones, the same total.
	Host              string       `json:"host,omitempty"`
	Port              int          `json:"port,omitempty"`
	Reason            EgressReason `json:"reason,omitempty"`
	EgressDeniedCount int          `json:"egress_denied_count,omitempty"`

	// accepted: the job's reply_to, so that whoever ends the job later (a
	// cancellation while it is queued) copies the terminal event there too.
	ReplyTo string `json:"reply_to,omitempty"`
	// SubmitSeq, on accepted: the BRIG_SUBMIT stream sequence of the
	// submission brig accepted as this job. A rejection that comes later
	// from that same submission (a redelivery) ends the job; one from any
	// other submission of the same id never touches it.
	SubmitSeq uint64 `json:"submit_seq,omitempty"`

	// started
	Worker string `json:"worker,omitempty"`
	// Container is the Docker id of the container running the attempt.
	Container string `json:"container,omitempty"`
	// Sandbox says how that container came to the job: SandboxCold,
	// SandboxPrewarmed or SandboxReused.
	Sandbox SandboxKind `json:"sandbox,omitempty"`

	// terminal
	Status          Status          `json:"status,omitempty"`
	ExitCode        int             `json:"exit_code"`
	Stdout          string          `json:"stdout,omitempty"`
	Stderr          string          `json:"stderr,omitempty"`
	StdoutTruncated bool            `json:"stdout_truncated,omitempty"`
	StderrTruncated bool            `json:"stderr_truncated,omitempty"`
	Output          json.RawMessage `json:"output,omitempty"`
	// OutputError says why the job's result.json is not in Output (too
	// large, too deep, not JSON): the job's business, not brig's failure.
	OutputError string      `json:"output_error,omitempty"`
	DurationMS  int64       `json:"duration_ms,omitempty"`
	AuthErrors  []AuthError `json:"auth_errors,omitempty"`
	// EgressDenials are the attempt's first refused connections.
	EgressDenials []EgressDenial `json:"egress_denials,omitempty"`
	// Trace is when the job reached each stage (terminal events of jobs
	// that were dispatched).
	Trace *Trace     `json:"trace,omitempty"`
	Error *ErrorInfo `json:"error,omitempty"`
}

// SandboxKind says how a started job's container came to it.
type SandboxKind string

// Sandbox kinds of a started event.
const (
	SandboxCold      SandboxKind = "cold"      // created, attached and started for the job
	SandboxPrewarmed SandboxKind = "prewarmed" // started before the job; serves it alone
	SandboxReused    SandboxKind = "reused"    // served earlier jobs of the function (single_use: false)
)

// Trace times a job through brig: Queued when its submission was stored,
// Dispatched when a dispatcher routed it to its pool, Started when a worker
// handed it to a container (zero if it never got one), Finished when its
// outcome was known.
type Trace struct {
	Queued     time.Time `json:"queued"`
	Dispatched time.Time `json:"dispatched"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished"`
}

// AuthError is one denied resource call.
type AuthError struct {
	Resource string `json:"resource"`
	Action   string `json:"action"`
	Message  string `json:"message"`
}

// EgressDenial is one refused connection or DNS query of a job with an
// egress list.
type EgressDenial struct {
	// Host is the name (or address) the job tried to reach, as the job
	// gave it, at most MaxEgressHostBytes.
	Host    string       `json:"host"`
	Port    int          `json:"port"`
	Reason  EgressReason `json:"reason"`
	Message string       `json:"message"`
}

// EgressReason says why the proxy refused a connection.
type EgressReason string

// Reasons for an egress refusal (docs/design.md §12).
const (
	// EgressNotAllowed: the name, or the port for that name, is not on the
	// job's list (a DNS query, a TLS SNI, an HTTP Host, a CONNECT target).
	EgressNotAllowed EgressReason = "not_allowed"
	// EgressIPLiteral: an IP address where a name must be (SNI, Host,
	// CONNECT without an admin's CIDR entry), or a connection to an
	// address brig's DNS did not hand out.
	EgressIPLiteral EgressReason = "ip_literal"
	// EgressMismatch: the TLS SNI or HTTP Host is not the name the
	// connection was opened for (domain fronting), or missing.
	EgressMismatch EgressReason = "mismatch"
	// EgressNotPublic: the name resolved only to addresses the job may
	// never reach: this host, private, loopback, link-local, metadata.
	EgressNotPublic EgressReason = "not_public"
	// EgressProtocol: the connection spoke neither TLS nor HTTP/1.x, or
	// asked for what the proxy does not pass (ECH, an upgrade, a DNS
	// query type other than A or AAAA...).
	EgressProtocol EgressReason = "protocol"
	// EgressLimit: the sandbox went past a documented bound of its proxy
	// (connections at once, names).
	EgressLimit EgressReason = "limit"
)

// ErrorInfo says why a job did not succeed.
type ErrorInfo struct {
	Type    ErrorType `json:"type"`
	Message string    `json:"message"`
}

// IsTerminal reports whether an event type ends a job.
func IsTerminal(t EventType) bool {
	switch t {
	case EventResult, EventTimeout, EventError, EventCancelled:
		return true
	}
	return false
}

// TerminalType is the event type that carries a terminal status.
func TerminalType(status Status) EventType {
	switch status {
	case StatusSucceeded, StatusFailed, StatusOOM:
		return EventResult
	case StatusTimeout:
		return EventTimeout
	case StatusCancelled:
		return EventCancelled
	}
	return EventError
}
