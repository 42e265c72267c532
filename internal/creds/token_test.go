package creds

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

func testCreds(t *testing.T, tags ...string) []byte {
	t.Helper()
	account, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Tags.Add(tags...)
	tok, err := uc.Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	data, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A token is the credential's bytes: it parses back to the same JWT,
// seed and identity.
func TestTokenRoundTrip(t *testing.T) {
	data := testCreds(t, RoleTag+"client", TenantTag+"acme")
	tok := FormatToken(data)
	if !strings.HasPrefix(tok, TokenPrefix) || strings.ContainsAny(tok, "=+/\n") {
		t.Fatalf("token %q", tok)
	}
	c, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := Parse(data)
	if c.Identity != id || c.Tenant != "acme" || c.Role != "client" || !strings.Contains(string(data), c.JWT) || !strings.Contains(string(data), string(c.Seed)) {
		t.Fatalf("parsed %+v", c.Identity)
	}
}

func TestTokenMalformed(t *testing.T) {
	good := FormatToken(testCreds(t))
	for name, tok := range map[string]string{
		"empty": "", "no prefix": strings.TrimPrefix(good, TokenPrefix), "padded": good + "=",
		"std alphabet": TokenPrefix + "ab+/", "not creds": FormatToken([]byte("hello")),
		"jwt only": FormatToken([]byte("-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n")),
		"too long": TokenPrefix + strings.Repeat("A", MaxTokenLen),
	} {
		if _, err := ParseToken(tok); !errors.Is(err, ErrMalformedToken) {
			t.Errorf("%s: %v, want ErrMalformedToken", name, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(FormatToken([]byte("x")))
	f.Add("brig_")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ParseToken(tok)
		if err == nil && (c.JWT == "" || len(c.Seed) == 0) {
			t.Fatalf("accepted %q without a JWT and a seed", tok)
		}
	})
}

// Spellings of one credential have one fingerprint; another credential
// has another.
func TestTokenFingerprint(t *testing.T) {
	data := testCreds(t, RoleTag+"client", TenantTag+"acme")
	want, err := ParseToken(FormatToken(data))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := ParseToken(FormatToken(data))
	// The last character of the JWT's signature carries 4 unused bits.
	sigEnd := strings.Index(string(data), c.JWT) + len(c.JWT) - 1
	flipped := append([]byte(nil), data...)
	flipped[sigEnd] = base64URLFlip(t, flipped[sigEnd])
	for name, variant := range map[string][]byte{
		"comment":       append(append([]byte(nil), data...), "\n# another spelling\n"...),
		"leading blank": append([]byte("\n\n"), data...),
		"signature":     flipped,
	} {
		got, err := ParseToken(FormatToken(variant))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(variant) == string(data) || got.Fingerprint != want.Fingerprint {
			t.Errorf("%s: a spelling of the credential has another fingerprint", name)
		}
	}
	other, _ := ParseToken(FormatToken(testCreds(t, RoleTag+"client", TenantTag+"acme")))
	if other.Fingerprint == want.Fingerprint {
		t.Error("two credentials share a fingerprint")
	}
}

// base64URLFlip changes one of the unused low bits of a final base64url
// character of a 64-byte value.
func base64URLFlip(t *testing.T, c byte) byte {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	if i < 0 {
		t.Fatalf("%q is not base64url", c)
	}
	return alphabet[i^1]
}
