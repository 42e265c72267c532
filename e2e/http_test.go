package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// httpDo sends one request to the shared stack's HTTP API with the
// default tenant's token (brig dev's default.token).
func httpDo(t *testing.T, method, path string, body any) *http.Response {
	t.Helper()
	tok, err := os.ReadFile(stack.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, stack.HTTPURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+string(tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeState(t *testing.T, resp *http.Response, status int) sdk.JobState {
	t.Helper()
	data, _ := io.ReadAll(resp.Body)
	var st sdk.JobState
	if resp.StatusCode != status || json.Unmarshal(data, &st) != nil {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, data)
	}
	return st
}

// A python job over HTTP: POST ?wait answers its terminal event.
func TestHTTPPythonWait(t *testing.T) {
	st := decodeState(t, httpDo(t, "POST", "/v1/jobs?wait=60s", map[string]any{"function": "python", "code": "print(6*7)"}), 200)
	if st.Status != schema.StatusSucceeded || st.Terminal == nil || strings.TrimSpace(st.Terminal.Stdout) != "42" {
		t.Fatalf("state %+v, terminal %+v", st, st.Terminal)
	}
}

// The events of a running python job follow over SSE; a cancel of it
// answers cancelled, the stream ends with the cancelled event, and the
// output the job made is kept.
func TestHTTPFollowAndCancel(t *testing.T) {
	id := "http-cancel-" + randomHex(4)
	code := "import time\nprint('started', flush=True)\ntime.sleep(120)\n"
	decodeState(t, httpDo(t, "POST", "/v1/jobs", map[string]any{"id": id, "function": "python", "code": code}), 202)
	var stream *http.Response
	eventually(t, time.Minute, func(context.Context) (bool, string) {
		stream = httpDo(t, "GET", "/v1/jobs/"+id+"/events", nil)
		return stream.StatusCode == 200, fmt.Sprintf("the event stream answers %d", stream.StatusCode)
	})
	sc := bufio.NewScanner(stream.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var types []string
	cancelled := false
	var last schema.Event
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			types = append(types, v)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(data), &last); err != nil {
			t.Fatalf("event %s: %v", data, err)
		}
		if !cancelled && last.Type == schema.EventOutput && strings.Contains(last.Data, "started") {
			resp := httpDo(t, "POST", "/v1/jobs/"+id+"/cancel", nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"cancelled"`) {
				t.Fatalf("cancel: %d %s", resp.StatusCode, body)
			}
			cancelled = true
		}
	}
	if !cancelled || last.Type != schema.EventCancelled || !strings.Contains(last.Stdout, "started") {
		t.Fatalf("events %v; last %+v: want the cancelled event with the job's output", types, last)
	}
}
