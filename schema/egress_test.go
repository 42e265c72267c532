package schema_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// egressCases are the rules a function's and a job's egress list share
// (docs/design.md §12), as JSON fields beside a minimal valid message.
var egressCases = []struct {
	name   string
	fields map[string]any
	field  string // "" means accepted
}{
	{"names", map[string]any{"egress": []string{"api.example.com", "*.cdn.example.com:443", "Example.ORG.", "xn--bcher-kva.example"}}, ""},
	{"ip and cidr parse", map[string]any{"egress": []string{"203.0.113.7:443", "198.51.100.0/24", "[2001:db8::/32]:443"}}, ""},
	{"duplicates collapse", map[string]any{"egress": []string{"a.example.com", "A.example.com."}}, ""},
	{"at most entries", map[string]any{"egress": many(schema.MaxEgress, func(i int) string { return fmt.Sprintf("h%d.example.com", i) })}, ""},
	{"longest entry", map[string]any{"egress": []string{longestEntry}}, ""},
	{"empty list is none", map[string]any{"egress": []string{}}, ""},
	{"empty list with network", map[string]any{"egress": []string{}, "network": true}, ""},
	{"empty list with reuse", map[string]any{"egress": []string{}, "single_use": false}, ""},
	{"null is none", map[string]any{"egress": json.RawMessage("null")}, ""},
	{"with network false", map[string]any{"egress": []string{"a.example.com"}, "network": false}, ""},
	{"with single_use true", map[string]any{"egress": []string{"a.example.com"}, "single_use": true}, ""},

	{"too many entries", map[string]any{"egress": many(schema.MaxEgress+1, func(i int) string { return fmt.Sprintf("h%d.example.com", i) })}, "egress"},
	{"entry too long", map[string]any{"egress": []string{"a.example.com", longestEntry + "0"}}, "egress[1]"},
	{"empty entry", map[string]any{"egress": []string{""}}, "egress[0]"},
	{"single label", map[string]any{"egress": []string{"a.example.com", "b.example.com", "localhost"}}, "egress[2]"},
	{"wildcard on a top-level domain", map[string]any{"egress": []string{"*.com"}}, "egress[0]"},
	{"numeric last label", map[string]any{"egress": []string{"0x7f.1"}}, "egress[0]"},
	{"non-ASCII", map[string]any{"egress": []string{"bücher.example"}}, "egress[0]"},
	{"bad port", map[string]any{"egress": []string{"a.example.com:0"}}, "egress[0]"},
	{"url, not a host", map[string]any{"egress": []string{"https://a.example.com/"}}, "egress[0]"},
	{"cidr with host bits", map[string]any{"egress": []string{"10.0.0.1/8"}}, "egress[0]"},
	{"as a string", map[string]any{"egress": "a.example.com"}, "egress"},
	{"entry as a number", map[string]any{"egress": []any{1}}, "egress"},

	{"with network true", map[string]any{"egress": []string{"a.example.com"}, "network": true}, "egress"},
	{"with single_use false", map[string]any{"egress": []string{"a.example.com"}, "single_use": false}, "single_use"},
	{"syntax before mode", map[string]any{"egress": []string{"x"}, "network": true}, "egress[0]"},
}

// longestEntry is a valid egress entry of MaxEgressEntryLen bytes: "*.",
// a host name of 253 bytes and the longest port.
var longestEntry = "*." + strings.Repeat(strings.Repeat("a", 62)+".", 4) + "a" + ":65535"

func TestLongestEntry(t *testing.T) {
	t.Parallel()
	if len(longestEntry) != schema.MaxEgressEntryLen {
		t.Errorf("len(longestEntry) = %d, want %d", len(longestEntry), schema.MaxEgressEntryLen)
	}
}

func TestJobEgress(t *testing.T) {
	t.Parallel()
	for _, tt := range egressCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := jobJSON(tt.fields)
			job, err := schema.DecodeJob([]byte(data), 0)
			if tt.field != "" {
				wantFieldError(t, err, tt.field)
				return
			}
			if err != nil {
				t.Fatalf("DecodeJob(%s): %v", data, err)
			}
			// The list is kept as given (the dispatcher normalises it),
			// and an empty one encodes as none.
			want, _ := tt.fields["egress"].([]string)
			if len(want) > 0 && !slices.Equal(job.Egress, want) {
				t.Errorf("Egress = %q, want %q", job.Egress, want)
			}
			if len(want) == 0 {
				again, _ := schema.Marshal(job)
				if strings.Contains(string(again), "egress") {
					t.Errorf("an empty egress list re-encodes as %s", again)
				}
			}
		})
	}
}

func TestFunctionEgress(t *testing.T) {
	t.Parallel()
	for _, tt := range egressCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := map[string]any{"name": "grader", "image": "brig/python:latest", "command": []string{"python3", "/work/main.py"}}
			for k, v := range tt.fields {
				m[k] = v
			}
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			fn, err := schema.DecodeFunction(data)
			checkFunctionError(t, err, tt.field)
			if err != nil {
				return
			}
			// What decodes is what Validate accepts, and re-encodes to a
			// definition that decodes again (the store's round trip).
			checkFunctionError(t, fn.Validate(), "")
			again, err := schema.Marshal(fn)
			if err != nil {
				t.Fatal(err)
			}
			back, err := schema.DecodeFunction(again)
			if err != nil || !slices.Equal(back.Egress, fn.Egress) && len(fn.Egress) > 0 {
				t.Errorf("round trip: %v, egress %q, want %q", err, back.Egress, fn.Egress)
			}
		})
	}
}

// A field error names the entry at its index in the list as given, and
// says what is wrong with it.
func TestEgressFieldErrorMessage(t *testing.T) {
	t.Parallel()
	job := schema.Job{ID: "j", Function: "python", Egress: []string{"a.example.com", "a.example.com", "localhost"}}
	err := job.Validate()
	wantFieldError(t, err, "egress[2]")
	if !strings.Contains(err.Error(), `"localhost"`) || !strings.Contains(err.Error(), "single-label") {
		t.Errorf("error %q does not quote the entry and say why", err)
	}
	fn := validFunction()
	fn.Network, fn.Egress = schema.Ptr(true), []string{"a.example.com"}
	if err := fn.Validate(); err == nil || !strings.Contains(err.Error(), "network: true") {
		t.Errorf("network and egress: %v, want an error naming network: true", err)
	}
}

func TestWorkEgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(s *schema.RunSpec)
		field string
	}{
		{"normal form", func(s *schema.RunSpec) {
			s.Egress = []string{"*.example.com:443", "198.51.100.0/24", "api.example.com"}
		}, ""},
		{"empty", func(s *schema.RunSpec) { s.Egress = []string{} }, ""},
		{"empty with network", func(s *schema.RunSpec) { s.Egress, s.Network = []string{}, true }, ""},
		{"not sorted", func(s *schema.RunSpec) { s.Egress = []string{"b.example.com", "a.example.com"} }, "spec.egress"},
		{"not lower case", func(s *schema.RunSpec) { s.Egress = []string{"A.example.com"} }, "spec.egress"},
		{"duplicate", func(s *schema.RunSpec) { s.Egress = []string{"a.example.com", "a.example.com"} }, "spec.egress"},
		{"invalid entry", func(s *schema.RunSpec) { s.Egress = []string{"a.example.com", "localhost"} }, "spec.egress[1]"},
		{"too many", func(s *schema.RunSpec) {
			s.Egress = many(schema.MaxEgress+1, func(i int) string { return fmt.Sprintf("h%03d.example.com", i) })
		}, "spec.egress"},
		{"with network", func(s *schema.RunSpec) { s.Egress, s.Network = []string{"a.example.com"}, true }, "spec.network"},
		{"reused", func(s *schema.RunSpec) { s.Egress, s.SingleUse = []string{"a.example.com"}, false }, "single_use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := validWork()
			tt.edit(&w.Spec)
			data, err := json.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			got, err := schema.DecodeWork(data)
			if tt.field != "" {
				wantFieldError(t, err, tt.field)
				return
			}
			if err != nil {
				t.Fatalf("DecodeWork: %v", err)
			}
			if len(w.Spec.Egress) > 0 && !reflect.DeepEqual(*got, w) {
				t.Errorf("round trip =\n%+v\nwant\n%+v", *got, w)
			}
		})
	}
}
