package dispatcher

import (
	"context"
	"testing"
	"time"
)

// pollEvery is how often waitFor looks. JetStream tells no one when a work
// queue drops a message, a consumer's counts move or a dispatcher frees a
// slot, so the tests look for the state they wait for.
const pollEvery = 20 * time.Millisecond

// waitFor polls cond until it holds, and fails the test when it does not
// within 20 s, with what and the state cond last reported.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: never (%s)", what, state)
		case <-tick.C:
		}
	}
}
