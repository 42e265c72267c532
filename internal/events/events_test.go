package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/brig-dev/brig/schema"
)

// serverLimit is what Publish allows a terminal event on the smallest
// server brig runs on.
const serverLimit = schema.MinServerPayload - headerRoom

// hostile is text at its worst for JSON: every kind of byte that encodes to
// more than itself (control characters, quotes, backslashes, line
// separators, invalid UTF-8, HTML characters brig must not escape) between
// multi-byte characters.
func hostile(n int) string {
	const unit = "\x01\"\\\u2028<>&\xff\xfeé漢\n\b"
	s := strings.Repeat(unit, n/len(unit)+1)
	return s[:n]
}

// deepResult is a valid result.json at brig's caps: 256 KiB, nested to the
// maximum depth, full of characters that HTML escaping would grow.
func deepResult(t *testing.T) json.RawMessage {
	t.Helper()
	open := strings.Repeat("[", schema.MaxResultDepth-1) + "{\"k\":\""
	closing := "\"}" + strings.Repeat(" ", 100) + strings.Repeat("]", schema.MaxResultDepth-1) // inner white space is kept
	body := strings.Repeat("<&>", schema.MaxResultBytes/3)[:schema.MaxResultBytes-len(open)-len(closing)]
	raw := open + body + closing
	if !json.Valid([]byte(raw)) || len(raw) > schema.MaxResultBytes || schema.JSONDepth([]byte(raw)) != schema.MaxResultDepth {
		t.Fatalf("test result: valid %v, %d bytes, depth %d", json.Valid([]byte(raw)), len(raw), schema.JSONDepth([]byte(raw)))
	}
	return json.RawMessage(raw)
}

// A terminal event with every field at its bound, and worse (far more
// denials and far longer messages than brig would ever put there), still
// fits the server's max payload, decodes, and keeps the job's result byte
// for byte (docs/design.md §13).
func TestFitAtTheBounds(t *testing.T) {
	t.Parallel()
	result := deepResult(t)
	denials := make([]schema.AuthError, 5000)
	for i := range denials {
		denials[i] = schema.AuthError{Resource: "dict:" + hostile(5000), Action: hostile(5000), Message: hostile(5000)}
	}
	egressDenials := make([]schema.EgressDenial, 5000)
	for i := range egressDenials {
		egressDenials[i] = schema.EgressDenial{Host: hostile(5000), Port: 65535, Reason: schema.EgressMismatch, Message: hostile(5000)}
	}
	now := time.Now().UTC()
	for _, tt := range []struct {
		name           string
		stdout, stderr string
	}{
		{"both streams at MaxOutputBytes", hostile(schema.MaxOutputBytes), hostile(schema.MaxOutputBytes)},
		{"stdout only", hostile(schema.MaxOutputBytes), ""},
		{"stderr only", "", hostile(schema.MaxOutputBytes)},
		{"small stderr keeps all", hostile(schema.MaxOutputBytes), "short"},
		{"plain ASCII", strings.Repeat("a", schema.MaxOutputBytes), strings.Repeat("b", schema.MaxOutputBytes)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := &schema.Event{
				JobID: schema.JobKey(strings.Repeat("t", schema.MaxTenantLen), strings.Repeat("j", 64)), Type: schema.EventResult, Seq: 1 << 40, Time: now, Attempt: 11,
				Status: schema.StatusFailed, ExitCode: 255, Stdout: tt.stdout, Stderr: tt.stderr,
				Output: result, OutputError: hostile(10000), DurationMS: 3_600_000,
				AuthErrors: denials, AuthErrorCount: 1 << 30,
				EgressDenials: egressDenials, EgressDeniedCount: 1 << 30,
				Error: &schema.ErrorInfo{Type: schema.ErrAuthError, Message: hostile(100000)},
				Trace: &schema.Trace{Queued: now, Dispatched: now, Started: now, Finished: now},
			}
			data, err := Fit(ev, serverLimit)
			if err != nil {
				t.Fatalf("Fit: %v", err)
			}
			if len(data) > serverLimit {
				t.Fatalf("encoded %d bytes, over %d", len(data), serverLimit)
			}
			got, err := schema.DecodeEvent(data)
			if err != nil {
				t.Fatalf("the fitted event does not decode: %v", err)
			}
			if !bytes.Equal(got.Output, result) {
				t.Errorf("output changed: %d bytes came back for %d", len(got.Output), len(result))
			}
			if len(got.AuthErrors) != schema.MaxTerminalAuthErrors || got.AuthErrorCount != 1<<30 {
				t.Errorf("auth_errors: %d listed, count %d", len(got.AuthErrors), got.AuthErrorCount)
			}
			if len(got.EgressDenials) != schema.MaxTerminalEgressDenials || got.EgressDeniedCount != 1<<30 ||
				len(got.EgressDenials[0].Host) > schema.MaxEgressHostBytes {
				t.Errorf("egress_denials: %d listed, count %d", len(got.EgressDenials), got.EgressDeniedCount)
			}
			if len(ev.Error.Message) > schema.MaxEventTextBytes || len(ev.OutputError) > schema.MaxEventTextBytes {
				t.Errorf("error message is %d bytes, output_error %d", len(ev.Error.Message), len(ev.OutputError))
			}
			wantStream(t, "stdout", tt.stdout, ev.Stdout, got.StdoutTruncated)
			wantStream(t, "stderr", tt.stderr, ev.Stderr, got.StderrTruncated)
			// The room is used: what was cut, was cut because nothing more fit.
			if (got.StdoutTruncated || got.StderrTruncated) && len(data) < serverLimit-128 {
				t.Errorf("streams cut to %d+%d bytes while the event takes only %d of %d", len(ev.Stdout), len(ev.Stderr), len(data), serverLimit)
			}
		})
	}
}

// wantStream checks a fitted stream: a prefix of what the job printed,
// ending on a character boundary, flagged when shorter.
func wantStream(t *testing.T, name, printed, kept string, truncated bool) {
	t.Helper()
	if !strings.HasPrefix(printed, kept) {
		t.Errorf("%s is not a prefix of what the job printed", name)
	}
	if truncated != (len(kept) < len(printed)) {
		t.Errorf("%s: kept %d of %d bytes, truncated flag %v", name, len(kept), len(printed), truncated)
	}
	if kept != "" && len(kept) < len(printed) && !utf8.FullRuneInString(printed[len(kept):]) {
		t.Errorf("%s was cut inside a character", name)
	}
}

// An event that fits is left whole; escapedLen bounds the real encoding.
func TestFitKeepsWhatFits(t *testing.T) {
	t.Parallel()
	ev := &schema.Event{JobID: "default.j", Type: schema.EventResult, Status: schema.StatusSucceeded,
		Stdout: "hello <world> & \"you\"\n", Stderr: hostile(300), Output: json.RawMessage(`{"a": [1, 2]}`)}
	data, err := Fit(ev, serverLimit)
	if err != nil {
		t.Fatal(err)
	}
	if ev.StdoutTruncated || ev.StderrTruncated || ev.Stdout != "hello <world> & \"you\"\n" {
		t.Errorf("event changed: %+v", ev)
	}
	if !bytes.Contains(data, []byte(`<world> &`)) || !bytes.Contains(data, []byte(`"output":{"a": [1, 2]}`)) {
		t.Errorf("encoding escaped HTML or compacted the output: %s", data)
	}
	for _, s := range []string{"", "abc", hostile(1000), "\u2028\u2029\xff\x7f\ufffd\U0001F600", string([]byte{0xed, 0xa0, 0x80}), "\xe6\xbc"} {
		enc, _ := schema.Marshal(s)
		if got := escapedLen(s); got != len(enc)-2 {
			t.Errorf("escapedLen(%q) = %d, encoding takes %d", s, got, len(enc)-2)
		}
	}
}

// On a server too small for the result, the output goes and output_error
// says why; the event still fits.
func TestFitDropsOutputOnlyWhenItCannotFit(t *testing.T) {
	t.Parallel()
	ev := &schema.Event{JobID: "default.j", Type: schema.EventResult, Status: schema.StatusSucceeded,
		Stdout: "x", Output: json.RawMessage(`"` + strings.Repeat("a", 100<<10) + `"`)}
	data, err := Fit(ev, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 64<<10 || ev.Output != nil || !strings.Contains(ev.OutputError, "max_payload") || ev.Stdout != "x" {
		t.Errorf("got %d bytes, output %d bytes, output_error %q, stdout %q", len(data), len(ev.Output), ev.OutputError, ev.Stdout)
	}
}
