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
