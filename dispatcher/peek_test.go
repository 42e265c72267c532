package dispatcher

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

func TestPeekJob(t *testing.T) {
	t.Parallel()
	msgID := func(id string) nats.Header { return nats.Header{jetstream.MsgIDHeader: []string{id}} }
	huge := `{"id":"big","reply_to":"_INBOX.x","code":"` + strings.Repeat("x", schema.DefaultMaxJobBytes*4) + `"}`
	tests := []struct {
		name        string
		data        string
		headers     nats.Header
		wantID      string
		wantReplyTo string
	}{
		{"id and reply_to", `{"id":"job-1","reply_to":"_INBOX.abc"}`, nil, "job-1", "_INBOX.abc"},
		{"other fields invalid", `{"id":"job-1","reply_to":"_INBOX.r1","timeout":"x","nope":1}`, nil, "job-1", "_INBOX.r1"},
		{"reply_to outside the inboxes", `{"id":"job-1","reply_to":"r.1"}`, nil, "job-1", ""},
		{"own events subject", `{"id":"job-1","reply_to":"brig.events.job-1.copy"}`, nil, "job-1", "brig.events.job-1.copy"},
		{"reply_to inside brig", `{"id":"job-1","reply_to":"brig.work.default"}`, nil, "job-1", ""},
		{"reply_to of another job", `{"id":"job-1","reply_to":"brig.events.job-2.x"}`, nil, "job-1", ""},
		{"reply_to wildcard", `{"id":"job-1","reply_to":"a.>"}`, nil, "job-1", ""},
		{"reply_to with space", `{"id":"job-1","reply_to":"a b"}`, nil, "job-1", ""},
		{"reply_to system", `{"id":"job-1","reply_to":"$SYS.x"}`, nil, "job-1", ""},
		{"reply_to not a string", `{"id":"job-1","reply_to":7}`, nil, "job-1", ""},
		{"payload id wins over header", `{"id":"job-1"}`, msgID("job-2"), "job-1", ""},
		{"id with dot falls back to header", `{"id":"a.b","reply_to":"_INBOX.x"}`, msgID("hdr-1"), "hdr-1", ""},
		{"id not a string", `{"id":12}`, msgID("hdr-1"), "hdr-1", ""},
		{"not JSON", `{"id":"job-1"`, msgID("hdr-1"), "hdr-1", ""},
		{"not JSON, no header", `garbage`, nil, "", ""},
		{"no id, no header", `{"reply_to":"_INBOX.x"}`, nil, "", ""},
		{"invalid header", `{}`, msgID("a b"), "", ""},
		{"header with wildcard", `{}`, msgID("*"), "", ""},
		{"id too long", `{"id":"` + strings.Repeat("a", 65) + `"}`, nil, "", ""},
		{"oversize payload is not parsed", huge, msgID("hdr-1"), "hdr-1", ""},
		{"empty", ``, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, replyTo := peekJob([]byte(tt.data), tt.headers)
			if id != tt.wantID || replyTo != tt.wantReplyTo {
				t.Errorf("peekJob = (%q, %q), want (%q, %q)", id, replyTo, tt.wantID, tt.wantReplyTo)
			}
		})
	}
}
