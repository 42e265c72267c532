package dispatcher

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// Functions of each kind a job's egress list meets (docs/design.md §12).
func egressFunctions() map[string]*schema.Function {
	base := func(name string) *schema.Function {
		return &schema.Function{Name: name, Image: "brig/python:latest", Command: []string{"python3", "/work/main.py"}}
	}
	listed := base("listed")
	listed.Egress = []string{"api.example.com", "*.example.org", "198.51.100.0/24:443", "API.example.com."}
	open := base("open")
	open.Network, open.SingleUse = schema.Ptr(true), schema.Ptr(false)
	return map[string]*schema.Function{"plain": base("plain"), "listed": listed, "open": open}
}

// TestCheckEgress: a job may narrow its function's reach, never widen it.
func TestCheckEgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fn    string
		job   schema.Job
		field string // "" means allowed
		want  string // in the message
	}{
		{"plain, nothing asked", "plain", schema.Job{}, "", ""},
		{"plain, network asked", "plain", schema.Job{Network: schema.Ptr(true)}, "", ""},
		{"plain, egress asked", "plain", schema.Job{Egress: []string{"api.example.com"}}, "", ""},
		{"plain, an address asked", "plain", schema.Job{Egress: []string{"198.51.100.7:443"}}, "egress", "may name hosts, not addresses"},
		{"plain, empty egress", "plain", schema.Job{Egress: []string{}}, "", ""},

		{"listed, nothing asked", "listed", schema.Job{}, "", ""},
		{"listed, the same list", "listed", schema.Job{Egress: []string{"api.example.com", "*.example.org", "198.51.100.0/24:443"}}, "", ""},
		{"listed, one name", "listed", schema.Job{Egress: []string{"API.example.com"}}, "", ""},
		{"listed, one port of a name", "listed", schema.Job{Egress: []string{"api.example.com:80"}}, "", ""},
		{"listed, a subdomain", "listed", schema.Job{Egress: []string{"a.b.example.org:443"}}, "", ""},
		{"listed, a narrower wildcard", "listed", schema.Job{Egress: []string{"*.cdn.example.org"}}, "", ""},
		{"listed, an address in the cidr", "listed", schema.Job{Egress: []string{"198.51.100.7:443"}}, "", ""},
		{"listed, a narrower cidr", "listed", schema.Job{Egress: []string{"198.51.100.128/25:443"}}, "", ""},
		{"listed, network false", "listed", schema.Job{Network: schema.Ptr(false)}, "", ""},
		{"listed, single_use true", "listed", schema.Job{SingleUse: schema.Ptr(true)}, "", ""},
		{"listed, another name", "listed", schema.Job{Egress: []string{"api.example.com", "evil.example.net"}}, "egress[1]", `"evil.example.net" is not within function "listed"'s egress list`},
		{"listed, another port", "listed", schema.Job{Egress: []string{"api.example.com:8443"}}, "egress[0]", "not within"},
		{"listed, the wildcard's suffix", "listed", schema.Job{Egress: []string{"example.org"}}, "egress[0]", "not within"},
		{"listed, a wider wildcard", "listed", schema.Job{Egress: []string{"*.example.com"}}, "egress[0]", "not within"},
		{"listed, the cidr on port 80", "listed", schema.Job{Egress: []string{"198.51.100.0/24"}}, "egress[0]", "not within"},
		{"listed, a wider cidr", "listed", schema.Job{Egress: []string{"198.51.0.0/16:443"}}, "egress[0]", "not within"},
		{"listed, network true", "listed", schema.Job{Network: schema.Ptr(true)}, "network", "widen"},
		{"listed, reuse", "listed", schema.Job{SingleUse: schema.Ptr(false)}, "single_use", "fresh sandbox"},

		{"open, nothing asked", "open", schema.Job{}, "", ""},
		{"open, a list", "open", schema.Job{Egress: []string{"anything.example.net:9000", "203.0.113.0/24"}}, "", ""},
		{"open, a list and network false", "open", schema.Job{Egress: []string{"a.example.net"}, Network: schema.Ptr(false)}, "", ""},
		{"open, reuse without a list", "open", schema.Job{SingleUse: schema.Ptr(false)}, "", ""},
	}
	fns := egressFunctions()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := tt.job
			job.ID, job.Function = "j", tt.fn
			if err := job.Validate(); err != nil {
				t.Fatalf("the job is not valid on its own: %v", err)
			}
			err := checkEgress(&job, fns[tt.fn])
			if tt.field == "" {
				if err != nil {
					t.Fatalf("checkEgress = %v, want nil", err)
				}
				return
			}
			var fe *schema.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Msg, tt.want) {
				t.Fatalf("checkEgress = %v, want a field error on %s saying %q", err, tt.field, tt.want)
			}
		})
	}
}

// TestBuildSpecEgress: the spec carries the job's list if it gave one,
// else its function's, normalised, and runs it without a network in a
// fresh sandbox; the spec is what a worker accepts.
func TestBuildSpecEgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fn      string
		job     schema.Job
		egress  []string
		network bool
		single  bool
	}{
		{"plain", "plain", schema.Job{}, nil, false, true},
		{"plain with network", "plain", schema.Job{Network: schema.Ptr(true)}, nil, true, true},
		{"the function's list", "listed", schema.Job{}, []string{"*.example.org", "198.51.100.0/24:443", "api.example.com"}, false, true},
		{"an empty list is the function's", "listed", schema.Job{Egress: []string{}}, []string{"*.example.org", "198.51.100.0/24:443", "api.example.com"}, false, true},
		{"the job's list", "listed", schema.Job{Egress: []string{"X.example.org", "api.example.com:443", "x.example.org"}},
			[]string{"api.example.com:443", "x.example.org"}, false, true},
		{"open", "open", schema.Job{}, nil, true, false},
		{"open narrowed", "open", schema.Job{Egress: []string{"b.example.net", "a.example.net:8443"}}, []string{"a.example.net:8443", "b.example.net"}, false, true},
	}
	fns := egressFunctions()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := tt.job
			job.ID, job.Function = "j", tt.fn
			spec := buildSpec(&job, fns[tt.fn])
			if !slices.Equal(spec.Egress, tt.egress) || spec.Network != tt.network || spec.SingleUse != tt.single {
				t.Errorf("spec egress %q, network %v, single_use %v; want %q, %v, %v",
					spec.Egress, spec.Network, spec.SingleUse, tt.egress, tt.network, tt.single)
			}
			if err := spec.Validate(); err != nil {
				t.Errorf("the spec is not valid: %v", err)
			}
		})
	}
	// The spec owns its list: a change to it does not reach the function.
	fn := fns["listed"]
	spec := buildSpec(&schema.Job{ID: "j", Function: "listed"}, fn)
	spec.Egress[0] = "*.evil.example"
	if fn.Egress[1] != "*.example.org" {
		t.Errorf("spec egress aliases the function's: %q", fn.Egress)
	}
}

// TestDispatchEgress: a job of a deployed function gets its effective
// list in its work message, which a worker accepts; a job that asks for
// more than its function gives is rejected, naming egress, and routes
// nothing.
func TestDispatchEgress(t *testing.T) {
	t.Parallel()
	r, store := functionsRig(t)
	for _, fn := range egressFunctions() {
		if _, err := store.Put(t.Context(), *fn); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		id, fn string
		egress []string
		want   []string // the spec's list
	}{
		{"eg-fn-list", "listed", nil, []string{"*.example.org", "198.51.100.0/24:443", "api.example.com"}},
		{"eg-narrowed", "listed", []string{"a.example.org:443"}, []string{"a.example.org:443"}},
		{"eg-open-narrowed", "open", []string{"api.example.net"}, []string{"api.example.net"}},
	} {
		r.settled(r.submitJob(schema.Job{ID: tt.id, Function: tt.fn, Code: "print(1)", Egress: tt.egress}))
		work, _ := r.verifiedWork(k(tt.id), schema.DefaultPool)
		if !slices.Equal(work.Spec.Egress, tt.want) || work.Spec.Network || !work.Spec.SingleUse {
			t.Errorf("%s: spec egress %q, network %v, single_use %v; want %q without a network, single-use",
				tt.id, work.Spec.Egress, work.Spec.Network, work.Spec.SingleUse, tt.want)
		}
	}
	for _, tt := range []struct {
		id   string
		job  schema.Job
		want string
	}{
		{"eg-wider", schema.Job{Function: "listed", Egress: []string{"api.example.com", "b.example.com"}},
			`invalid job for function "listed": egress[1]: "b.example.com" is not within`},
		{"eg-none", schema.Job{Function: "plain", Egress: []string{"198.51.100.0/24"}},
			`invalid job for function "plain": egress: function "plain" has no egress list: a job's own list may name hosts, not addresses`},
		{"eg-network", schema.Job{Function: "listed", Network: schema.Ptr(true)}, `invalid job for function "listed": network: true would widen`},
		{"eg-reuse", schema.Job{Function: "listed", SingleUse: schema.Ptr(false)}, `invalid job for function "listed": single_use: false`},
		{"eg-syntax", schema.Job{Function: "listed", Egress: []string{"localhost"}}, `invalid job: egress[0]: "localhost"`},
	} {
		job := tt.job
		job.ID = tt.id
		r.submitJob(job)
		ev := r.wantTerminal(tt.id, schema.StatusRejected, schema.ErrInvalidJob, 0)
		if !strings.Contains(ev.Error.Message, tt.want) {
			t.Errorf("%s: message %q, want %q", tt.id, ev.Error.Message, tt.want)
		}
		if n := len(r.workFor(k(tt.id))); n != 0 {
			t.Errorf("%s: %d work messages; want none", tt.id, n)
		}
	}
}

// TestFunctionsEgressRefusals: a tenant deploys a function with host
// names in egress, never with an address; an invalid list is the
// definition's error.
func TestFunctionsEgressRefusals(t *testing.T) {
	t.Parallel()
	r, _ := functionsRig(t)
	for _, tt := range []struct {
		name   string
		egress []string
		typ    schema.ErrorType
		field  string
	}{
		{"names", []string{"api.example.com", "*.example.org:8443"}, "", ""},
		{"address", []string{"api.example.com", "203.0.113.7"}, schema.ErrForbidden, "egress"},
		{"cidr", []string{"198.51.100.0/24:443"}, schema.ErrForbidden, "egress"},
		{"invalid", []string{"api.example.com", "localhost"}, schema.ErrInvalidFunction, "egress[1]"},
	} {
		fn := tenantFn("eg-" + tt.name)
		fn.Egress = tt.egress
		got := r.askFunctions("acme", deployReq(t, fn))
		if got.ErrorType != tt.typ || got.Field != tt.field {
			t.Errorf("%s: %+v, want %q on %q", tt.name, got, tt.typ, tt.field)
		}
		if tt.typ == "" && (got.Function == nil || !slices.Equal(got.Function.Function.Egress, tt.egress)) {
			t.Errorf("%s: deployed %+v, want egress %q", tt.name, got.Function, tt.egress)
		}
	}
}
