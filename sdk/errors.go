package sdk

import (
	"errors"
	"fmt"

	"github.com/brig-dev/brig/schema"
)

// Sentinels a caller can test a job's error against with errors.Is.
var (
	// ErrFailed: the job's code exited non-zero.
	ErrFailed = errors.New("job failed")
	// ErrTimeout: the job ran past its timeout and was killed.
	ErrTimeout = errors.New("job timed out")
	// ErrOOM: the job ran out of memory and was killed.
	ErrOOM = errors.New("job ran out of memory")
	// ErrRejected: brig refused the job (invalid, unknown function...).
	ErrRejected = errors.New("job rejected")
	// ErrCancelled: the job was cancelled.
	ErrCancelled = errors.New("job cancelled")
	// ErrInfrastructure: brig itself failed to run the job.
	ErrInfrastructure = errors.New("brig infrastructure error")
	// ErrNotFound: Cancel named a job brig has no event of in the
	// client's tenant; nothing was changed.
	ErrNotFound = errors.New("NotFound")
)

// JobError is the error of a job that ended in any status but succeeded. It
// matches one of the sentinels above with errors.Is, and *AuthError with
// errors.As when the job was denied a resource.
type JobError struct {
	Event *schema.Event
}

func (e *JobError) Error() string {
	msg := string(e.Event.Status)
	if e.Event.Error != nil {
		msg = string(e.Event.Error.Type) + ": " + e.Event.Error.Message
	}
	return fmt.Sprintf("job %s %s: %s", e.Event.JobID, e.Event.Status, msg)
}

// Is matches the sentinel of the job's status.
func (e *JobError) Is(target error) bool {
	switch e.Event.Status {
	case schema.StatusFailed:
		return target == ErrFailed
	case schema.StatusTimeout:
		return target == ErrTimeout
	case schema.StatusOOM:
		return target == ErrOOM
	case schema.StatusRejected:
		return target == ErrRejected
	case schema.StatusCancelled:
		return target == ErrCancelled
	case schema.StatusError:
		return target == ErrInfrastructure
	}
	return false
}

// As exposes a denied resource call as *AuthError.
func (e *JobError) As(target any) bool {
	if t, ok := target.(**AuthError); ok && e.Event.Error != nil && e.Event.Error.Type == schema.ErrAuthError {
		ae := &AuthError{JobID: e.Event.JobID, Message: e.Event.Error.Message}
		if len(e.Event.AuthErrors) > 0 {
			ae.Denied = e.Event.AuthErrors
		}
		*t = ae
		return true
	}
	return false
}

// AuthError says a job touched a resource outside its credential scope.
type AuthError struct {
	JobID   string
	Message string
	Denied  []schema.AuthError
}

func (e *AuthError) Error() string { return "job " + e.JobID + ": AuthError: " + e.Message }

// resultError maps a terminal event to nil or a *JobError.
func resultError(ev *schema.Event) error {
	if ev.Status == schema.StatusSucceeded {
		return nil
	}
	return &JobError{Event: ev}
}
