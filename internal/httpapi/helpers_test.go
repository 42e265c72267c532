package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/internal/httpapi"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// defaultToken is the default tenant's token, as brig dev writes it.
func defaultToken(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(stack.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// adminToken is the admin's credential as a token.
func adminToken(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(stack.AdminCreds)
	if err != nil {
		t.Fatal(err)
	}
	return creds.FormatToken(data)
}

// tenantToken adds tenant name (its record naming a fresh credential) and
// returns that credential as a token.
func tenantToken(t *testing.T, name string) string {
	t.Helper()
	m, err := stack.Auth.MintUser(auth.User{Role: auth.RoleClient, Tenant: name})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := auth.OpenTenants(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tenants.Update(t.Context(), name, func(rec *schema.Tenant, _ bool) error {
		rec.Users = append(rec.Users, m.PublicKey)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	data, err := m.Creds()
	if err != nil {
		t.Fatal(err)
	}
	return creds.FormatToken(data)
}

// deployStuck stores a function whose jobs wait for ever: its pool has no
// worker. Its jobs are accepted and stay queued until cancelled.
func deployStuck(t *testing.T) string {
	t.Helper()
	js, err := jetstream.New(stack.Conn)
	if err != nil {
		t.Fatal(err)
	}
	store, err := functions.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	fn := schema.Python()
	fn.Name, fn.Pool = "stuck", "nowhere"
	if _, err := store.Put(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
	return fn.Name
}

// reply is an answer of the API.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request to the stack's HTTP API.
func call(t *testing.T, method, path, token string, body any, header ...string) reply {
	t.Helper()
	return callURL(t, stack.HTTPURL(), method, path, token, body, header...)
}

func callURL(t *testing.T, base, method, path, token string, body any, header ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}
}

// state decodes a JobState answer with the status wanted.
func (r reply) state(t *testing.T, status int) sdk.JobState {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var st sdk.JobState
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("not a job state: %v: %s", err, r.body)
	}
	return st
}

// problem checks a problem answer: status, type and (when given) field.
func (r reply) problem(t *testing.T, status int, typ httpapi.ErrorType, field string) httpapi.Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s): %s", r.status, status, typ, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("not a problem: %v: %s", err, r.body)
	}
	if p.ErrorType != typ || p.Type != "urn:brig:error:"+string(typ) || p.Status != status || p.Title == "" || p.Detail == "" {
		t.Errorf("problem %+v, want %s %d", p, typ, status)
	}
	if field != "" && p.Field != field {
		t.Errorf("problem field %q, want %q (%s)", p.Field, field, p.Detail)
	}
	return p
}

// waitFor polls cond until it holds, failing t after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoJob is a job of the echo function (no container).
func echoJob(id, stdin string) map[string]any {
	j := map[string]any{"function": "echo", "stdin": stdin}
	if id != "" {
		j["id"] = id
	}
	return j
}

// frame is one SSE frame.
type frame struct {
	id    string
	event string
	data  string
}

// readFrames reads SSE frames until the stream ends.
func readFrames(t *testing.T, r io.Reader) []frame {
	t.Helper()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read event stream: %v", err)
	}
	return parseFrames(string(data))
}

func parseFrames(s string) []frame {
	var out []frame
	for block := range strings.SplitSeq(s, "\n\n") {
		var f frame
		for line := range strings.SplitSeq(block, "\n") {
			switch k, v, _ := strings.Cut(line, ": "); k {
			case "id":
				f.id = v
			case "event":
				f.event = v
			case "data":
				f.data = v
			}
		}
		if f.event != "" {
			out = append(out, f)
		}
	}
	return out
}

func eventTypes(fs []frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.event)
	}
	return out
}
