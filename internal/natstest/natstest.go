// Package natstest runs an embedded NATS server with JetStream for one test,
// and publishes a signing key to it for tests that mint tokens. Only test
// code imports it.
//
// It must not import internal/gateway (directly or not): the gateway's own
// tests import this package.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/natsserver"
	"github.com/brig-dev/brig/internal/signing"
	"github.com/brig-dev/brig/internal/token"
)

// Start runs a server on a random port of 127.0.0.1 with its store in a
// temporary directory, waits until it accepts connections and connects to
// it. The connection and the server end with the test.
func Start(t testing.TB) (url string, nc *nats.Conn, js jetstream.JetStream) {
	t.Helper()
	ns, err := natsserver.Start(t.Context(), natsserver.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url = ns.ClientURL()
	nc, err = nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return url, nc, js
}

// Keys is a fresh signer published to a test's JetStream, and the ring that
// verifies the tokens it mints.
type Keys struct {
	t      testing.TB
	Signer *signing.Signer
	Ring   *signing.Ring
}

// PublishKeys generates a signer, publishes it to js and opens the ring.
func PublishKeys(t testing.TB, js jetstream.JetStream) *Keys {
	t.Helper()
	signer, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.Publish(t.Context(), js, 1, signer); err != nil {
		t.Fatal(err)
	}
	ring, err := signing.OpenRing(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &Keys{t: t, Signer: signer, Ring: ring}
}

// Mint returns a token of the python function's job jobID with scopes,
// valid for a minute.
func (k *Keys) Mint(jobID string, scopes ...string) string {
	k.t.Helper()
	return k.MintUntil(jobID, time.Now().Add(time.Minute), scopes...)
}

// MintUntil is Mint with the expiry exp (issued two minutes before it).
func (k *Keys) MintUntil(jobID string, exp time.Time, scopes ...string) string {
	k.t.Helper()
	tok, err := token.Mint(k.Signer.Key, token.Claims{
		JobID: jobID, Function: "python", Scopes: scopes,
		IssuedAt: exp.Add(-2 * time.Minute).UnixMilli(), Expiry: exp.UnixMilli(), KeyID: k.Signer.ID,
	})
	if err != nil {
		k.t.Fatal(err)
	}
	return tok
}
