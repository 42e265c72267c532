package dispatcher

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
)

// wantAnswersOnlyToInboxes checks a tenant request service (service.go)
// of prefix: requests of tenant acme whose reply subject is not an inbox
// of acme, and requests on a subject of no valid tenant, get no answer
// and make the dispatcher publish nowhere. ask sends acme's own request
// and fails the test unless it is answered; requests are taken in order,
// so once it is, those before were dropped, or they would have been
// answered first.
func wantAnswersOnlyToInboxes(t *testing.T, nc *nats.Conn, prefix string, data []byte, ask func()) {
	t.Helper()
	elsewhere := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(">", elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	foreign := []string{"_INBOX.default.x", "_INBOX.acmex.y", "_INBOX.acme", "_INBOX.acme.*", "_INBOX.acme.>", "_INBOX.x",
		"brig.cancel.acme.j1", "$KV.BRIG_TENANTS.acme", ""}
	for _, reply := range foreign {
		if err := nc.PublishMsg(&nats.Msg{Subject: prefix + "acme", Reply: reply, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	for _, subject := range []string{prefix + "Acme", prefix + "x_y"} {
		if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: "_INBOX.acme.z", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	ask()
	for {
		select {
		case m := <-elsewhere:
			if slices.Contains(foreign, m.Subject) || m.Subject == "_INBOX.acme.z" {
				t.Errorf("the dispatcher published on %s: %s", m.Subject, m.Data)
			}
		default:
			return
		}
	}
}
