//go:build !unix

package image

import (
	"context"
	"io"
	"log/slog"
)

// lockRef does not lock where flock is missing; mmdebstrap, and so Build,
// only runs on Linux anyway.
func lockRef(context.Context, string, io.Writer, *slog.Logger) (func(), error) {
	return func() {}, nil
}
