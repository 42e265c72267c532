package gatewayproto_test

import (
	"testing"

	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/schema"
)

// TestErrorTypesMatchSchema: the error types a job's terminal event also
// carries are spelled out in gatewayproto (a leaf) and must stay equal to
// schema's.
func TestErrorTypesMatchSchema(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ proto, schema string }{
		{gatewayproto.ErrAuthError, string(schema.ErrAuthError)},
		{gatewayproto.ErrQuotaExceeded, string(schema.ErrQuotaExceeded)},
	} {
		if tt.proto != tt.schema {
			t.Errorf("gatewayproto says %q where schema says %q", tt.proto, tt.schema)
		}
	}
}
