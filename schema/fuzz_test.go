package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/brig-dev/brig/schema"
)

var jobSeeds = []string{
	`{"id":"job-1","function":"python"}`,
	`{"id":"job-1","function":"python","code":"print(1)","args":{"a":[1,2.5,"<&>"]},"stdin":"x",` +
		`"files":{"lib/a.py":"x"},"env":{"A":"b"},"reply_to":"_INBOX.x","timeout":1000,` +
		`"limits":{"memory_mb":64,"cpus":0.5,"pids":32,"output_bytes":100},"network":true,` +
		`"restricted":false,"scopes":["dict:c:read"],"single_use":false,"runtime":"runsc","retries":3}`,
	`{"id":"job-1","function":"python","args":null,"files":{},"env":{},"scopes":[],"limits":{},"egress":[]}`,
	`{"id":"job-1","function":"python","egress":["api.example.com","*.Example.org:8443","198.51.100.0/24"],"single_use":true}`,
	`{"id":"job-1","function":"python","egress":["localhost"],"network":true}`,
	`{"ID":"job-1","Function":"python","id":"job-2"}`,
	`{"id":"job-1","function":"python","limits":{"x":1}}`,
	`{"id":"job-1","function":"python","files":{"../x":""}}`,
	`{"id":"job-1","function":"python","reply_to":"brig.events.default.job-1.x"}`,
	`{"id":"job-1","function":"python","timeout":"1"}`,
	`{"id":"job-1","function":"python"} {}`,
	`{"id":"a.b"`,
	`[]`,
	``,
}

func wantFuzzFieldError(t *testing.T, err error) {
	t.Helper()
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field == "" {
		t.Fatalf("error %v (%T) is not a *schema.FieldError with a field", err, err)
	}
}

// normaliseJob makes jobs that mean the same compare equal: empty and nil
// collections are one, and args are compared as encoding/json writes them.
func normaliseJob(j *schema.Job) {
	if len(j.Files) == 0 {
		j.Files = nil
	}
	if len(j.Env) == 0 {
		j.Env = nil
	}
	if len(j.Scopes) == 0 {
		j.Scopes = nil
	}
	if len(j.Egress) == 0 {
		j.Egress = nil
	}
	if j.Args != nil {
		var compact, escaped bytes.Buffer
		if err := json.Compact(&compact, j.Args); err == nil {
			j.Args = compact.Bytes()
		}
		json.HTMLEscape(&escaped, j.Args)
		j.Args = escaped.Bytes()
	}
}

func FuzzDecodeJob(f *testing.F) {
	for _, s := range jobSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		job, err := schema.DecodeJob(data, 0)
		if err != nil {
			wantFuzzFieldError(t, err)
			return
		}
		if err := job.Validate(); err != nil {
			t.Fatalf("decoded job does not validate: %v", err)
		}
		out, err := json.Marshal(job)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := schema.DecodeJob(out, len(out))
		if err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
		normaliseJob(job)
		normaliseJob(again)
		if !reflect.DeepEqual(job, again) {
			t.Fatalf("round trip changed the job:\n%+v\n%+v", job, again)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"job_id":"default.job-1","type":"accepted","seq":1,"time":"2025-01-02T03:04:05Z","attempt":1}`,
		`{"job_id":"default.job-1","type":"output","seq":2,"time":"2025-01-02T03:04:05.1+02:00","attempt":1,"stream":"stdout","data":"hi"}`,
		`{"job_id":"default.job-1","type":"result","seq":3,"time":"2025-01-02T03:04:05Z","attempt":2,"status":"failed","exit_code":1,` +
			`"output":{"x":1},"auth_errors":[{"resource":"r","action":"a","message":"m"}],"error":{"type":"AuthError","message":"m"}}`,
		`{"job_id":"default.job-1","type":"timeout","seq":3,"time":"2025-01-02T03:04:05Z","attempt":1}`,
		`{"job_id":"default.job-1","type":"accepted","seq":1,"time":"yesterday","attempt":1}`,
		`{"job_id":"default.job-1","auth_errors":[{"x":1}]}`,
		`{}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := schema.DecodeEvent(data)
		if err != nil {
			wantFuzzFieldError(t, err)
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("decoded event does not validate: %v", err)
		}
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if len(out) > schema.MaxEventBytes {
			return // escaping can grow a message past the cap
		}
		if _, err := schema.DecodeEvent(out); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
	})
}
