// Package creds reads who a NATS .creds file's credential is, from the tags
// brig puts in its user JWT (docs/design.md §10.1). It is a leaf: the SDK
// uses it without the server stack that mints credentials (internal/auth).
package creds

import (
	"fmt"
	"strings"

	"github.com/nats-io/jwt/v2"
)

// Tags of a user JWT: its role and, for a client, its tenant.
const (
	RoleTag   = "brig-role:"
	TenantTag = "brig-tenant:"
)

// Identity is who a credential is, as its JWT says.
type Identity struct {
	// PublicKey is the user's public key.
	PublicKey string
	// Role and Tenant are the JWT's brig-role and brig-tenant tags (""
	// when it has none, e.g. a credential brig did not mint).
	Role   string
	Tenant string
}

// Parse reads the identity of a .creds file's contents. It checks the
// form, not the signature: the server does that.
func Parse(data []byte) (Identity, error) {
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Identity{}, fmt.Errorf("not a credentials file: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return Identity{}, fmt.Errorf("credentials file: %w", err)
	}
	id := Identity{PublicKey: uc.Subject}
	for _, tag := range uc.Tags { // lower-cased by the jwt package
		if v, ok := strings.CutPrefix(strings.ToLower(tag), RoleTag); ok {
			id.Role = v
		}
		if v, ok := strings.CutPrefix(strings.ToLower(tag), TenantTag); ok {
			id.Tenant = v
		}
	}
	return id, nil
}
