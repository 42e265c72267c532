package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/internal/httpapi"
	"github.com/brig-dev/brig/sdk"
)

// A token of a revoked credential is 401 at once, though its connection
// was pooled before the revocation; never served, never Infrastructure.
func TestAttackRevokedPooledToken(t *testing.T) {
	_, base := ownServer(t, httpapi.Config{})
	tok := tenantToken(t, "revoked-http")
	callURL(t, base, "GET", "/v1/status", tok, nil).state(t, 200)
	revoke(t, tok)
	r := callURL(t, base, "GET", "/v1/status", tok, nil)
	r.problem(t, 401, httpapi.TypeUnauthorized, "")
}

// revoke revokes the credential of tok and pushes the account, so that the
// server closes its connections now.
func revoke(t *testing.T, tok string) {
	t.Helper()
	cred, err := creds.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.Auth.Revoke(cred.PublicKey); err != nil {
		t.Fatal(err)
	}
	sys, err := stack.Connect(auth.User{Role: auth.RoleSystem, Name: "httpapi-sys"})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	if err := stack.Auth.PushAccount(t.Context(), sys); err != nil {
		t.Fatal(err)
	}
}

// The hub follows a job on the connection of its first stream's token.
// When that connection dies (its credential revoked), the job's other
// streams, of another credential of the tenant, must end with an error
// event rather than hang for ever, and the next stream must follow the job
// anew.
func TestAttackHubOwnerRevoked(t *testing.T) {
	_, base := ownServer(t, httpapi.Config{})
	fn := deployStuck(t)
	first, second := tenantToken(t, "hubowner"), tenantToken(t, "hubowner")
	id := sdk.NewJobID()
	callURL(t, base, "POST", "/v1/jobs", second, map[string]any{"id": id, "function": fn}).state(t, 202)
	waitFor(t, "the job accepted", func() bool { return callURL(t, base, "GET", "/v1/jobs/"+id, second, nil).status == 200 })

	open := func(tok string) *http.Response { return openStream(t, base, id, tok) }
	open(first)
	s2 := open(second)
	revoke(t, first)
	frames := readFrames(t, s2.Body) // ends, or the test times out
	if len(frames) == 0 || frames[len(frames)-1].event != "error" {
		t.Fatalf("the stream of a job whose follower died ended with %v, want an error event", eventTypes(frames))
	}
	s3 := open(second)
	buf := make([]byte, 4096)
	n, _ := s3.Body.Read(buf)
	for n == 0 || !strings.Contains(string(buf[:n]), "event: ") {
		m, err := s3.Body.Read(buf[n:])
		if err != nil {
			t.Fatalf("a new stream after the follower died: %v (%q)", err, buf[:n])
		}
		n += m
	}
	callURL(t, base, "POST", "/v1/jobs/"+id+"/cancel", second, nil)
}
