package signing_test

import (
	"testing"

	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/internal/signing"
)

func TestKeyBucketLimits(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.Start(t)
	k := natstest.PublishKeys(t, js)
	if _, err := k.Ring.Get(t.Context(), k.Signer.ID); err != nil {
		t.Fatalf("published key not found: %v", err)
	}
	s, err := js.Stream(t.Context(), "KV_"+signing.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.MaxBytes != signing.MaxBytes || c.MaxMsgs != signing.MaxKeys || c.MaxMsgSize != signing.MaxKeyBytes {
		t.Errorf("%s: MaxBytes %d, MaxMsgs %d, MaxMsgSize %d; want %d, %d, %d", signing.Bucket, c.MaxBytes, c.MaxMsgs, c.MaxMsgSize, signing.MaxBytes, signing.MaxKeys, signing.MaxKeyBytes)
	}
}
