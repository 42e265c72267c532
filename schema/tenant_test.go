package schema_test

import (
	"strings"
	"testing"

	"github.com/brig-dev/brig/schema"
)

func TestTenantNamesAndKeys(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"default": true, "a": true, "acme-2": true, "abcdefghijklmnopqrst": true,
		"": false, "Acme": false, "2acme": false, "-a": false, "a.b": false, "a_b": false, "abcdefghijklmnopqrstu": false,
	} {
		if got := schema.ValidTenant(name); got != want {
			t.Errorf("ValidTenant(%q) = %v, want %v", name, got, want)
		}
	}
	key := schema.JobKey("acme", "job-1")
	if key != "acme.job-1" || !schema.ValidJobKey(key) {
		t.Fatalf("JobKey = %q", key)
	}
	if tenant, id, ok := schema.SplitJobKey(key); !ok || tenant != "acme" || id != "job-1" {
		t.Errorf("SplitJobKey(%q) = %q, %q, %v", key, tenant, id, ok)
	}
	for _, bad := range []string{"job-1", "acme.", ".job-1", "Acme.job-1", "acme.job.1", "acme.job 1", "acme.*", "acme.>"} {
		if schema.ValidJobKey(bad) {
			t.Errorf("ValidJobKey(%q) = true", bad)
		}
	}
}

func TestTenantSubjects(t *testing.T) {
	t.Parallel()
	if got := schema.SubmitSubject("acme", "python"); got != "brig.submit.acme.python" {
		t.Errorf("SubmitSubject = %q", got)
	}
	for subject, want := range map[string][2]string{
		"brig.submit.acme.python":  {"acme", "python"},
		"brig.submit.default.echo": {"default", "echo"},
		"brig.submit.python":       {},
		"brig.submit.Acme.python":  {},
		"brig.submit.acme.py.thon": {},
		"brig.submit.acme.":        {},
		"brig.cancel.acme.python":  {},
	} {
		tenant, fn, ok := schema.ParseSubmitSubject(subject)
		if ok != (want[0] != "") || tenant != want[0] || fn != want[1] {
			t.Errorf("ParseSubmitSubject(%q) = %q, %q, %v; want %q", subject, tenant, fn, ok, want)
		}
	}
	key := schema.JobKey("acme", "j1")
	for got, want := range map[string]string{
		schema.CancelSubject(key):            "brig.cancel.acme.j1",
		schema.ReplaySubject(key):            "brig.replay.acme.j1",
		schema.EventSubject(key, "accepted"): "brig.events.acme.j1.accepted",
		schema.EventsFilter(key):             "brig.events.acme.j1.>",
		schema.TerminalMsgID(key):            "acme.j1.terminal",
		schema.ActiveSubject(key):            "brig.active.acme.j1",
		schema.ActiveStream("acme"):          "BRIG_ACTIVE_acme",
		schema.InboxPrefix("acme"):           "_INBOX.acme",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if k, ok := schema.KeyFromSubject("brig.cancel.acme.j1", schema.CancelPrefix); !ok || k != key {
		t.Errorf("KeyFromSubject = %q, %v", k, ok)
	}
	for _, bad := range []string{"brig.cancel.j1", "brig.cancel.acme.j1.x", "brig.replay.acme.j1"} {
		if _, ok := schema.KeyFromSubject(bad, schema.CancelPrefix); ok {
			t.Errorf("KeyFromSubject(%q) ok", bad)
		}
	}
}

func TestReplyToAllowed(t *testing.T) {
	t.Parallel()
	key := schema.JobKey("acme", "j1")
	for replyTo, want := range map[string]bool{
		"":                          true,
		"_INBOX.acme.abc.j1":        true,
		"_INBOX.acme.x":             true,
		"_INBOX.acme":               false,
		"_INBOX.acmex.y":            false,
		"_INBOX.other.abc":          false,
		"_INBOX.abc":                false,
		"brig.events.acme.j1.copy":  true,
		"brig.events.other.j1.copy": false,
		"brig.events.acme.j2.copy":  false,
		"brig.submit.acme.python":   false,
	} {
		if got := schema.ReplyToAllowed("acme", key, replyTo); got != want {
			t.Errorf("ReplyToAllowed(%q) = %v, want %v", replyTo, got, want)
		}
	}
}

func TestDecodeTenantIsStrict(t *testing.T) {
	user := "U" + strings.Repeat("A", 55)
	if rec, err := schema.DecodeTenant("acme", []byte(`{"name":"acme","max_queued":3,"users":["`+user+`"]}`)); err != nil || rec.MaxQueued != 3 {
		t.Fatalf("a good record: %+v, %v", rec, err)
	}
	for name, data := range map[string]string{
		"a stream's acknowledgement": `{"stream":"BRIG_SUBMIT","seq":25}`,
		"no name":                    `{"max_queued":3}`,
		"another name":               `{"name":"other"}`,
		"negative quota":             `{"name":"acme","max_running":-1}`,
		"not a user key":             `{"name":"acme","users":["x"]}`,
		"trailing data":              `{"name":"acme"} {}`,
		"not JSON":                   `garbage`,
	} {
		if _, err := schema.DecodeTenant("acme", []byte(data)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestIsInboxOf(t *testing.T) {
	for subject, want := range map[string]bool{
		"_INBOX.acme.x":         true,
		"_INBOX.acme.abc.job-1": true,
		"_INBOX.acme":           false,
		"_INBOX.acme.":          false,
		"_INBOX.acmex.y":        false,
		"_INBOX.beta.x":         false,
		"_INBOX.acme.*":         false,
		"_INBOX.acme.>":         false,
		"_INBOX.acme..x":        false,
		"_INBOX.acme.a b":       false,
		"brig.cancel.acme.x":    false,
		"_INBOX.acme." + strings.Repeat("x", 300): false,
	} {
		if got := schema.IsInboxOf("acme", subject); got != want {
			t.Errorf("IsInboxOf(acme, %q) = %v, want %v", subject, got, want)
		}
	}
	if schema.IsInboxOf("Acme", "_INBOX.Acme.x") {
		t.Error("an invalid tenant has an inbox")
	}
}
