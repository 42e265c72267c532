// Package signing manages the dispatcher's signing key, which signs job
// credentials (internal/token), and lets workers find its public half. A
// dispatcher loads its Ed25519 key from a file (creating it on first
// start) and publishes the public key in the BRIG_KEYS KV bucket under its
// key id (bus.KeysBucket, configured with its limits in internal/bus);
// workers read public keys from there. The private key never leaves the
// dispatcher's file.
package signing

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/internal/token"
)

// Signer is a dispatcher's signing key.
type Signer struct {
	Key ed25519.PrivateKey
	ID  string
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// LoadOrCreate reads the key seed at path, creating a new key (mode 0600)
// when the file does not exist.
func LoadOrCreate(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	seed, err := hex.DecodeString(string(trimSpace(data)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s is not a hex Ed25519 seed", path)
	}
	return NewSigner(ed25519.NewKeyFromSeed(seed)), nil
}

// NewSigner wraps a private key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{Key: key, ID: KeyID(key.Public().(ed25519.PublicKey))}
}

// Generate returns a fresh in-memory signer.
func Generate() (*Signer, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewSigner(key), nil
}

func create(path string) (*Signer, error) {
	s, err := Generate()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another dispatcher won the race
		return LoadOrCreate(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(s.Key.Seed()) + "\n")
	if cerr := f.Close(); werr != nil || cerr != nil {
		return nil, fmt.Errorf("write signing key: %v %v", werr, cerr)
	}
	return s, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func openBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := bus.EnsureBucket(ctx, js, bus.KeysConfig(replicas), bus.KeysMaxMessages)
	if err != nil {
		return nil, fmt.Errorf("key bucket: %w", err)
	}
	return kv, nil
}

// Publish stores the signer's public key for workers.
func Publish(ctx context.Context, js jetstream.JetStream, replicas int, s *Signer) error {
	kv, err := openBucket(ctx, js, replicas)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, s.ID, s.Key.Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("publish public key %s: %w", s.ID, err)
	}
	return nil
}

// Ring finds public keys by id, caching what it has seen. Keys are never
// revoked in place: a new key gets a new id.
type Ring struct {
	kv    jetstream.KeyValue
	mu    sync.Mutex
	cache map[string]ed25519.PublicKey
}

// OpenRing opens the key bucket for verification.
func OpenRing(ctx context.Context, js jetstream.JetStream, replicas int) (*Ring, error) {
	kv, err := openBucket(ctx, js, replicas)
	if err != nil {
		return nil, err
	}
	return &Ring{kv: kv, cache: map[string]ed25519.PublicKey{}}, nil
}

// Func returns a token.KeyFunc that looks keys up with ctx.
func (r *Ring) Func(ctx context.Context) token.KeyFunc {
	return func(kid string) (ed25519.PublicKey, error) { return r.Get(ctx, kid) }
}

// Get returns the public key of kid.
func (r *Ring) Get(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if len(kid) != 16 {
		return nil, token.ErrUnknownKey
	}
	if _, err := hex.DecodeString(kid); err != nil {
		return nil, token.ErrUnknownKey
	}
	r.mu.Lock()
	pub, ok := r.cache[kid]
	r.mu.Unlock()
	if ok {
		return pub, nil
	}
	entry, err := r.kv.Get(ctx, kid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, token.ErrUnknownKey
	}
	if err != nil {
		return nil, fmt.Errorf("look up key %s: %w", kid, err)
	}
	pub = ed25519.PublicKey(entry.Value())
	if len(pub) != ed25519.PublicKeySize || KeyID(pub) != kid {
		return nil, token.ErrUnknownKey
	}
	r.mu.Lock()
	r.cache[kid] = pub
	r.mu.Unlock()
	return pub, nil
}
