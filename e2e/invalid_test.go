package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// rawSubmission is a payload published as is, bypassing the SDK's checks.
type rawSubmission struct {
	function string // subject token: brig.submit.<tenant>.<function>
	msgID    string // Nats-Msg-Id: the job's key
	data     []byte
	watchID  string // the job id the rejection is reported under (in the default tenant)
}

// jobJSON renders a job object with extra or replaced top-level fields.
func jobJSON(t *testing.T, id string, fields map[string]any) []byte {
	t.Helper()
	obj := map[string]any{"id": id, "function": "python", "code": `print("never runs")`}
	for k, v := range fields {
		obj[k] = v
	}
	data, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		build   func(t *testing.T, id string) rawSubmission
		errType schema.ErrorType
		// wantAll must all appear in error.message; wantAny, one of them.
		wantAll []string
		wantAny []string
	}{{
		name: "not JSON",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", keyOf(id), []byte("print('hello') # not JSON"), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"JSON"},
	}, {
		name: "wrong type",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", keyOf(id), jobJSON(t, id, map[string]any{"timeout": "soon"}), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"timeout"},
	}, {
		name: "unknown field",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", keyOf(id), jobJSON(t, id, map[string]any{"colour": 1}), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"colour"},
	}, {
		name: "oversize",
		build: func(t *testing.T, id string) rawSubmission {
			code := "# " + strings.Repeat("x", 600<<10) + "\nprint(1)\n"
			return rawSubmission{"python", keyOf(id), jobJSON(t, id, map[string]any{"code": code}), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"limit"},
		wantAny: []string{"524288", "512 KiB", "512KiB", "512 kB"},
	}, {
		name: "unknown function",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"nosuch", keyOf(id), jobJSON(t, id, map[string]any{"function": "nosuch"}), id}
		},
		errType: schema.ErrNotFound,
		wantAll: []string{"nosuch"},
	}, {
		name: "file path escaping /work",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", keyOf(id), jobJSON(t, id, map[string]any{"files": map[string]string{"../etc/x": "y"}}), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"files", "../etc/x"},
	}, {
		name: "absolute file path",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", keyOf(id), jobJSON(t, id, map[string]any{"files": map[string]string{"/etc/x": "y"}}), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"files", "/etc/x"},
	}, {
		name: "header id differs from payload id",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", keyOf(id), jobJSON(t, id+"-other", nil), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"id", "-other"},
	}, {
		name: "header is the bare id, not the key",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", id, jobJSON(t, id, nil), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"Nats-Msg-Id", keyOf("")},
	}, {
		name: "function differs from subject",
		build: func(t *testing.T, id string) rawSubmission {
			return rawSubmission{"python", keyOf(id), jobJSON(t, id, map[string]any{"function": "other"}), id}
		},
		errType: schema.ErrInvalidJob,
		wantAll: []string{"function", "other"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := tt.build(t, newID("invalid"))
			ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
			defer cancel()
			if err := publishRaw(ctx, clientNC, brig.Tenant(), sub.function, sub.msgID, sub.data); err != nil {
				t.Fatalf("publish: %v", err)
			}
			ev, err := watchResult(t, sub.watchID)
			wantStatus(t, ev, schema.EventError, schema.StatusRejected, tt.errType)
			wantIs(t, err, sdk.ErrRejected)
			msg := ""
			if ev.Error != nil {
				msg = ev.Error.Message
			}
			for _, w := range tt.wantAll {
				if !strings.Contains(msg, w) {
					t.Errorf("error.message %q does not mention %q", msg, w)
				}
			}
			if len(tt.wantAny) > 0 && !containsAny(msg, tt.wantAny) {
				t.Errorf("error.message %q mentions none of %q", msg, tt.wantAny)
			}
			if n := countTerminal(t, keyOf(sub.watchID)); n != 1 {
				t.Errorf("%d terminal events stored, want exactly 1", n)
			}
			if n := countStored(t, schema.EventSubject(keyOf(sub.watchID), schema.EventStarted)); n != 0 {
				t.Errorf("a rejected job has %d started events", n)
			}
		})
	}
	// Every rejected submission was terminated, not left for redelivery.
	waitDispatcherIdle(t)
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestDuplicateSubmission(t *testing.T) {
	t.Parallel()
	job := pythonJob("dup", `print("once")`)
	data, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	for i := range 2 {
		if err := publishRaw(ctx, clientNC, brig.Tenant(), "python", keyOf(job.ID), data); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	ev, err := watchResult(t, job.ID)
	if err != nil {
		t.Fatalf("run: %v (event %s)", err, brief(ev))
	}
	wantCounts := func(when string) {
		t.Helper()
		for typ, want := range map[schema.EventType]int{schema.EventAccepted: 1, schema.EventStarted: 1, schema.EventResult: 1} {
			if n := countStored(t, schema.EventSubject(keyOf(job.ID), typ)); n != want {
				t.Errorf("%s: %d %s events stored, want %d", when, n, typ, want)
			}
		}
		if n := countTerminal(t, keyOf(job.ID)); n != 1 {
			t.Errorf("%s: %d terminal events stored, want 1", when, n)
		}
	}
	wantCounts("after a duplicate publish")

	// Past the stream's dedup (no Nats-Msg-Id), the dispatcher must see the
	// job already ended and drop it.
	if err := publishRaw(ctx, clientNC, brig.Tenant(), "python", "", data); err != nil {
		t.Fatalf("resubmit: %v", err)
	}
	waitDispatcherIdle(t)
	wantCounts("after a resubmission without message id")
}

// TestRejectedResubmissionKeepsRunningJob resubmits the id of a running job
// in a submission brig must reject (no Nats-Msg-Id, so the stream's dedup
// does not catch it). The rejection concerns that submission: the job that
// was accepted under the id must still end with its own result.
func TestRejectedResubmissionKeepsRunningJob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		function string
		fields   map[string]any
	}{
		{"invalid payload", "python", map[string]any{"colour": 1}},
		{"unknown function", "nosuch", map[string]any{"function": "nosuch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
			defer cancel()
			job := pythonJob("resubmit", "import time\ntime.sleep(3)\nprint('done')")
			h, err := brig.Submit(ctx, job)
			if err != nil {
				t.Fatalf("submit: %v", err)
			}
			defer h.Stop()
			waitForEvent(ctx, t, h.Events(), schema.EventStarted)

			if err := publishRaw(ctx, clientNC, brig.Tenant(), tt.function, "", jobJSON(t, job.ID, tt.fields)); err != nil {
				t.Fatalf("resubmit: %v", err)
			}
			ev, err := h.Result(ctx)
			if ev == nil {
				t.Fatalf("no terminal event: %v", err)
			}
			if ev.Status != schema.StatusSucceeded || ev.Stdout != "done\n" {
				t.Errorf("running job %s ended %s/%s instead of its own result: %s", job.ID, ev.Type, ev.Status, brief(ev))
			}
			if n := countTerminal(t, keyOf(job.ID)); n != 1 {
				t.Errorf("%d terminal events stored, want 1", n)
			}
		})
	}
}

// waitForEvent reads evs until an event of type typ, failing on a terminal
// event or when ctx ends.
func waitForEvent(ctx context.Context, t *testing.T, evs <-chan schema.Event, typ schema.EventType) schema.Event {
	t.Helper()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("events ended before a %s event", typ)
			}
			if ev.Type == typ {
				return ev
			}
			if schema.IsTerminal(ev.Type) {
				t.Fatalf("job ended before a %s event: %s", typ, brief(&ev))
			}
		case <-ctx.Done():
			t.Fatalf("no %s event: %v", typ, ctx.Err())
		}
	}
}
