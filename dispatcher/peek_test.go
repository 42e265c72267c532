package dispatcher

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/schema"
)

func TestPeekSubmission(t *testing.T) {
	t.Parallel()
	msgID := func(id string) nats.Header { return nats.Header{jetstream.MsgIDHeader: []string{id}} }
	huge := `{"id":"big","reply_to":"_INBOX.default.x","code":"` + strings.Repeat("x", schema.DefaultMaxJobBytes*4) + `"}`
	subject := schema.SubmitSubject(schema.DefaultTenant, "python")
	tests := []struct {
		name        string
		subject     string
		data        string
		headers     nats.Header
		wantKey     string
		wantReplyTo string
	}{
		{"id and reply_to", "", `{"id":"job-1","reply_to":"_INBOX.default.abc"}`, nil, "default.job-1", "_INBOX.default.abc"},
		{"other fields invalid", "", `{"id":"job-1","reply_to":"_INBOX.default.r1","timeout":"x","nope":1}`, nil, "default.job-1", "_INBOX.default.r1"},
		{"tenant from the subject", schema.SubmitSubject("acme", "python"), `{"id":"job-1","reply_to":"_INBOX.acme.r"}`, nil, "acme.job-1", "_INBOX.acme.r"},
		{"reply_to in another tenant's inbox", "", `{"id":"job-1","reply_to":"_INBOX.acme.r"}`, nil, "default.job-1", ""},
		{"reply_to in no tenant's inbox", "", `{"id":"job-1","reply_to":"_INBOX.r"}`, nil, "default.job-1", ""},
		{"reply_to outside the inboxes", "", `{"id":"job-1","reply_to":"r.1"}`, nil, "default.job-1", ""},
		{"own events subject", "", `{"id":"job-1","reply_to":"brig.events.default.job-1.copy"}`, nil, "default.job-1", "brig.events.default.job-1.copy"},
		{"own id in another tenant's events", "", `{"id":"job-1","reply_to":"brig.events.acme.job-1.copy"}`, nil, "default.job-1", ""},
		{"reply_to inside brig", "", `{"id":"job-1","reply_to":"brig.work.default"}`, nil, "default.job-1", ""},
		{"reply_to of another job", "", `{"id":"job-1","reply_to":"brig.events.default.job-2.x"}`, nil, "default.job-1", ""},
		{"reply_to wildcard", "", `{"id":"job-1","reply_to":"_INBOX.default.>"}`, nil, "default.job-1", ""},
		{"reply_to with space", "", `{"id":"job-1","reply_to":"_INBOX.default.a b"}`, nil, "default.job-1", ""},
		{"reply_to system", "", `{"id":"job-1","reply_to":"$SYS.x"}`, nil, "default.job-1", ""},
		{"reply_to not a string", "", `{"id":"job-1","reply_to":7}`, nil, "default.job-1", ""},
		{"payload id wins over header", "", `{"id":"job-1"}`, msgID("default.job-2"), "default.job-1", ""},
		{"id with dot falls back to header", "", `{"id":"a.b","reply_to":"_INBOX.default.x"}`, msgID("default.hdr-1"), "default.hdr-1", ""},
		{"id not a string", "", `{"id":12}`, msgID("default.hdr-1"), "default.hdr-1", ""},
		{"not JSON", "", `{"id":"job-1"`, msgID("default.hdr-1"), "default.hdr-1", ""},
		{"header of another tenant", "", `{"id":12}`, msgID("acme.hdr-1"), "", ""},
		{"header not a key", "", `{"id":12}`, msgID("hdr-1"), "", ""},
		{"not JSON, no header", "", `garbage`, nil, "", ""},
		{"no id, no header", "", `{"reply_to":"_INBOX.default.x"}`, nil, "", ""},
		{"invalid header", "", `{}`, msgID("default.a b"), "", ""},
		{"header with wildcard", "", `{}`, msgID("default.*"), "", ""},
		{"id too long", "", `{"id":"` + strings.Repeat("a", 65) + `"}`, nil, "", ""},
		{"oversize payload is not parsed", "", huge, msgID("default.hdr-1"), "default.hdr-1", ""},
		{"empty", "", ``, nil, "", ""},
		{"subject without a tenant", "brig.submit.python", `{"id":"job-1"}`, msgID("default.job-1"), "", ""},
		{"subject with an invalid tenant", "brig.submit.Acme.python", `{"id":"job-1"}`, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			subj := tt.subject
			if subj == "" {
				subj = subject
			}
			key, replyTo := peekSubmission(subj, []byte(tt.data), tt.headers)
			if key != tt.wantKey || replyTo != tt.wantReplyTo {
				t.Errorf("peekSubmission = (%q, %q), want (%q, %q)", key, replyTo, tt.wantKey, tt.wantReplyTo)
			}
		})
	}
}

func TestPeekWork(t *testing.T) {
	t.Parallel()
	msgID := func(id string) nats.Header { return nats.Header{jetstream.MsgIDHeader: []string{id}} }
	for _, tt := range []struct {
		name, data       string
		headers          nats.Header
		wantKey, wantRep string
	}{
		{"key and reply_to", `{"job":{"id":"acme.j1","reply_to":"_INBOX.acme.x"}}`, nil, "acme.j1", "_INBOX.acme.x"},
		{"reply_to of another tenant", `{"job":{"id":"acme.j1","reply_to":"_INBOX.default.x"}}`, nil, "acme.j1", ""},
		{"plain id falls back to header", `{"job":{"id":"j1"}}`, msgID("acme.j1"), "acme.j1", ""},
		{"nothing usable", `{"job":{"id":"j1"}}`, msgID("j1"), "", ""},
	} {
		key, replyTo := peekWork([]byte(tt.data), tt.headers)
		if key != tt.wantKey || replyTo != tt.wantRep {
			t.Errorf("%s: peekWork = (%q, %q), want (%q, %q)", tt.name, key, replyTo, tt.wantKey, tt.wantRep)
		}
	}
}
