package schema

import (
	"encoding/json"
	"time"
)

// Event types. The last four are terminal: exactly one per job.
const (
	EventAccepted  = "accepted"
	EventStarted   = "started"
	EventOutput    = "output"
	EventAuthError = "auth_error"
	EventResult    = "result"
	EventTimeout   = "timeout"
	EventError     = "error"
	EventCancelled = "cancelled"
)

// Terminal statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusTimeout   = "timeout"
	StatusOOM       = "oom"
	StatusCancelled = "cancelled"
	StatusRejected  = "rejected"
	StatusError     = "error"
)

// Error types carried in a terminal event's error.type.
const (
	ErrAuthError      = "AuthError"
	ErrTimeout        = "Timeout"
	ErrOOM            = "OOM"
	ErrInvalidJob     = "InvalidJob"
	ErrNotFound       = "NotFound"
	ErrCancelled      = "Cancelled"
	ErrNonZeroExit    = "NonZeroExit"
	ErrInfrastructure = "Infrastructure"
	// ErrQuotaExceeded: a job or tenant went past a documented bound
	// (storage, resources, calls, request rate) and its code failed after.
	ErrQuotaExceeded = "QuotaExceeded"
	// ErrEgressDenied: a job's connection was refused (docs/design.md).
	ErrEgressDenied = "EgressDenied"
)

// Output streams of an output event.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// Event is everything a job emits, on brig.events.<job_id>.<type>.
type Event struct {
	// JobID is the job's key, <tenant>.<id> (JobKey).
	JobID   string    `json:"job_id"`
	Type    string    `json:"type"`
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Attempt int       `json:"attempt"`

	// output
	Stream string `json:"stream,omitempty"`
	Data   string `json:"data,omitempty"`

	// auth_error
	Resource string `json:"resource,omitempty"`
	Action   string `json:"action,omitempty"`
	Message  string `json:"message,omitempty"`
	// AuthErrorCount, on a terminal event, is how many resource calls the
	// attempt was denied in all (AuthErrors lists the first few); on the
	// summary auth_error event that follows MaxAuthErrorEvents single ones,
	// the same total.
	AuthErrorCount int `json:"auth_error_count,omitempty"`

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
	Sandbox string `json:"sandbox,omitempty"`

	// terminal
	Status          string          `json:"status,omitempty"`
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
	// Trace is when the job reached each stage (terminal events of jobs
	// that were dispatched).
	Trace *Trace     `json:"trace,omitempty"`
	Error *ErrorInfo `json:"error,omitempty"`
}

// How a started job's container came to it.
const (
	SandboxCold      = "cold"      // created, attached and started for the job
	SandboxPrewarmed = "prewarmed" // started before the job; serves it alone
	SandboxReused    = "reused"    // served earlier jobs of the function (single_use: false)
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

// ErrorInfo says why a job did not succeed.
type ErrorInfo struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// IsTerminal reports whether an event type ends a job.
func IsTerminal(eventType string) bool {
	switch eventType {
	case EventResult, EventTimeout, EventError, EventCancelled:
		return true
	}
	return false
}

// TerminalType is the event type that carries a terminal status.
func TerminalType(status string) string {
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
