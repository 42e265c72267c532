// Package auth is brig's authority on the bus (docs/design.md §10): it keeps
// the NATS operator and account keys, configures an embedded nats-server to
// trust them, and mints the credentials (.creds files) of every role and
// tenant, each with an allow-list of subjects and nothing else.
//
// The model is NATS's decentralized JWT auth: an operator signs two
// accounts, SYS (the server's own) and BRIG (every stream, bucket and
// subject of brig), and the BRIG account key signs one user JWT per
// credential. The server holds no secret: it checks signatures against the
// operator's public key, so a new tenant needs no server change.
package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/brig-dev/brig/internal/creds"
	"github.com/brig-dev/brig/internal/filelock"
	"github.com/brig-dev/brig/schema"
)

// Files of an authority's directory. The seeds are the only secrets; the
// directory is 0700 and each file 0600.
const (
	operatorFile = "operator.nk"
	systemFile   = "sys.nk"
	accountFile  = "brig.nk"
	lockFile     = ".lock"
	revokedFile  = "revoked.json"
)

// Names of the two accounts.
const (
	SystemAccountName = "SYS"
	BrigAccountName   = "BRIG"
)

// Authority holds the operator and account keys.
type Authority struct {
	dir      string
	operator nkeys.KeyPair
	system   nkeys.KeyPair
	account  nkeys.KeyPair
}

// ErrNoAuthority: the directory holds no authority yet.
var ErrNoAuthority = errors.New("no brig authority")

// Open loads the authority kept in dir.
func Open(dir string) (*Authority, error) {
	a := &Authority{dir: dir}
	for _, k := range []struct {
		file   string
		prefix nkeys.PrefixByte
		kp     *nkeys.KeyPair
	}{
		{operatorFile, nkeys.PrefixByteOperator, &a.operator},
		{systemFile, nkeys.PrefixByteAccount, &a.system},
		{accountFile, nkeys.PrefixByteAccount, &a.account},
	} {
		kp, err := readSeed(filepath.Join(dir, k.file), k.prefix)
		if err != nil {
			return nil, err
		}
		*k.kp = kp
	}
	return a, nil
}

// OpenOrCreate loads the authority in dir, creating it first when the
// directory holds none. Two processes that race to create it end up with
// the same one (a lock file serialises them).
func OpenOrCreate(dir string) (a *Authority, created bool, err error) {
	if a, err := Open(dir); err == nil {
		return a, false, nil
	} else if !errors.Is(err, ErrNoAuthority) {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("auth: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("auth: %w", err)
	}
	defer lf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	unlock, err := filelock.Lock(ctx, lf, 50*time.Millisecond, nil)
	if err != nil {
		return nil, false, fmt.Errorf("auth: lock %s: %w", dir, err)
	}
	defer unlock()
	if a, err := Open(dir); err == nil {
		return a, false, nil // another process created it meanwhile
	}
	for _, k := range []struct {
		file string
		make func() (nkeys.KeyPair, error)
	}{
		{operatorFile, nkeys.CreateOperator},
		{systemFile, nkeys.CreateAccount},
		{accountFile, nkeys.CreateAccount},
	} {
		kp, err := k.make()
		if err != nil {
			return nil, false, fmt.Errorf("auth: create key: %w", err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, false, fmt.Errorf("auth: create key: %w", err)
		}
		if err := WriteSecret(filepath.Join(dir, k.file), append(seed, '\n')); err != nil {
			return nil, false, err
		}
	}
	a, err = Open(dir)
	return a, err == nil, err
}

func readSeed(path string, prefix nkeys.PrefixByte) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: %s: %w", path, ErrNoAuthority)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("auth: %s: not an nkey seed: %w", path, err)
	}
	pub, _ := kp.PublicKey()
	if !nkeys.IsValidPublicKey(pub) || nkeys.Prefix(pub) != prefix {
		return nil, fmt.Errorf("auth: %s: not a %s seed", path, prefix)
	}
	return kp, nil
}

// WriteSecret writes data to path, mode 0600, replacing it atomically; the
// directory is created 0700 when missing.
func WriteSecret(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// Dir is where the authority keeps its keys.
func (a *Authority) Dir() string { return a.dir }

// AccountKey is the public key of the BRIG account.
func (a *Authority) AccountKey() string { pub, _ := a.account.PublicKey(); return pub }

func (a *Authority) operatorJWT() (string, *jwt.OperatorClaims, error) {
	opub, _ := a.operator.PublicKey()
	spub, _ := a.system.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "brig"
	oc.SystemAccount = spub
	token, err := oc.Encode(a.operator)
	if err != nil {
		return "", nil, fmt.Errorf("auth: sign operator: %w", err)
	}
	return token, oc, nil
}

// accountJWT signs an account's JWT. The BRIG account's carries JetStream
// and the revoked user keys (revoked.json); a file that cannot be read
// fails it, so no server ever starts without the revocations.
func (a *Authority) accountJWT(kp nkeys.KeyPair, name string, brig bool) (string, error) {
	pub, _ := kp.PublicKey()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = name
	if brig {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit,
			Streams: jwt.NoLimit, Consumer: jwt.NoLimit}
		revoked, err := a.Revoked()
		if err != nil {
			return "", err
		}
		for pub, at := range revoked {
			ac.RevokeAt(pub, at)
		}
	}
	token, err := ac.Encode(a.operator)
	if err != nil {
		return "", fmt.Errorf("auth: sign account %s: %w", name, err)
	}
	return token, nil
}

// Configure makes opts a server that trusts only this authority: every
// client must present a user JWT signed by one of its accounts (an
// anonymous connection is refused), with the permissions in that JWT, and
// not revoked (Revoke) when the server starts. A revocation after that
// reaches a running server through PushAccount.
func (a *Authority) Configure(opts *server.Options) error {
	_, oc, err := a.operatorJWT()
	if err != nil {
		return err
	}
	resolver := &server.MemAccResolver{}
	for _, acc := range []struct {
		kp   nkeys.KeyPair
		name string
		js   bool
	}{{a.system, SystemAccountName, false}, {a.account, BrigAccountName, true}} {
		token, err := a.accountJWT(acc.kp, acc.name, acc.js)
		if err != nil {
			return err
		}
		pub, _ := acc.kp.PublicKey()
		if err := resolver.Store(pub, token); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	opts.TrustedOperators = []*jwt.OperatorClaims{oc}
	opts.SystemAccount = oc.SystemAccount
	opts.AccountResolver = &freshResolver{MemAccResolver: resolver, a: a}
	return nil
}

// freshResolver answers a fetch of the BRIG account with a JWT signed now
// from the authority's current revocations (revoked.json), not the one the
// server started with. A server fetches an account again when it holds
// only an incomplete one (a route told it of the account before any user
// of it connected); a stale JWT would then undo a revocation pushed since
// (docs/design.md §10.3).
type freshResolver struct {
	*server.MemAccResolver
	a *Authority
}

func (r *freshResolver) Fetch(name string) (string, error) {
	if name == r.a.AccountKey() {
		if token, err := r.a.accountJWT(r.a.account, BrigAccountName, true); err == nil {
			return token, nil
		}
	}
	return r.MemAccResolver.Fetch(name)
}

// Role is what a credential is for.
type Role string

const (
	// RoleAdmin deploys and deletes functions, manages tenants, reads
	// status: trusted with all of brig's account.
	RoleAdmin Role = "admin"
	// RoleDispatcher and RoleWorker hold what those roles use.
	RoleDispatcher Role = "dispatcher"
	RoleWorker     Role = "worker"
	// RoleClient is one tenant's client: it submits, follows, replays and
	// cancels jobs, and nothing else.
	RoleClient Role = "client"
	// RoleSystem is a user of the SYS account, for server administration.
	RoleSystem Role = "system"
)

// DefaultTenant is the tenant `brig dev` creates.
const DefaultTenant = schema.DefaultTenant

// ValidTenant reports whether name may name a tenant (schema.ValidTenant).
func ValidTenant(name string) bool { return schema.ValidTenant(name) }

// User describes one credential.
type User struct {
	Role Role
	// Tenant names the tenant of a RoleClient credential.
	Tenant string
	// Name is shown in the server's connection list (default: the role,
	// or the tenant for a client).
	Name string
	// Expires, when not zero, is when the credential stops working.
	Expires time.Time
}

// Creds mints a user credential in NATS's .creds format (the user JWT and
// its nkey seed).
func (a *Authority) Creds(u User) ([]byte, error) {
	m, err := a.MintUser(u)
	if err != nil {
		return nil, err
	}
	return m.Creds()
}

// UserJWT mints a user credential: its signed JWT and its seed.
func (a *Authority) UserJWT(u User) (token string, seed []byte, err error) {
	m, err := a.MintUser(u)
	if err != nil {
		return "", nil, err
	}
	return m.JWT, m.Seed, nil
}

// MintedUser is a freshly minted credential.
type MintedUser struct {
	// JWT is the signed user JWT, Seed the user's nkey seed (the secret).
	JWT  string
	Seed []byte
	// PublicKey is the user's public nkey: what a tenant record keeps and
	// what Revoke takes.
	PublicKey string
}

// Creds is the credential in NATS's .creds format.
func (m MintedUser) Creds() ([]byte, error) { return jwt.FormatUserConfig(m.JWT, m.Seed) }

// MintUser mints a user credential with a fresh key pair: each credential
// has its own public key, so revoking one revokes no other.
func (a *Authority) MintUser(u User) (MintedUser, error) {
	perms, err := Permissions(u.Role, u.Tenant)
	if err != nil {
		return MintedUser{}, err
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return MintedUser{}, fmt.Errorf("auth: create user key: %w", err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = u.Name
	if uc.Name == "" {
		uc.Name = string(u.Role)
		if u.Role == RoleClient {
			uc.Name = u.Tenant
		}
	}
	uc.Tags.Add(RoleTag + string(u.Role))
	if u.Tenant != "" {
		uc.Tags.Add(TenantTag + u.Tenant)
	}
	uc.Permissions = perms
	if !u.Expires.IsZero() {
		uc.Expires = u.Expires.Unix()
	}
	signer := a.account
	if u.Role == RoleSystem {
		signer = a.system
	}
	m := MintedUser{PublicKey: upub}
	if m.JWT, err = uc.Encode(signer); err != nil {
		return MintedUser{}, fmt.Errorf("auth: sign user: %w", err)
	}
	if m.Seed, err = ukp.Seed(); err != nil {
		return MintedUser{}, fmt.Errorf("auth: user seed: %w", err)
	}
	return m, nil
}

// Tags of a user JWT: its role and, for a client, its tenant.
const (
	RoleTag   = creds.RoleTag
	TenantTag = creds.TenantTag
)

// Identity is who a .creds file's credential is, as its JWT says.
type Identity struct {
	// PublicKey is the user's public key.
	PublicKey string
	// Role and Tenant are the JWT's brig-role and brig-tenant tags (""
	// when it has none, e.g. a credential brig did not mint).
	Role   Role
	Tenant string
}

// ReadCreds reads the identity of a .creds file's credential (creds.Parse).
// It checks the form, not the signature: the server does that.
func ReadCreds(data []byte) (Identity, error) {
	id, err := creds.Parse(data)
	if err != nil {
		return Identity{}, fmt.Errorf("auth: %w", err)
	}
	return Identity{PublicKey: id.PublicKey, Role: Role(id.Role), Tenant: id.Tenant}, nil
}
