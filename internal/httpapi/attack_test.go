package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/internal/httpapi"
	"github.com/brig-dev/brig/sdk"
)

// Attacks on the HTTP API by a client with a token (issue 13's attack
// pass). Each answer is a problem naming what is wrong, never a 500.

// Tokens that are not a tenant's credential are 401 (malformed) or 403
// (admin), never a 500 or an Infrastructure.
func TestAttackBadTokens(t *testing.T) {
	tok := defaultToken(t)
	body, _ := strings.CutPrefix(tok, creds.TokenPrefix)
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"garbage":      "brig_garbage",
		"no prefix":    body,
		"upper prefix": "BRIG_" + body,
		"padded":       creds.TokenPrefix + base64.URLEncoding.EncodeToString(raw),
		"std alphabet": creds.TokenPrefix + base64.StdEncoding.EncodeToString(raw),
		"empty body":   creds.TokenPrefix,
		"huge":         creds.TokenPrefix + strings.Repeat("A", creds.MaxTokenLen),
		"jwt only":     creds.TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:len(raw)/2]),
		"non-ascii":    tok + "é",
		"inner space":  tok[:20] + " " + tok[20:],
	} {
		r := call(t, "GET", "/v1/status", bad, nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, r.status, r.body)
		}
	}
	call(t, "GET", "/v1/status", adminToken(t), nil).problem(t, 403, httpapi.TypeForbidden, "")
	call(t, "GET", "/v1/status", "", nil, "Authorization", "Basic "+tok).problem(t, 401, httpapi.TypeUnauthorized, "")
}

// A token whose text differs (a comment line in the .creds file) is the
// same credential: it must not cost the server a connection of its own,
// or one tenant could hold every pooled connection (MaxClients) with one
// credential and lock every other tenant out.
func TestAttackTokenVariantsShareAConnection(t *testing.T) {
	srv, base := ownServer(t, httpapi.Config{})
	tok := defaultToken(t)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, creds.TokenPrefix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		variant := creds.FormatToken(fmt.Appendf(append([]byte(nil), raw...), "\n# variant %d\n", i))
		callURL(t, base, "GET", "/v1/status", variant, nil).state(t, 200)
	}
	if n := srv.Stats().Clients; n != 1 {
		t.Fatalf("8 spellings of one credential hold %d pooled connections, want 1", n)
	}
}

// One tenant's credentials in use hold at most MaxTenantClients pooled
// connections: past it, with none idle, 429; other tenants are served.
func TestAttackTenantHoldsTheConnections(t *testing.T) {
	_, base := ownServer(t, httpapi.Config{MaxTenantClients: 2})
	fn := deployStuck(t)
	toks := []string{tenantToken(t, "hog"), tenantToken(t, "hog"), tenantToken(t, "hog")}
	id := sdk.NewJobID()
	callURL(t, base, "POST", "/v1/jobs", toks[0], map[string]any{"id": id, "function": fn}).state(t, 202)
	waitFor(t, "the job accepted", func() bool { return callURL(t, base, "GET", "/v1/jobs/"+id, toks[0], nil).status == 200 })
	for _, tok := range toks[:2] { // each holds its connection while open
		openStream(t, base, id, tok)
	}
	callURL(t, base, "GET", "/v1/status", toks[2], nil).problem(t, 429, httpapi.TypeQuotaExceeded, "")
	callURL(t, base, "GET", "/v1/status", defaultToken(t), nil).state(t, 200)
	callURL(t, base, "POST", "/v1/jobs/"+id+"/cancel", toks[0], nil)
}

// Hostile query, path, header and body values: each a 4xx problem naming
// the field, never a 500.
func TestAttackHostileInputs(t *testing.T) {
	tok := defaultToken(t)
	for _, c := range []struct {
		method, path string
		body         any
		header       []string
		status       int
	}{
		{"POST", "/v1/jobs?wait=1e9h", echoJob("", "x"), nil, 400},
		{"POST", "/v1/jobs?wait=-1s", echoJob("", "x"), nil, 400},
		{"POST", "/v1/jobs?wait=0", echoJob("", "x"), nil, 400},
		{"POST", "/v1/jobs?wait=99999999999999999999", echoJob("", "x"), nil, 400},
		{"POST", "/v1/jobs?wait=NaN", echoJob("", "x"), nil, 400},
		{"POST", "/v1/jobs", `{"id":null,"function":"echo"}`, nil, 400},
		{"POST", "/v1/jobs", `{"id":"","function":"echo"}`, nil, 400},
		{"POST", "/v1/jobs", `{"id":"a.b","function":"echo"}`, nil, 400},
		{"POST", "/v1/jobs", `{"id":"default.x","function":"echo"}`, nil, 400},
		{"POST", "/v1/jobs", `{"id":"x","id":"y","function":"echo"}`, nil, 0},
		{"POST", "/v1/jobs", `[]`, nil, 400},
		{"POST", "/v1/jobs", `"x"`, nil, 400},
		{"POST", "/v1/jobs", `{`, nil, 400},
		{"POST", "/v1/jobs", ` `, nil, 400},
		{"POST", "/v1/jobs", `{}`, nil, 400},
		{"POST", "/v1/jobs", `{"function":"echo"} {"function":"echo"}`, nil, 400},
		{"POST", "/v1/jobs", `{"function":"echo","env":{"BRIG_TOKEN":"x"}}`, nil, 400},
		{"POST", "/v1/jobs", `{"function":"nope-` + strings.Repeat("x", 10) + `"}`, nil, 0},
		{"POST", "/v1/jobs", echoJob("", "x"), []string{"Content-Type", "text/plain"}, 415},
		{"GET", "/v1/jobs/%2e%2e", nil, nil, 400},
		{"GET", "/v1/jobs/a%2Fb", nil, nil, 0},
		{"GET", "/v1/jobs/%252e", nil, nil, 400},
		{"GET", "/v1/jobs/default.x", nil, nil, 400},
		{"GET", "/v1/jobs/" + strings.Repeat("a", 65), nil, nil, 400},
		{"GET", "/v1/jobs/x?wait=16m", nil, nil, 400},
		{"GET", "/v1/jobs/x/events", nil, []string{"Last-Event-ID", "-1"}, 400},
		{"GET", "/v1/jobs/x/events", nil, []string{"Last-Event-ID", "1e9"}, 400},
		{"GET", "/v1/jobs/x/events", nil, []string{"Last-Event-ID", "99999999999999999999999"}, 400},
		{"GET", "/v1/jobs/x/events?after=-5", nil, nil, 400},
		{"GET", "/v1/jobs/x/events", nil, nil, 404},
		{"POST", "/v1/jobs/x/cancel", nil, nil, 404},
		{"GET", "/v1/functions/%2e%2e", nil, nil, 400},
		{"GET", "/v1/functions/default.python", nil, nil, 400},
		{"PUT", "/v1/functions/x", `{"name":"y","image":"brig/python","command":["python3"]}`, nil, 400},
		{"PUT", "/v1/functions/x", `{"Name":"y","image":"brig/python","command":["python3"]}`, nil, 400},
		{"PUT", "/v1/functions/x", `{"name":null,"image":"brig/python","command":["python3"]}`, nil, 400},
		{"DELETE", "/v1/functions/python", nil, nil, 403},
		{"DELETE", "/v1/functions/nothere", nil, nil, 404},
		{"PATCH", "/v1/jobs", nil, nil, 405},
	} {
		r := call(t, c.method, c.path, tok, c.body, c.header...)
		name := c.method + " " + c.path + fmt.Sprint(c.body)
		if r.status >= 500 || (c.status != 0 && r.status != c.status) {
			t.Errorf("%s: %d %s, want %d", name, r.status, r.body, c.status)
		}
		if r.status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d with Content-Type %q", name, r.status, r.header.Get("Content-Type"))
		}
		t.Logf("%s -> %d %s", name, r.status, strings.TrimSpace(string(r.body)))
	}
}

// A tenant's deploy of what only an admin may set is 403 naming the
// field, however it is spelled; an image is vetted by its exact name, so
// no tag, digest, registry or case trick reaches another image.
func TestAttackFunctionAdminFields(t *testing.T) {
	tok := defaultToken(t)
	fn := func(extra string) string {
		return `{"image":"brig/python:latest","command":["python3","/work/main.py"]` + extra + `}`
	}
	for _, c := range []struct {
		body, field string
		status      int
	}{
		{fn(`,"network":true`), "network", 403},
		{fn(`,"Network":true`), "Network", 400},
		{fn(`,"network":true,"network":false`), "network", 400},
		{fn(`,"network":{"on":true}`), "network", 400},
		{fn(`,"runtime":"runc"`), "runtime", 403},
		{fn(`,"pool":"gpu"`), "pool", 403},
		{fn(`,"quotas":{"calls":65}`), "quotas.calls", 403},
		{fn(`,"env":{"BRIG_GATEWAY":"x"}`), `env["BRIG_GATEWAY"]`, 400},
		{`{"image":"brig/python:latest@sha256:` + strings.Repeat("a", 64) + `","command":["python3"]}`, "image", 403},
		{`{"image":"docker.io/brig/python:latest","command":["python3"]}`, "image", 403},
		{`{"image":"BRIG/python:latest","command":["python3"]}`, "image", 0},
		{`{"image":"brig/python","command":["python3"]}`, "image", 403},
		{`{"image":"brig/python:latest ","command":["python3"]}`, "image", 0},
	} {
		r := call(t, "PUT", "/v1/functions/attack-admin", tok, c.body)
		if r.status < 400 || r.status >= 500 || (c.status != 0 && r.status != c.status) {
			t.Errorf("%s: %d %s, want %d", c.body, r.status, r.body, c.status)
			continue
		}
		if !strings.Contains(string(r.body), `"field":"`+strings.ReplaceAll(c.field, `"`, `\"`)+`"`) {
			t.Errorf("%s: %s, want field %s", c.body, r.body, c.field)
		}
	}
	call(t, "GET", "/v1/functions/attack-admin", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
}

// A POST that reuses an id with another body never runs a second job:
// the answer is the first job's state and events, also when the two race.
func TestAttackSameIDOtherBody(t *testing.T) {
	tok := defaultToken(t)
	id := sdk.NewJobID()
	done := make(chan reply, 2)
	for _, stdin := range []string{"first", "second"} {
		go func() { done <- call(t, "POST", "/v1/jobs?wait=1m", tok, echoJob(id, stdin)) }()
	}
	a, b := (<-done).state(t, 200), (<-done).state(t, 200)
	if a.Terminal == nil || b.Terminal == nil || a.Terminal.Stdout != b.Terminal.Stdout {
		t.Fatalf("two bodies under one id ran apart: %+v / %+v", a.Terminal, b.Terminal)
	}
	again := call(t, "POST", "/v1/jobs?wait=1m", tok, echoJob(id, "third")).state(t, 200)
	if again.Terminal.Stdout != a.Terminal.Stdout {
		t.Fatalf("a later body under the id answered %q, want the job's %q", again.Terminal.Stdout, a.Terminal.Stdout)
	}
}
