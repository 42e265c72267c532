package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

type testKey struct {
	priv ed25519.PrivateKey
	kid  string
}

func newKey(t testing.TB, kid string) testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, kid: kid}
}

func keyFunc(ks ...testKey) KeyFunc {
	return func(kid string) (ed25519.PublicKey, error) {
		for _, k := range ks {
			if k.kid == kid {
				return k.priv.Public().(ed25519.PublicKey), nil
			}
		}
		return nil, fmt.Errorf("%q: %w", kid, ErrUnknownKey)
	}
}

func claims(k testKey, now time.Time, scopes ...string) Claims {
	return Claims{JobID: "acme.job-1", Function: "python", Scopes: scopes,
		IssuedAt: now.UnixMilli(), Expiry: now.Add(time.Minute).UnixMilli(), KeyID: k.kid}
}

func TestMintVerify(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	now := time.Now()
	tok, err := Mint(k.priv, claims(k, now, "dict:a:read"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, keyFunc(k), now)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.JobID != "acme.job-1" || c.Tenant() != "acme" || !c.Allows("dict:a:read") || c.Allows("dict:a:write") || c.Allows("dict:a") {
		t.Errorf("claims = %+v", c)
	}
}

func TestVerifyDenies(t *testing.T) {
	t.Parallel()
	k, other := newKey(t, "k1"), newKey(t, "k2")
	now := time.Now()
	good, err := Mint(k.priv, claims(k, now, "dict:a:read"))
	if err != nil {
		t.Fatal(err)
	}
	body, sig := good[len(prefix):strings.LastIndexByte(good, '.')], good[strings.LastIndexByte(good, '.')+1:]
	// A token whose claims were rewritten to grant more, keeping the old signature.
	forgedBody := base64.RawURLEncoding.EncodeToString([]byte(`{"job":"acme.job-1","fn":"python","scopes":["dict:a:write"],"iat":1,"exp":99999999999999,"kid":"k1"}`))
	// Signed by a key that claims to be k1.
	imposter := claims(k, now, "dict:a:write")
	imposterTok, _ := Mint(other.priv, imposter)
	expired := claims(k, now)
	expired.IssuedAt, expired.Expiry = now.Add(-2*time.Minute).UnixMilli(), now.Add(-time.Minute).UnixMilli()
	expiredTok, _ := Mint(k.priv, expired)
	unknown := claims(other, now)
	unknown.KeyID = "nope"
	unknownTok, _ := Mint(other.priv, unknown)

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"no prefix", "v2." + body + "." + sig, ErrMalformed},
		{"no signature", prefix + body, ErrMalformed},
		{"empty signature", prefix + body + ".", ErrMalformed},
		{"garbage", "v1.!!!.???", ErrMalformed},
		{"too long", prefix + strings.Repeat("A", MaxLen), ErrMalformed},
		{"body byte flipped", flip(good, len(prefix)+5), nil}, // malformed or bad signature
		{"signature byte flipped", flip(good, len(good)-3), ErrSignature},
		{"forged claims", prefix + forgedBody + "." + sig, ErrSignature},
		{"other key claiming kid", imposterTok, ErrSignature},
		{"expired", expiredTok, ErrExpired},
		{"unknown key", unknownTok, ErrUnknownKey},
		{"padding added", good + "=", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Verify(tt.tok, keyFunc(k), now)
			if err == nil {
				t.Fatalf("Verify accepted %q: %+v", tt.tok, c)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMintRefusesIncompleteClaims(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	now := time.Now()
	for _, mod := range []func(*Claims){
		func(c *Claims) { c.JobID = "" },
		func(c *Claims) { c.JobID = "a.b.c" },
		func(c *Claims) { c.JobID = "job-1" },      // an id, not a key
		func(c *Claims) { c.JobID = "a_b.job-1" },  // not a tenant name
		func(c *Claims) { c.JobID = "Acme.job-1" }, // nor this
		func(c *Claims) { c.JobID = ".job-1" },     // no tenant
		func(c *Claims) { c.JobID = "acme." },      // no id
		func(c *Claims) { c.KeyID = "" },
		func(c *Claims) { c.Expiry = c.IssuedAt },
	} {
		c := claims(k, now)
		mod(&c)
		if _, err := Mint(k.priv, c); err == nil {
			t.Errorf("Mint(%+v) succeeded", c)
		}
	}
}

// TestVerifyRefusesBareID: a well-signed token whose job is an id with no
// tenant (minted before tenants) names no tenant, so it grants nothing.
func TestVerifyRefusesBareID(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	now := time.Now()
	for _, job := range []string{"job-1", "a_b.job-1", "acme.job.1", "acme."} {
		body, err := json.Marshal(Claims{JobID: job, Function: "python", Scopes: []string{"dict:a:read"},
			IssuedAt: now.UnixMilli(), Expiry: now.Add(time.Minute).UnixMilli(), KeyID: k.kid})
		if err != nil {
			t.Fatal(err)
		}
		signed := prefix + base64.RawURLEncoding.EncodeToString(body)
		tok := signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.priv, []byte(signed)))
		if c, err := Verify(tok, keyFunc(k), now); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify of a token of job %q = %+v, %v; want ErrMalformed", job, c, err)
		}
	}
}

// TestTenant: the tenant is the key's tenant part.
func TestTenant(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{"acme.job-1": "acme", "default.x": "default", "a-1.b_c": "a-1", "job-1": "", "": ""} {
		if got := (&Claims{JobID: key}).Tenant(); got != want {
			t.Errorf("Tenant of %q = %q, want %q", key, got, want)
		}
	}
}

// FuzzVerify: whatever the bytes, Verify never panics and accepts only
// tokens whose signature checks out.
func FuzzVerify(f *testing.F) {
	k := newKey(f, "k1")
	now := time.Now()
	good, _ := Mint(k.priv, claims(k, now, "dict:a:read"))
	f.Add(good)
	f.Add("v1..")
	f.Add("v1.e30.AAAA")
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(tok, keyFunc(k), now)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			return
		}
		// Accepted: it must be exactly the signed token (Ed25519 signatures
		// are not malleable and the encoding is strict).
		if tok != good {
			t.Fatalf("accepted a token other than the one minted: %q", tok)
		}
	})
}
