package dispatcher

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

// kvRig is a rig resolving through the BRIG_FUNCTIONS bucket on conn
// (the rig's own connection when nil).
func kvRig(t *testing.T, conn func(*nats.Conn) *nats.Conn, edit func(*Config)) *rig {
	t.Helper()
	return newRig(t, func(c *Config) {
		nc := c.Conn
		if conn != nil {
			nc = conn(nc)
		}
		fns, err := functions.OpenKVResolver(t.Context(), nc, 1)
		if err != nil {
			t.Fatal(err)
		}
		c.Functions = fns
		edit(c)
	})
}

// submitTo publishes a job for function fn and returns its stream sequence.
func (r *rig) submitTo(fn, id string) uint64 {
	r.t.Helper()
	data, err := schema.Marshal(schema.Job{ID: id, Function: fn, Code: "print(1)"})
	if err != nil {
		r.t.Fatal(err)
	}
	msg := &nats.Msg{Subject: schema.SubmitSubject(schema.DefaultTenant, fn), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, k(id))
	ack, err := r.js.PublishMsg(r.t.Context(), msg)
	if err != nil {
		r.t.Fatalf("submit: %v", err)
	}
	return ack.Sequence
}

// deliveries returns the submission consumer's deliveries so far (each
// redelivery counts) and what it still holds.
func (r *rig) deliveries() (delivered uint64, pending, ackPending int) {
	r.t.Helper()
	cons, err := r.js.Consumer(r.t.Context(), schema.StreamSubmit, bus.DispatcherConsumer)
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := cons.Info(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	return info.Delivered.Consumer, int(info.NumPending), info.NumAckPending
}

// TestInvalidStoredFunctionEndsAtOnce (issue 11): a definition written
// straight into BRIG_FUNCTIONS that is not valid ends each job for it in
// one terminal error on its first delivery, naming the function and what
// is wrong; the submission is settled, never retried. Retries here would
// wait an hour, so a terminal event at all shows there was none.
func TestInvalidStoredFunctionEndsAtOnce(t *testing.T) {
	t.Parallel()
	r := kvRig(t, nil, func(c *Config) { c.Backoff = time.Hour })
	kv, err := r.js.KeyValue(t.Context(), functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fn, value string
		want      string // in the message, after the function's name
	}{
		{"garbage", `{garbage}`, "(message): is not valid JSON"},
		{"empty", ``, "(message): is not a JSON object"},
		{"list", `["python3", "/work/main.py"]`, "(message): is not a JSON object"},
		{"shape", `{"name":"shape","image":"x","command":"python3 main.py"}`, "command: must be an array"},
		{"extra", `{"name":"extra","image":"x","command":["x"],"colour":1}`, "colour: is not a known field"},
		{"tiny", `{"name":"tiny","image":"x","command":["x"],"limits":{"memory_mb":1}}`, "limits.memory_mb: "},
		{"alias", `{"name":"echo","image":"x","command":["x"]}`, `name: is "echo", not its key "alias"`},
		// A broken deployed python is not replaced by the built-in.
		{"python", `{"name":"python"}`, "image: "},
	}
	seqs := map[string]uint64{}
	for _, tt := range tests {
		if _, err := kv.Put(t.Context(), tt.fn, []byte(tt.value)); err != nil {
			t.Fatal(err)
		}
		seqs[tt.fn] = r.submitTo(tt.fn, "bad-"+tt.fn)
	}
	for _, tt := range tests {
		ev := r.wantTerminal("bad-"+tt.fn, schema.StatusError, schema.ErrInfrastructure, 0)
		prefix := `function "` + tt.fn + `": its stored definition (BRIG_FUNCTIONS revision `
		if ev.Error == nil || !strings.HasPrefix(ev.Error.Message, prefix) || !strings.Contains(ev.Error.Message, ") is invalid: "+tt.want) ||
			!strings.HasSuffix(ev.Error.Message, "; redeploy it with brig deploy") {
			t.Errorf("%s: error %+v; want %q...%q", tt.fn, ev.Error, prefix, tt.want)
		}
		r.settled(seqs[tt.fn])
	}
	if delivered, pending, ackPending := r.deliveries(); delivered != uint64(len(tests)) || pending != 0 || ackPending != 0 {
		t.Errorf("submission consumer: %d deliveries, %d pending, %d unacked; want %d, 0, 0", delivered, pending, ackPending, len(tests))
	}

	// Deploying a valid definition over it repairs the function.
	fn := schema.Function{Name: "garbage", Image: "x", Command: []string{"x"}}
	if _, err := r.d.cfg.Functions.(functions.KVResolver).Store.Put(t.Context(), fn); err != nil {
		t.Fatal(err)
	}
	r.settled(r.submitTo("garbage", "fixed-1"))
	if counts := r.stored("fixed-1"); counts[schema.EventAccepted] != 1 || counts[schema.EventError] != 0 {
		t.Errorf("job of the redeployed function stored %v; want it accepted", counts)
	}
}

// TestUnreachableStoreRetries: a bucket the dispatcher cannot read is the
// platform's failure, retried MaxDeliver times before the job ends.
func TestUnreachableStoreRetries(t *testing.T) {
	t.Parallel()
	var own *nats.Conn
	r := kvRig(t, func(nc *nats.Conn) *nats.Conn {
		var err error
		if own, err = nats.Connect(nc.ConnectedUrl()); err != nil {
			t.Fatal(err)
		}
		return own
	}, func(*Config) {})
	own.Close()
	seq := r.submitTo("python", "unreachable-1")
	ev := r.wantTerminal("unreachable-1", schema.StatusError, schema.ErrInfrastructure, 0)
	if want := "dispatch failed after 3 attempts: resolve function"; !strings.Contains(ev.Error.Message, want) {
		t.Errorf("message %q does not say %q", ev.Error.Message, want)
	}
	r.settled(seq)
	if delivered, _, _ := r.deliveries(); delivered != 3 {
		t.Errorf("%d deliveries; want MaxDeliver (3)", delivered)
	}
}
