package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/brig-dev/brig/schema"
)

func TestDockerError(t *testing.T) {
	t.Parallel()
	spec := schema.RunSpec{Image: "brig/python:latest", Runtime: "runsc"}
	type wrapped struct {
		id  string
		err error
	}
	wrap := func(id string, err error) wrapped { return wrapped{id, err} }
	tests := []struct {
		name       string
		err        wrapped
		wantStatus schema.Status // "" when the error passes through
		wantType   schema.ErrorType
		wantMsg    string
	}{
		{
			name:       "image not found",
			err:        wrap("j", cerrdefs.ErrNotFound.WithMessage("No such image: brig/python:latest")),
			wantStatus: schema.StatusError, wantType: schema.ErrNotFound, wantMsg: `"brig/python:latest"`,
		},
		{
			name:       "image not found, wrapped with %w",
			err:        wrap("j", fmt.Errorf("Image brig/python:latest: %w", cerrdefs.ErrNotFound)),
			wantStatus: schema.StatusError, wantType: schema.ErrNotFound, wantMsg: "brig image build",
		},
		{
			name:       "unknown runtime",
			err:        wrap("j", cerrdefs.ErrInvalidArgument.WithMessage("unknown or invalid runtime name: runsc")),
			wantStatus: schema.StatusRejected, wantType: schema.ErrInvalidJob, wantMsg: `runtime "runsc"`,
		},
		{name: "container not found", err: wrap("j", cerrdefs.ErrNotFound.WithMessage("No such container: abc"))},
		{name: "other invalid argument", err: wrap("j", cerrdefs.ErrInvalidArgument.WithMessage("minimum memory limit is 6MB"))},
		{name: "image in a plain error", err: wrap("j", errors.New("pull image: connection refused"))},
		{name: "runtime in a plain error", err: wrap("j", errors.New("runtime exploded"))},
		{name: "unavailable", err: wrap("j", cerrdefs.ErrUnavailable)},
		{name: "context", err: wrap("j", context.DeadlineExceeded)},
		// The job id is the client's: it must not decide how Docker's error
		// is read.
		{name: "container not found, job id mentions image", err: wrap("image-resize-1", cerrdefs.ErrNotFound.WithMessage("No such container: abc"))},
		{name: "invalid argument, job id mentions runtime", err: wrap("runtime-test", cerrdefs.ErrInvalidArgument.WithMessage("minimum memory limit is 6MB"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := dockerError("create", tt.err.id, tt.err.err, spec)
			var jf *Failure
			if tt.wantStatus == "" {
				if errors.As(got, &jf) || !errors.Is(got, tt.err.err) || !strings.Contains(got.Error(), tt.err.id) {
					t.Errorf("dockerError(%q) = %v (%T), want it wrapped for a retry", tt.err.err, got, got)
				}
				return
			}
			if !errors.As(got, &jf) {
				t.Fatalf("dockerError(%q) = %v (%T), want *Failure", tt.err.err, got, got)
			}
			if jf.Status != tt.wantStatus || jf.ErrType != tt.wantType {
				t.Errorf("Status, ErrType = %q, %q; want %q, %q", jf.Status, jf.ErrType, tt.wantStatus, tt.wantType)
			}
			if !strings.Contains(jf.Error(), tt.wantMsg) {
				t.Errorf("message %q does not mention %q", jf.Error(), tt.wantMsg)
			}
		})
	}
}
