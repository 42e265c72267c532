package creds

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/jwt/v2"
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
	return Credential{JWT: tok, Seed: seed, Identity: id}, nil
}
