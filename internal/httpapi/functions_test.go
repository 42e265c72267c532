package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/httpapi"
)

// The functions routes' refusals that the server makes itself, before it
// asks brig.
func TestFunctionsRefused(t *testing.T) {
	tok := defaultToken(t)
	call(t, "GET", "/v1/functions/bad.name", tok, nil).problem(t, 400, httpapi.TypeInvalidRequest, "name")
	call(t, "PUT", "/v1/functions/f1", tok, `{"name":"f2","image":"brig/python:latest","command":["python3"]}`).
		problem(t, 400, httpapi.TypeInvalidFunction, "name")
	call(t, "PUT", "/v1/functions/f1", tok, `{"image":"brig/python:latest","command":["python3"],"bogus":1}`).
		problem(t, 400, httpapi.TypeInvalidFunction, "bogus")
	call(t, "PUT", "/v1/functions/f1", tok, `{"image":"brig/python:latest"}`, "Content-Type", "text/yaml").
		problem(t, 415, httpapi.TypeUnsupportedMediaType, "Content-Type")
	call(t, "PUT", "/v1/functions/f1", tok, `{"image":"`+strings.Repeat("a", 70<<10)+`"}`).
		problem(t, 413, httpapi.TypeTooLarge, "")
	call(t, "PATCH", "/v1/functions/f1", tok, nil).problem(t, 405, httpapi.TypeMethodNotAllowed, "")
}

// The functions routes over sdk.Functions: list, get, deploy and delete
// a tenant's own; the built-ins and admin-only fields are refused.
func TestFunctions(t *testing.T) {
	tok := defaultToken(t)
	r := call(t, "GET", "/v1/functions", tok, nil)
	var list struct {
		Functions []map[string]any `json:"functions"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &list) != nil || len(list.Functions) < 2 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", "/v1/functions/python", tok, nil); r.status != 200 || !strings.Contains(string(r.body), `"owner":"builtin"`) {
		t.Fatalf("get python: %d %s", r.status, r.body)
	}
	call(t, "GET", "/v1/functions/nosuch", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
	def := `{"image":"brig/python:latest","command":["python3","/work/main.py"]}`
	if r := call(t, "PUT", "/v1/functions/mine", tok, def); r.status != 200 || !strings.Contains(string(r.body), `"owner":"tenant"`) {
		t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	// A field only an admin may set is refused, naming it. (A tenant may
	// deploy its own "python", which its jobs then resolve: not here, on
	// the stack other tests share.)
	p := call(t, "PUT", "/v1/functions/net", tok, `{"image":"brig/python:latest","command":["python3","/work/main.py"],"network":true}`)
	p.problem(t, 403, httpapi.TypeForbidden, "")
	if !strings.Contains(string(p.body), `"field":"network"`) {
		t.Errorf("admin-only field: %s; want the problem's field to name network", p.body)
	}
	call(t, "DELETE", "/v1/functions/python", tok, nil).problem(t, 403, httpapi.TypeForbidden, "")
	if r := call(t, "DELETE", "/v1/functions/mine", tok, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	call(t, "DELETE", "/v1/functions/mine", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
}
