package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/httpapi"
	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// POST ?wait answers 200 with the terminal event; without wait, 202 and a
// Location that GET ?wait follows to the end.
func TestSubmit(t *testing.T) {
	tok := defaultToken(t)
	st := call(t, "POST", "/v1/jobs?wait=30s", tok, echoJob("", "hi")).state(t, http.StatusOK)
	if st.Status != schema.StatusSucceeded || st.Terminal == nil || st.Terminal.Stdout != "hi" ||
		st.Key != schema.JobKey(schema.DefaultTenant, st.ID) || !schema.ValidID(st.ID) {
		t.Fatalf("state %+v (terminal %+v)", st, st.Terminal)
	}

	r := call(t, "POST", "/v1/jobs", tok, echoJob("submit-nowait", "x"), "Content-Type", "application/json; charset=utf-8")
	st = r.state(t, http.StatusAccepted)
	if st.Status != sdk.StatusQueued || st.Terminal != nil || r.header.Get("Location") != "/v1/jobs/submit-nowait" {
		t.Fatalf("202 state %+v, Location %q", st, r.header.Get("Location"))
	}
	st = call(t, "GET", "/v1/jobs/submit-nowait?wait=30", tok, nil).state(t, http.StatusOK)
	if st.Status != schema.StatusSucceeded || st.Terminal == nil || st.Terminal.Stdout != "x" {
		t.Fatalf("GET ?wait: %+v", st)
	}
	if st := call(t, "GET", "/v1/jobs/submit-nowait", tok, nil).state(t, http.StatusOK); st.Terminal == nil {
		t.Fatalf("GET of an ended job: %+v", st)
	}
}

// A second POST of an id returns that job's state and never runs it again.
func TestSubmitIdempotent(t *testing.T) {
	tok := defaultToken(t)
	first := call(t, "POST", "/v1/jobs?wait=30s", tok, echoJob("idem-1", "one")).state(t, http.StatusOK)
	again := call(t, "POST", "/v1/jobs?wait=30s", tok, echoJob("idem-1", "two")).state(t, http.StatusOK)
	if again.Terminal == nil || again.Terminal.Stdout != "one" || !again.Terminal.Time.Equal(first.Terminal.Time) {
		t.Fatalf("resubmission answered %+v, want the first run's terminal event %+v", again.Terminal, first.Terminal)
	}
	nowait := call(t, "POST", "/v1/jobs", tok, echoJob("idem-1", "three")).state(t, http.StatusOK)
	if nowait.Terminal == nil || nowait.Terminal.Stdout != "one" {
		t.Fatalf("resubmission without wait: %+v", nowait)
	}
	r := call(t, "GET", "/v1/jobs/idem-1/events", tok, nil)
	if got := eventTypes(parseFrames(string(r.body))); strings.Join(got, ",") != "accepted,result" {
		t.Fatalf("events of a job posted three times: %v, want one run", got)
	}
}

// Every bad request is a problem naming what is wrong, and nothing is
// submitted.
func TestSubmitInvalid(t *testing.T) {
	tok := defaultToken(t)
	big := `{"id":"bad-big","function":"echo","stdin":"` + strings.Repeat("a", schema.DefaultMaxJobBytes) + `"}`
	for _, tt := range []struct {
		name, id, path, body string
		header               []string
		status               int
		typ                  httpapi.ErrorType
		field                string
	}{
		{"malformed JSON", "bad-json", "/v1/jobs", `{"id":"bad-json","function":`, nil, 400, httpapi.TypeInvalidJob, ""},
		{"not an object", "bad-array", "/v1/jobs", `["bad-array"]`, nil, 400, httpapi.TypeInvalidJob, "(message)"},
		{"unknown field", "bad-field", "/v1/jobs", `{"id":"bad-field","function":"echo","bogus":1}`, nil, 400, httpapi.TypeInvalidJob, "bogus"},
		{"wrong type", "bad-type", "/v1/jobs", `{"id":"bad-type","function":"echo","timeout":"1s"}`, nil, 400, httpapi.TypeInvalidJob, "timeout"},
		{"invalid value", "bad-value", "/v1/jobs", `{"id":"bad-value","function":"echo","timeout":-1}`, nil, 400, httpapi.TypeInvalidJob, "timeout"},
		{"trailing data", "bad-trail", "/v1/jobs", `{"id":"bad-trail","function":"echo"} {}`, nil, 400, httpapi.TypeInvalidJob, "(message)"},
		{"scopes of a restricted job", "bad-scope", "/v1/jobs", `{"id":"bad-scope","function":"echo","restricted":true,"scopes":["dict:d:read"]}`, nil, 400, httpapi.TypeInvalidJob, "restricted"},
		{"foreign reply_to", "bad-reply", "/v1/jobs", `{"id":"bad-reply","function":"echo","reply_to":"_INBOX.other.x"}`, nil, 400, httpapi.TypeInvalidJob, ""},
		{"too large", "bad-big", "/v1/jobs", big, nil, 413, httpapi.TypeTooLarge, "(message)"},
		{"content type", "bad-ct", "/v1/jobs", `{"id":"bad-ct","function":"echo"}`, []string{"Content-Type", "text/plain"}, 415, httpapi.TypeUnsupportedMediaType, "Content-Type"},
		{"bad wait", "bad-wait", "/v1/jobs?wait=forever", `{"id":"bad-wait","function":"echo"}`, nil, 400, httpapi.TypeInvalidRequest, "wait"},
		{"wait too long", "bad-wait2", "/v1/jobs?wait=16m", `{"id":"bad-wait2","function":"echo"}`, nil, 400, httpapi.TypeInvalidRequest, "wait"},
		{"zero wait", "bad-wait3", "/v1/jobs?wait=0", `{"id":"bad-wait3","function":"echo"}`, nil, 400, httpapi.TypeInvalidRequest, "wait"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			call(t, "POST", tt.path, tok, tt.body, tt.header...).problem(t, tt.status, tt.typ, tt.field)
			call(t, "GET", "/v1/jobs/"+tt.id, tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
		})
	}
}

// Paths, methods and ids the API has not.
func TestRoutesRefused(t *testing.T) {
	tok := defaultToken(t)
	call(t, "GET", "/v1/jobs/never-submitted", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
	call(t, "POST", "/v1/jobs/never-submitted/cancel", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
	call(t, "GET", "/v1/jobs/never-submitted/events", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
	call(t, "GET", "/v1/jobs/bad.id", tok, nil).problem(t, 400, httpapi.TypeInvalidRequest, "id")
	call(t, "GET", "/v1/jobs/"+strings.Repeat("a", 65), tok, nil).problem(t, 400, httpapi.TypeInvalidRequest, "id")
	call(t, "GET", "/v1/nothing", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
	p := call(t, "DELETE", "/v1/jobs", tok, nil)
	p.problem(t, 405, httpapi.TypeMethodNotAllowed, "")
	if allow := p.header.Get("Allow"); allow != "POST" {
		t.Errorf("Allow %q, want POST", allow)
	}
	call(t, "GET", "/v1/jobs/x?wait=-1s", tok, nil).problem(t, 400, httpapi.TypeInvalidRequest, "wait")
	call(t, "GET", "/v1/jobs/x/events?after=-1", tok, nil).problem(t, 400, httpapi.TypeInvalidRequest, "after")
	call(t, "GET", "/v1/jobs/x/events", tok, nil, "Last-Event-ID", "x").problem(t, 400, httpapi.TypeInvalidRequest, "Last-Event-ID")
}

// Cancel answers the job's terminal status; cancelling a queued job ends
// it as cancelled.
func TestCancel(t *testing.T) {
	tok := defaultToken(t)
	stuck := deployStuck(t)
	call(t, "POST", "/v1/jobs?wait=30s", tok, echoJob("cancel-done", "")).state(t, http.StatusOK)
	r := call(t, "POST", "/v1/jobs/cancel-done/cancel", tok, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"succeeded"`) || !strings.Contains(string(r.body), `"job_id":"default.cancel-done"`) {
		t.Fatalf("cancel of an ended job: %d %s", r.status, r.body)
	}
	call(t, "POST", "/v1/jobs", tok, map[string]any{"id": "cancel-queued", "function": stuck, "code": "x"}).state(t, http.StatusAccepted)
	waitFor(t, "the queued job to be accepted", func() bool {
		return call(t, "GET", "/v1/jobs/cancel-queued", tok, nil).status == http.StatusOK
	})
	if st := call(t, "GET", "/v1/jobs/cancel-queued", tok, nil).state(t, 200); st.Status != sdk.StatusQueued {
		t.Fatalf("queued job's state %+v", st)
	}
	r = call(t, "POST", "/v1/jobs/cancel-queued/cancel", tok, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"cancelled"`) {
		t.Fatalf("cancel of a queued job: %d %s", r.status, r.body)
	}
	if st := call(t, "GET", "/v1/jobs/cancel-queued?wait=30s", tok, nil).state(t, 200); st.Status != schema.StatusCancelled || st.Terminal == nil {
		t.Fatalf("cancelled job's state %+v", st)
	}
}

func TestStatus(t *testing.T) {
	r := call(t, "GET", "/v1/status", defaultToken(t), nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"tenant":"default"`) {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
}
