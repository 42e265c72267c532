package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Tenants (docs/design.md §10.3). A tenant is the identity the bus
// enforces: a client credential may publish and subscribe only on its
// tenant's subjects, so the tenant of a submission, a cancellation or a
// replay is the tenant token of its subject, never a field of a payload.

// DefaultTenant is the tenant `brig dev` creates.
const DefaultTenant = "default"

// TenantsBucket is the KV bucket of tenant records (Tenant), keyed by name;
// only admin credentials may write it.
const TenantsBucket = "BRIG_TENANTS"

// MaxTenantLen bounds a tenant name. It is below the 22 characters of a
// NUID, so a tenant's inbox prefix _INBOX.<tenant> can never be the inbox
// of a brig role or an admin tool (_INBOX.<nuid>).
const MaxTenantLen = 20

var (
	tenantRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)
	// jobKeyRe is what ValidJobKey accepts, for the JSON Schema's job_id.
	jobKeyRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}\.[A-Za-z0-9_-]{1,64}$`)
)

// ValidTenant reports whether name may name a tenant: 1–20 of [a-z0-9-],
// starting with a letter: one subject token, a file name, and part of a
// KV bucket name.
func ValidTenant(name string) bool { return tenantRe.MatchString(name) }

// JobKey is a job's brig-wide identity: its tenant and the id its client
// chose, joined by a dot (ids have none). Every event's job_id, the
// Work message, the token and every subject of the job carry the key, so
// the same id in two tenants is two jobs.
func JobKey(tenant, id string) string { return tenant + "." + id }

// SplitJobKey parses a job key.
func SplitJobKey(key string) (tenant, id string, ok bool) {
	tenant, id, ok = strings.Cut(key, ".")
	if !ok || !ValidTenant(tenant) || !ValidID(id) {
		return "", "", false
	}
	return tenant, id, true
}

// ValidJobKey reports whether key is a tenant and a job id joined by a dot.
func ValidJobKey(key string) bool { _, _, ok := SplitJobKey(key); return ok }

// InboxPrefix is the inbox prefix of a tenant's connections (without the
// trailing dot): a client credential may subscribe only below it, and a
// job's reply_to must lie below it.
func InboxPrefix(tenant string) string { return ReplyPrefix + tenant }

// Tenant is the record of one tenant in TenantsBucket. Zero quotas mean no
// limit.
type Tenant struct {
	Name string `json:"name"`
	// MaxRunning bounds the tenant's jobs running at once.
	MaxRunning int `json:"max_running,omitempty"`
	// MaxQueued bounds the tenant's jobs accepted and not yet ended; a
	// submission past it ends with QuotaExceeded.
	MaxQueued int `json:"max_queued,omitempty"`
	// MaxStorageMB bounds what the tenant's dicts and queues may hold.
	MaxStorageMB int `json:"max_storage_mb,omitempty"`
	// Users are the public keys of the tenant's credentials; removing the
	// tenant revokes them.
	Users []string `json:"users,omitempty"`
}

// DecodeTenant strictly decodes the record stored under key in
// TenantsBucket: unknown fields, a name other than the key, negative quotas
// and users that are not NATS user keys are errors. A record is written
// only by admin, but it decides quotas and revocation, so a value that is
// not one brig wrote is never read as a lenient default.
func DecodeTenant(key string, data []byte) (Tenant, error) {
	var t Tenant
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("tenant %q: %w", key, err)
	}
	if dec.More() {
		return t, fmt.Errorf("tenant %q: data after the record", key)
	}
	switch {
	case t.Name != key:
		return t, fmt.Errorf("tenant %q: the record names %q", key, t.Name)
	case t.MaxRunning < 0 || t.MaxQueued < 0 || t.MaxStorageMB < 0:
		return t, fmt.Errorf("tenant %q: negative quota", key)
	}
	for _, u := range t.Users {
		if len(u) != 56 || u[0] != 'U' {
			return t, fmt.Errorf("tenant %q: %q is not a user key", key, u)
		}
	}
	return t, nil
}
