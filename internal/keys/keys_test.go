package keys_test

import (
	"testing"

	"github.com/brig-dev/brig/internal/keys"
	"github.com/brig-dev/brig/internal/natstest"
)

func TestKeyBucketLimits(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	k := natstest.PublishKeys(t, js)
	if _, err := k.Ring.Get(t.Context(), k.Signer.ID); err != nil {
		t.Fatalf("published key not found: %v", err)
	}
	s, err := js.Stream(t.Context(), "KV_"+keys.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxBytes != keys.MaxBytes || c.MaxMsgs != keys.MaxKeys || c.MaxMsgSize != keys.MaxKeyBytes {
		t.Errorf("%s: MaxBytes %d, MaxMsgs %d, MaxMsgSize %d; want %d, %d, %d", keys.Bucket, c.MaxBytes, c.MaxMsgs, c.MaxMsgSize, keys.MaxBytes, keys.MaxKeys, keys.MaxKeyBytes)
	}
}
