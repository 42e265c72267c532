package sdk

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/schema"
)

// WithToken makes Connect authenticate with a brig token, the form of a
// credential the HTTP API takes (docs/design.md §11): "brig_" and the
// .creds file's bytes in base64url. It is the same credential as the
// .creds file WithCreds reads (`brig dev` writes DATA/creds/default.token
// beside default.creds), and its tag brig-tenant:<name> becomes the
// client's tenant unless WithTenant names one.
func WithToken(token string) Option {
	return func(c *Client) error {
		if token == "" {
			return errors.New("sdk: empty token")
		}
		cred, err := creds.ParseToken(token)
		if err != nil {
			return fmt.Errorf("sdk: token: %w", err)
		}
		if cred.Tenant != "" && !schema.ValidTenant(cred.Tenant) {
			return fmt.Errorf("sdk: token names an invalid tenant %q", cred.Tenant)
		}
		c.credsTenant = cred.Tenant
		c.dial = append(c.dial, nats.UserJWTAndSeed(cred.JWT, string(cred.Seed)))
		return nil
	}
}
