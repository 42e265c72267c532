package sandbox_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/brig-dev/brig/sdk/sandbox"
)

// The tests that need a gateway, and so NATS, are in internal/sdktest:
// go mod tidy in a job module that imports this package follows its tests,
// and one importing the gateway here would put nats-server in that
// module's go.sum. Tests here import the standard library, schema and
// sdk/sandbox only.

func TestNoGateway(t *testing.T) {
	c := sandbox.NewWith("/nonexistent/gateway.sock", "t")
	_, err := c.Dict("d").Get(context.Background(), "k", nil)
	wantError(t, err, sandbox.TypeInfrastructure, "no brig gateway at /nonexistent/gateway.sock")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%v does not wrap ErrNotExist", err)
	}
}

// wantError fails t unless err is an *Error, not an AuthError, of type typ
// with a message holding msg.
func wantError(t *testing.T, err error, typ, msg string) {
	t.Helper()
	var ae *sandbox.AuthError
	if errors.As(err, &ae) {
		t.Fatalf("error %v is an AuthError, want %s", err, typ)
	}
	var be *sandbox.Error
	if !errors.As(err, &be) || be.Type != typ || !strings.Contains(be.Message, msg) {
		t.Fatalf("error %v (%T), want *Error %s %q", err, err, typ, msg)
	}
}
