package functions

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Writes to the bucket are compare-and-set (docs/design.md §3): each one
// names the key's last revision it read, so of two deploys or deletes of
// one name at once, one is written and the other reads again. Two
// identical deploys at once therefore write once: the second finds the
// first's value and leaves it.

// casAttempts bounds how often a deploy or delete reads again after losing
// a race for its key; past it the write fails with ErrConflict.
const casAttempts = 5

var (
	// ErrConflict: the key changed under every one of casAttempts writes.
	ErrConflict = errors.New("function changed by another writer; try again")
	// ErrBucketFull: the bucket is at its bus.FunctionsMaxBytes or
	// bus.FunctionsMaxMessages and takes no new revision.
	ErrBucketFull = errors.New("function bucket " + Bucket + " is full")
)

// kvOperation is the header of a KV delete or purge marker, as nats.go's
// KeyValue writes and reads it.
const kvOperation = "KV-Operation"

// last is what the bucket holds last for a key: its revision (0: nothing,
// not even a delete marker) and, when live, the value.
type last struct {
	rev   uint64
	live  bool
	value []byte
}

// subject is the stream subject of a key.
func subject(key string) string { return "$KV." + Bucket + "." + key }

// last reads the key's last message, a delete marker included, so that a
// write can name the revision it replaces.
func (s *Store) last(ctx context.Context, key string) (last, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, subject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return last{}, nil
	}
	if err != nil {
		return last{}, fmt.Errorf("get function %q: %w", key, err)
	}
	op := m.Header.Get(kvOperation)
	return last{rev: m.Sequence, live: op == "", value: m.Data}, nil
}

// write stores data under key if its last revision is still after; a
// tenant's key keeps that one revision only (rollup), so that what a
// tenant stores is bounded by its own functions (MaxTenantFunctionBytes),
// never by their history. It returns the new revision, or an error
// matching errConflict when the key moved on.
func (s *Store) write(ctx context.Context, key string, data []byte, after uint64, rollup bool) (uint64, error) {
	m := &nats.Msg{Subject: subject(key), Data: data, Header: nats.Header{}}
	if rollup {
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	}
	ack, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(after))
	if err != nil {
		return 0, storeError(err)
	}
	return ack.Sequence, nil
}

// remove deletes the key if its last revision is still rev. A tenant's key
// is purged from the stream (its one revision, and no marker left behind:
// a tenant that deploys and deletes new names leaves nothing); a global
// one gets a delete marker and keeps its history, as `nats kv del` does.
// A purge cannot be conditional, so it removes revisions up to rev only: a
// deploy that raced it stays, as if it came after.
func (s *Store) remove(ctx context.Context, key string, rev uint64, tenant bool) error {
	if tenant {
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subject(key)), jetstream.WithPurgeSequence(rev+1)); err != nil {
			return fmt.Errorf("purge function %q: %w", key, err)
		}
		return nil
	}
	if err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return storeError(err)
	}
	return nil
}

var errConflict = errors.New("revision conflict")

// storeError maps a refused conditional write to errConflict and a full
// bucket to ErrBucketFull.
func storeError(err error) error {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return err
	}
	switch {
	case api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence,
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant:
		return fmt.Errorf("%w: %w", errConflict, err)
	case api.ErrorCode == jsErrCodeStoreFailed && strings.Contains(api.Description, "maximum"):
		return fmt.Errorf("%w: %w", ErrBucketFull, err)
	}
	return err
}

// jsErrCodeStoreFailed is the server's JSStreamStoreFailedF: a stream with
// discard new at its limits ("maximum bytes exceeded", "maximum messages
// exceeded").
const jsErrCodeStoreFailed jetstream.ErrorCode = 10077
