package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/internal/httpapi"
)

// Wrong, garbage and foreign tokens are 401 with WWW-Authenticate; a
// credential of no tenant is 403; nothing is submitted.
func TestTokensRefused(t *testing.T) {
	other, _, err := auth.OpenOrCreate(filepath.Join(t.TempDir(), "auth"))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Creds(auth.User{Role: auth.RoleClient, Tenant: "default"})
	if err != nil {
		t.Fatal(err)
	}
	valid := defaultToken(t)
	for _, tt := range []struct {
		name, header string
		status       int
		typ          httpapi.ErrorType
	}{
		{"none", "", 401, httpapi.TypeUnauthorized},
		{"basic", "Basic dXNlcjpwYXNz", 401, httpapi.TypeUnauthorized},
		{"bearer alone", "Bearer ", 401, httpapi.TypeUnauthorized},
		{"garbage", "Bearer garbage", 401, httpapi.TypeUnauthorized},
		{"bad base64", "Bearer brig_!!!", 401, httpapi.TypeUnauthorized},
		{"padded", "Bearer " + valid + "==", 401, httpapi.TypeUnauthorized},
		{"not creds", "Bearer brig_" + base64.RawURLEncoding.EncodeToString([]byte("hello")), 401, httpapi.TypeUnauthorized},
		{"huge", "Bearer brig_" + strings.Repeat("A", creds.MaxTokenLen), 401, httpapi.TypeUnauthorized},
		{"another authority's", "Bearer " + creds.FormatToken(forged), 401, httpapi.TypeUnauthorized},
		{"admin", "Bearer " + adminToken(t), 403, httpapi.TypeForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // the second from the refusal cache
				r := call(t, "POST", "/v1/jobs", "", echoJob("refused-token", ""), "Authorization", tt.header)
				r.problem(t, tt.status, tt.typ, "")
				if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	call(t, "GET", "/v1/jobs/refused-token", valid, nil).problem(t, 404, httpapi.TypeNotFound, "")
	r := call(t, "GET", "/openapi.json", "", nil)
	if r.status != 200 {
		t.Errorf("openapi.json without a token: %d", r.status)
	}
}

// Tenant B's token can neither see, watch nor cancel tenant A's job: to
// B it does not exist.
func TestCrossTenant(t *testing.T) {
	a := defaultToken(t)
	b := tenantToken(t, "other")
	call(t, "POST", "/v1/jobs?wait=30s", a, echoJob("cross-1", "secret")).state(t, http.StatusOK)
	call(t, "GET", "/v1/jobs/cross-1", b, nil).problem(t, 404, httpapi.TypeNotFound, "")
	call(t, "GET", "/v1/jobs/cross-1?wait=1s", b, nil).problem(t, 404, httpapi.TypeNotFound, "")
	call(t, "GET", "/v1/jobs/cross-1/events", b, nil).problem(t, 404, httpapi.TypeNotFound, "")
	call(t, "POST", "/v1/jobs/cross-1/cancel", b, nil).problem(t, 404, httpapi.TypeNotFound, "")
	// B's own job of the same id is B's, and A's stays as it was.
	st := call(t, "POST", "/v1/jobs?wait=30s", b, echoJob("cross-1", "mine")).state(t, http.StatusOK)
	if st.Key != "other.cross-1" || st.Terminal.Stdout != "mine" {
		t.Fatalf("B's job: %+v", st)
	}
	if st := call(t, "GET", "/v1/jobs/cross-1", a, nil).state(t, 200); st.Terminal.Stdout != "secret" {
		t.Fatalf("A's job after B's: %+v", st)
	}
}

// brig dev's token file is the default tenant's credential, 0600.
func TestClientTokenFile(t *testing.T) {
	fi, err := os.Stat(stack.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || filepath.Dir(stack.ClientToken) != filepath.Dir(stack.ClientCreds) {
		t.Errorf("%s: mode %v", stack.ClientToken, fi.Mode())
	}
	cred, err := creds.ParseToken(defaultToken(t))
	if err != nil || cred.Tenant != "default" || cred.Role != "client" {
		t.Fatalf("token: %+v, %v", cred.Identity, err)
	}
}
