package events

import (
	"encoding/json"
	"testing"

	"github.com/brig-dev/brig/schema"
)

// shrunk is the part of an event that shrink changes.
type shrunk struct {
	stdout, stderr       string
	stdoutCut, stderrCut bool
	output               string
}

func state(ev *schema.Event) shrunk {
	return shrunk{ev.Stdout, ev.Stderr, ev.StdoutTruncated, ev.StderrTruncated, string(ev.Output)}
}

func TestShrinkStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   schema.Event
		want shrunk
	}{
		{
			"stdout larger",
			schema.Event{Stdout: "12345678", Stderr: "ab", Output: json.RawMessage(`1`)},
			shrunk{"1234", "ab", true, false, "1"},
		},
		{
			"stderr larger",
			schema.Event{Stdout: "ab", Stderr: "12345678", Output: json.RawMessage(`1`)},
			shrunk{"ab", "1234", false, true, "1"},
		},
		{"equal: stdout first", schema.Event{Stdout: "abcd", Stderr: "wxyz"}, shrunk{"ab", "wxyz", true, false, ""}},
		{"odd length rounds down", schema.Event{Stdout: "abcde"}, shrunk{"ab", "", true, false, ""}},
		{"one byte goes", schema.Event{Stdout: "a"}, shrunk{"", "", true, false, ""}},
		{"stderr only", schema.Event{Stderr: "abc"}, shrunk{"", "a", false, true, ""}},
		{
			"flag already set stays",
			schema.Event{Stdout: "abcd", StdoutTruncated: true, StderrTruncated: true},
			shrunk{"ab", "", true, true, ""},
		},
		{
			"no streams: output dropped",
			schema.Event{Output: json.RawMessage(`{"big":true}`)},
			shrunk{"", "", false, false, ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := tt.in
			shrink(&ev)
			if got := state(&ev); got != tt.want {
				t.Errorf("shrink = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Repeated shrinking empties both streams before it touches the output.
func TestShrinkOrder(t *testing.T) {
	t.Parallel()
	ev := &schema.Event{Stdout: "aaaa", Stderr: "bb", Output: json.RawMessage(`{"x":1}`)}
	want := []shrunk{
		{"aa", "bb", true, false, `{"x":1}`},
		{"a", "bb", true, false, `{"x":1}`},
		{"a", "b", true, true, `{"x":1}`},
		{"", "b", true, true, `{"x":1}`},
		{"", "", true, true, `{"x":1}`},
		{"", "", true, true, ""},
	}
	for i, w := range want {
		shrink(ev)
		if got := state(ev); got != w {
			t.Fatalf("after %d shrinks: %+v, want %+v", i+1, got, w)
		}
	}
	if ev.Output != nil {
		t.Errorf("Output = %q, want nil", ev.Output)
	}
}

// Halving converges: a terminal event of any size reaches the empty state
// in about log2(size) steps per stream, so encode's loop ends.
func TestShrinkConverges(t *testing.T) {
	t.Parallel()
	big := make([]byte, 1<<20)
	ev := &schema.Event{Stdout: string(big), Stderr: string(big[:1000]), Output: json.RawMessage(`1`)}
	steps := 0
	for ev.Stdout != "" || ev.Stderr != "" || ev.Output != nil {
		shrink(ev)
		if steps++; steps > 100 {
			t.Fatalf("no end after %d shrinks: %d, %d, %q", steps, len(ev.Stdout), len(ev.Stderr), ev.Output)
		}
	}
	if steps != 21+10+1 {
		t.Errorf("took %d shrinks, want 32", steps)
	}
}
