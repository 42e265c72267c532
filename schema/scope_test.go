package schema_test

import (
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	name64 := "a" + strings.Repeat("b", 63)
	tests := []struct {
		in      string
		want    schema.Scope
		wantErr bool
	}{
		{in: "dict:cache:read", want: schema.Scope{Kind: schema.ResourceDict, Name: "cache", Action: "read"}},
		{in: "dict:cache:write", want: schema.Scope{Kind: schema.ResourceDict, Name: "cache", Action: "write"}},
		{in: "queue:jobs:put", want: schema.Scope{Kind: schema.ResourceQueue, Name: "jobs", Action: "put"}},
		{in: "queue:jobs:get", want: schema.Scope{Kind: schema.ResourceQueue, Name: "jobs", Action: "get"}},
		{in: "function:resize:call", want: schema.Scope{Kind: schema.ResourceFunction, Name: "resize", Action: "call"}},
		{in: "dict:0_a-b:read", want: schema.Scope{Kind: schema.ResourceDict, Name: "0_a-b", Action: "read"}},
		{in: "dict:" + name64 + ":read", want: schema.Scope{Kind: schema.ResourceDict, Name: name64, Action: "read"}},

		{in: "", wantErr: true},
		{in: "dict", wantErr: true},
		{in: "dict:cache", wantErr: true},
		{in: "dict:cache:read:extra", wantErr: true},
		{in: "dict:cache:read:", wantErr: true},
		{in: "file:cache:read", wantErr: true},
		{in: "DICT:cache:read", wantErr: true},
		{in: "dict:cache:READ", wantErr: true},
		{in: "dict::read", wantErr: true},
		{in: "dict:-cache:read", wantErr: true},
		{in: "dict:ca.che:read", wantErr: true},
		{in: "dict:ca*:read", wantErr: true},
		{in: "dict:cache :read", wantErr: true},
		{in: "dict:" + name64 + "c:read", wantErr: true},
		{in: "dict:cache:put", wantErr: true},
		{in: "dict:cache:", wantErr: true},
		{in: "queue:jobs:read", wantErr: true},
		{in: "function:resize:read", wantErr: true},
		{in: "function:resize:call ", wantErr: true},
		{in: " function:resize:call", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := schema.ParseScope(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseScope(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}
