package creds

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// A token is one credential in a form an HTTP header carries
// (docs/design.md §11): TokenPrefix, then the .creds file's bytes in
// base64url without padding (RFC 4648 §5). It carries exactly the rights
// of that credential: whoever holds it is the credential's user, and the
// NATS server is the one that checks it.
const (
	TokenPrefix = "brig_"
	// MaxTokenLen bounds a token before it is decoded: a .creds file
	// brig mints is under 2 KiB (a user JWT with its permissions and the
	// seed), so 8 KiB leaves room and stops a header of megabytes from
	// being decoded at all.
	MaxTokenLen = 8 << 10
)

// ErrMalformedToken marks a string that is not a token.
var ErrMalformedToken = errors.New("malformed token")

// Credential is a parsed token: the user JWT, its seed (the secret), and
// who the JWT says the user is.
type Credential struct {
	JWT  string
	Seed []byte
	Identity
	// Fingerprint is the SHA-256 of what authenticates: the JWT's signed
	// part, its signature's bytes and the seed's private key. Tokens that
	// differ only in spelling (comments or blank lines in the .creds
	// text, the unused bits of a base64 or base32 final character) have
	// the same fingerprint: they are one credential.
	Fingerprint [sha256.Size]byte
}

// FormatToken returns the token of a .creds file's contents.
func FormatToken(credsFile []byte) string {
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(credsFile)
}

// ParseToken reads a token. It checks the form (prefix, encoding, a JWT
// and a user seed inside), not the signature: the server does that.
func ParseToken(token string) (Credential, error) {
	if len(token) > MaxTokenLen {
		return Credential{}, fmt.Errorf("%w: over %d bytes", ErrMalformedToken, MaxTokenLen)
	}
	body, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		return Credential{}, fmt.Errorf("%w: does not start with %s", ErrMalformedToken, TokenPrefix)
	}
	data, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: not base64url without padding: %w", ErrMalformedToken, err)
	}
	id, err := Parse(data)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(data)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: no user seed: %w", ErrMalformedToken, err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return Credential{}, fmt.Errorf("%w: no user seed: %w", ErrMalformedToken, err)
	}
	tok, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	fp, err := fingerprint(tok, kp)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	return Credential{JWT: tok, Seed: seed, Identity: id, Fingerprint: fp}, nil
}

// fingerprint is a credential's Fingerprint: its parts decoded, so that
// every spelling of it that NATS would accept hashes alike.
func fingerprint(tok string, kp nkeys.KeyPair) ([sha256.Size]byte, error) {
	signed, sig, ok := cutLast(tok, ".")
	if !ok {
		return [sha256.Size]byte{}, errors.New("the JWT has no signature")
	}
	sigBytes, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("the JWT's signature: %w", err)
	}
	private, err := kp.PrivateKey() // encoded anew from the decoded seed
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("no user seed: %w", err)
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(signed), sigBytes, private} {
		h.Write(fmt.Appendf(nil, "%d:", len(part)))
		h.Write(part)
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
