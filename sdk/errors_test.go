package sdk

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

var sentinels = map[string]error{
	"ErrFailed":         ErrFailed,
	"ErrTimeout":        ErrTimeout,
	"ErrOOM":            ErrOOM,
	"ErrRejected":       ErrRejected,
	"ErrCancelled":      ErrCancelled,
	"ErrInfrastructure": ErrInfrastructure,
}

func TestJobErrorIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status schema.Status
		want   string // the one sentinel that matches, "" for none
	}{
		{schema.StatusFailed, "ErrFailed"},
		{schema.StatusTimeout, "ErrTimeout"},
		{schema.StatusOOM, "ErrOOM"},
		{schema.StatusRejected, "ErrRejected"},
		{schema.StatusCancelled, "ErrCancelled"},
		{schema.StatusError, "ErrInfrastructure"},
		{schema.StatusSucceeded, ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			t.Parallel()
			err := error(&JobError{Event: &schema.Event{JobID: "j", Status: tt.status}})
			wrapped := fmt.Errorf("run: %w", err)
			for name, sentinel := range sentinels {
				want := name == tt.want
				if got := errors.Is(err, sentinel); got != want {
					t.Errorf("errors.Is(%s job, %s) = %v, want %v", tt.status, name, got, want)
				}
				if got := errors.Is(wrapped, sentinel); got != want {
					t.Errorf("errors.Is(wrapped %s job, %s) = %v, want %v", tt.status, name, got, want)
				}
			}
			if errors.Is(err, errors.New(tt.want)) {
				t.Errorf("%s job matches an unrelated error with the sentinel's text", tt.status)
			}
		})
	}
}

func TestJobErrorAsAuthError(t *testing.T) {
	t.Parallel()
	denied := []schema.AuthError{
		{Resource: "dict:a", Action: "write", Message: "scope dict:a:write not granted"},
		{Resource: "queue:q", Action: "get", Message: "no"},
	}
	tests := []struct {
		name       string
		ev         schema.Event
		wantAs     bool
		wantDenied []schema.AuthError
	}{
		{
			"auth error with denials",
			schema.Event{Status: schema.StatusFailed, AuthErrors: denied,
				Error: &schema.ErrorInfo{Type: schema.ErrAuthError, Message: "2 calls denied"}},
			true, denied,
		},
		{
			"auth error without denials",
			schema.Event{Status: schema.StatusFailed, Error: &schema.ErrorInfo{Type: schema.ErrAuthError, Message: "denied"}},
			true, nil,
		},
		{
			"non-zero exit with denials is not an AuthError",
			schema.Event{Status: schema.StatusFailed, AuthErrors: denied,
				Error: &schema.ErrorInfo{Type: schema.ErrNonZeroExit, Message: "exit 1"}},
			false, nil,
		},
		{"timeout", schema.Event{Status: schema.StatusTimeout, Error: &schema.ErrorInfo{Type: schema.ErrTimeout}}, false, nil},
		{"no error info", schema.Event{Status: schema.StatusFailed}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := tt.ev
			ev.JobID = "job-7"
			err := fmt.Errorf("wrapped: %w", &JobError{Event: &ev})
			var ae *AuthError
			if got := errors.As(err, &ae); got != tt.wantAs {
				t.Fatalf("errors.As(*AuthError) = %v, want %v", got, tt.wantAs)
			}
			if !tt.wantAs {
				if ae != nil {
					t.Errorf("target set to %+v without a match", ae)
				}
			} else {
				if ae.JobID != "job-7" || ae.Message != ev.Error.Message {
					t.Errorf("AuthError = %+v", ae)
				}
				if !reflect.DeepEqual(ae.Denied, tt.wantDenied) {
					t.Errorf("Denied = %+v, want %+v", ae.Denied, tt.wantDenied)
				}
				if msg := ae.Error(); !strings.Contains(msg, "job-7") || !strings.Contains(msg, "AuthError") || !strings.Contains(msg, ev.Error.Message) {
					t.Errorf("AuthError.Error() = %q", msg)
				}
			}
			// The JobError itself stays reachable either way.
			var je *JobError
			if !errors.As(err, &je) || je.Event.JobID != "job-7" {
				t.Errorf("errors.As(*JobError) = %v", je)
			}
			var other *fs.PathError
			if errors.As(err, &other) {
				t.Error("errors.As matched an unrelated type")
			}
		})
	}
}

func TestJobErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ev   schema.Event
		want []string
	}{
		{schema.Event{JobID: "job-1", Status: schema.StatusFailed, Error: &schema.ErrorInfo{Type: schema.ErrNonZeroExit, Message: "job exited with code 3"}},
			[]string{"job-1", "failed", "NonZeroExit", "job exited with code 3"}},
		{schema.Event{JobID: "job-2", Status: schema.StatusTimeout, Error: &schema.ErrorInfo{Type: schema.ErrTimeout, Message: "over 1s"}},
			[]string{"job-2", "timeout", "Timeout", "over 1s"}},
		{schema.Event{JobID: "job-3", Status: schema.StatusCancelled}, []string{"job-3", "cancelled"}},
		{schema.Event{JobID: "job-4", Status: schema.StatusError, Error: &schema.ErrorInfo{Type: schema.ErrInfrastructure}},
			[]string{"job-4", "error", "Infrastructure"}},
	}
	for _, tt := range tests {
		msg := (&JobError{Event: &tt.ev}).Error()
		for _, s := range tt.want {
			if !strings.Contains(msg, s) {
				t.Errorf("JobError.Error() = %q, want it to mention %q", msg, s)
			}
		}
	}
}

func TestResultError(t *testing.T) {
	t.Parallel()
	if err := resultError(&schema.Event{JobID: "j", Status: schema.StatusSucceeded}); err != nil {
		t.Errorf("resultError(succeeded) = %v, want nil", err)
	}
	for _, status := range []schema.Status{schema.StatusFailed, schema.StatusTimeout, schema.StatusOOM, schema.StatusRejected, schema.StatusCancelled, schema.StatusError} {
		ev := &schema.Event{JobID: "j", Status: status}
		var je *JobError
		if err := resultError(ev); !errors.As(err, &je) || je.Event != ev {
			t.Errorf("resultError(%s) = %v, want a *JobError carrying the event", status, err)
		}
	}
}
