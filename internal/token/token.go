// Package token mints and verifies the credential a job carries: an
// Ed25519-signed statement of which job it belongs to (its key, which names
// its tenant), which function runs it, which scopes it was granted and until
// when. Only a dispatcher holds a
// signing key; workers verify with the dispatcher's public key, found by the
// key id in the token.
//
// Format: "v1." + base64url(claims JSON) + "." + base64url(signature over
// everything before the last dot).
package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/brig-dev/brig/schema"
)

const prefix = "v1."

// MaxLen caps a token before any parsing.
const MaxLen = 8 << 10

// Errors a verifier branches on; every one means "deny".
var (
	ErrMalformed  = errors.New("token malformed")
	ErrSignature  = errors.New("token signature invalid")
	ErrExpired    = errors.New("token expired")
	ErrUnknownKey = errors.New("token signed by an unknown key")
)

// Claims is what a token states.
type Claims struct {
	// JobID is the job's key, schema.JobKey(tenant, id): the token is
	// scoped to the key's tenant (docs/design.md §4.2). There is no
	// separate tenant claim, so nothing can state one tenant in the key
	// and another beside it; Tenant reads it from the key.
	JobID    string   `json:"job"`
	Function string   `json:"fn"`
	Scopes   []string `json:"scopes"`
	// IssuedAt and Expiry are Unix milliseconds.
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	KeyID    string `json:"kid"`
}

// Tenant is the tenant the token's job runs in: the tenant part of its
// key. Every resource a scope names lies inside it.
func (c *Claims) Tenant() string {
	tenant, _, _ := schema.SplitJobKey(c.JobID)
	return tenant
}

// Allows reports whether the claims grant scope exactly.
func (c *Claims) Allows(scope string) bool { return slices.Contains(c.Scopes, scope) }

// Mint signs claims with key. The claims' KeyID must name key.
func Mint(key ed25519.PrivateKey, c Claims) (string, error) {
	if !schema.ValidJobKey(c.JobID) || c.KeyID == "" || c.Expiry <= c.IssuedAt {
		return "", fmt.Errorf("mint token: incomplete claims for job %q", c.JobID)
	}
	if c.Scopes == nil {
		c.Scopes = []string{}
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	signed := prefix + base64.RawURLEncoding.EncodeToString(body)
	sig := ed25519.Sign(key, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// KeyFunc returns the public key of a key id, or an error wrapping
// ErrUnknownKey.
type KeyFunc func(kid string) (ed25519.PublicKey, error)

// Verify checks a token's form, signature and expiry and returns its
// claims. Nothing in the token is trusted before its signature checks out,
// except the key id used to find the key.
func Verify(tok string, keys KeyFunc, now time.Time) (*Claims, error) {
	if len(tok) == 0 || len(tok) > MaxLen || !strings.HasPrefix(tok, prefix) {
		return nil, ErrMalformed
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot <= len(prefix) {
		return nil, ErrMalformed
	}
	signed, sigPart := tok[:dot], tok[dot+1:]
	body, err := base64.RawURLEncoding.Strict().DecodeString(signed[len(prefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sigPart)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature encoding", ErrMalformed)
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	pub, err := keys(c.KeyID)
	if err != nil {
		return nil, err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(signed), sig) {
		return nil, ErrSignature
	}
	if !schema.ValidJobKey(c.JobID) {
		return nil, fmt.Errorf("%w: job key", ErrMalformed)
	}
	if now.UnixMilli() >= c.Expiry {
		return nil, ErrExpired
	}
	return &c, nil
}
