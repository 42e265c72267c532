package signing_test

import (
	"testing"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/natstest"
)

func TestKeyBucketLimits(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	k := natstest.PublishKeys(t, js)
	if _, err := k.Ring.Get(t.Context(), k.Signer.ID); err != nil {
		t.Fatalf("published key not found: %v", err)
	}
	s, err := js.Stream(t.Context(), "KV_"+bus.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxBytes != bus.KeysMaxBytes || c.MaxMsgs != bus.KeysMaxMessages || c.MaxMsgSize != bus.KeysMaxValueSize {
		t.Errorf("%s: MaxBytes %d, MaxMsgs %d, MaxMsgSize %d; want %d, %d, %d", bus.KeysBucket, c.MaxBytes, c.MaxMsgs, c.MaxMsgSize, bus.KeysMaxBytes, bus.KeysMaxMessages, bus.KeysMaxValueSize)
	}
}
