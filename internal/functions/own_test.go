package functions_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/functions"
)

// A tenant's own function may list host names in egress, never addresses
// (docs/design.md §12): the entry is named in the Forbidden error.
func TestAdminOnlyEgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		egress []string
		entry  string // "" means allowed
	}{
		{"none", nil, ""},
		{"empty", []string{}, ""},
		{"names", []string{"api.example.com", "*.example.org:8443", "Example.NET."}, ""},
		{"ipv4", []string{"api.example.com", "203.0.113.7"}, `entry 1, "203.0.113.7"`},
		{"ipv4 with port", []string{"203.0.113.7:443"}, `entry 0, "203.0.113.7:443"`},
		{"cidr", []string{"198.51.100.0/24"}, `entry 0, "198.51.100.0/24"`},
		{"cidr with port", []string{"198.51.100.0/24:443"}, `entry 0, "198.51.100.0/24:443"`},
		{"ipv6", []string{"2001:db8::1"}, `entry 0, "2001:db8::1"`},
		{"ipv6 with port", []string{"a.example.com", "b.example.com", "[2001:db8::/32]:443"}, `entry 2, "[2001:db8::/32]:443"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fn := grader()
			fn.Egress = tt.egress
			if err := fn.Validate(); err != nil {
				t.Fatalf("the definition is not valid, as AdminOnly expects: %v", err)
			}
			err := functions.AdminOnly(fn, map[string]bool{fn.Image: true})
			if tt.entry == "" {
				if err != nil {
					t.Fatalf("AdminOnly = %v, want nil", err)
				}
				return
			}
			var fe *functions.ForbiddenError
			if !errors.As(err, &fe) || fe.Field != "egress" || !errors.Is(err, functions.ErrForbidden) {
				t.Fatalf("AdminOnly = %v, want Forbidden on egress", err)
			}
			if !strings.Contains(fe.Msg, tt.entry) || !strings.Contains(fe.Msg, "name the host") {
				t.Errorf("message %q does not name %s and say what to do", fe.Msg, tt.entry)
			}
		})
	}
	// An admin's definition may list them: validation alone accepts it.
	fn := grader()
	fn.Egress = []string{"203.0.113.7:443", "198.51.100.0/24"}
	if err := fn.Validate(); err != nil {
		t.Errorf("an admin's address entries: %v", err)
	}
}
