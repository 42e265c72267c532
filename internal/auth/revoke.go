package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/brig-dev/brig/internal/filelock"
)

// Revocation (docs/design.md §10.3). The authority keeps the public keys
// of revoked users in revoked.json beside its seeds, each with the time it
// was revoked; the BRIG account JWT lists them (jwt.AccountClaims.
// Revocations), so a server refuses every user JWT of such a key issued
// up to that time. A server started by Configure reads the file; a
// running one learns of a revocation from PushAccount, which sends it the
// re-signed account JWT, and closes the revoked users' connections at once
// (nats-server: Server.accountClaimUpdate, then
// updateAccountClaimsWithRefresh, which closes each client whose JWT
// jwt.AccountClaims.IsClaimRevoked; a new connection fails
// Account.checkUserRevoked).

// Revoked returns the revoked user keys and when each was revoked.
func (a *Authority) Revoked() (map[string]time.Time, error) {
	data, err := os.ReadFile(filepath.Join(a.dir, revokedFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	var unix map[string]int64
	if err := json.Unmarshal(data, &unix); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", filepath.Join(a.dir, revokedFile), err)
	}
	revoked := make(map[string]time.Time, len(unix))
	for pub, at := range unix {
		if !nkeys.IsValidPublicUserKey(pub) {
			return nil, fmt.Errorf("auth: %s: %q is not a user's public key", filepath.Join(a.dir, revokedFile), pub)
		}
		revoked[pub] = time.Unix(at, 0)
	}
	return revoked, nil
}

// Revoke adds user public keys (MintedUser.PublicKey) to the authority's
// revocations, for good: every JWT of those keys issued until now is
// refused by a server started afterwards, and by a running one once
// PushAccount has sent it the account. Revoking a key again keeps its
// first time. Two processes revoking at once both succeed (a lock file
// serialises them).
func (a *Authority) Revoke(pubkeys ...string) error {
	for _, pub := range pubkeys {
		if !nkeys.IsValidPublicUserKey(pub) {
			return fmt.Errorf("auth: revoke %q: not a user's public key", pub)
		}
	}
	if len(pubkeys) == 0 {
		return nil
	}
	lf, err := os.OpenFile(filepath.Join(a.dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer lf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	unlock, err := filelock.Lock(ctx, lf, 50*time.Millisecond, nil)
	if err != nil {
		return fmt.Errorf("auth: lock %s: %w", a.dir, err)
	}
	defer unlock()
	revoked, err := a.Revoked()
	if err != nil {
		return err
	}
	// A JWT is refused when issued at or before its key's time (whole
	// seconds); no JWT is ever issued for a key again after its first.
	now := time.Now().Unix()
	unix := make(map[string]int64, len(revoked)+len(pubkeys))
	for pub, at := range revoked {
		unix[pub] = at.Unix()
	}
	for _, pub := range pubkeys {
		if _, ok := unix[pub]; !ok {
			unix[pub] = now
		}
	}
	data, err := json.MarshalIndent(unix, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return WriteSecret(filepath.Join(a.dir, revokedFile), append(data, '\n'))
}

// Subjects of the system account's API that PushAccount uses.
const (
	serverPingSubject   = "$SYS.REQ.SERVER.PING.IDZ"
	claimsUpdateSubject = "$SYS.REQ.ACCOUNT.%s.CLAIMS.UPDATE"
)

// PushAccount sends the BRIG account JWT, freshly signed with the current
// revocations, to every server of the cluster nc is connected to, and
// waits until each has answered. nc must be a SYS account connection (a
// RoleSystem credential of this authority). A server that has accepted it
// has closed the connections of revoked users.
//
// The servers are the ones that answer a ping first; a server that does
// not answer the update in time, answers with an error, or had not loaded
// the account (see Preload) fails the call.
// A server that is down meanwhile reads revoked.json when it starts again,
// from its own authority directory: every node must be given the same one.
func (a *Authority) PushAccount(ctx context.Context, nc *nats.Conn) error {
	if err := a.pushAccount(ctx, nc); err != nil {
		return err
	}
	// Once more, signed in the next second so that the JWT differs (a
	// server skips an update equal to what it holds): on a 3-node cluster
	// a server's sweep of the open connections on one update was seen to
	// miss a revoked client about once in 20 runs, while refusing new ones;
	// with the second update it closed it in 25 runs of 25.
	select {
	case <-time.After(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond))):
	case <-ctx.Done():
		return ctx.Err()
	}
	return a.pushAccount(ctx, nc)
}

func (a *Authority) pushAccount(ctx context.Context, nc *nats.Conn) error {
	token, err := a.accountJWT(a.account, BrigAccountName, true)
	if err != nil {
		return err
	}
	servers, err := collect(ctx, nc, serverPingSubject, nil, func(map[string]serverReply) bool { return false }, moreAnswersWait)
	if err != nil {
		return fmt.Errorf("auth: ping the servers: %w", err)
	}
	if len(servers) == 0 {
		return errors.New("auth: push account: no server answered a ping on the system account (is the connection a system user's?)")
	}
	subject := fmt.Sprintf(claimsUpdateSubject, a.AccountKey())
	answers, err := collect(ctx, nc, subject, []byte(token), func(got map[string]serverReply) bool {
		for id := range servers {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	}, firstAnswerWait)
	if err != nil {
		return fmt.Errorf("auth: push account: %w", err)
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(servers)) {
		r, ok := answers[id]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("server %s did not answer", servers[id].Server.Name))
		case r.Error != nil:
			errs = append(errs, fmt.Errorf("server %s: %s", r.Server.Name, r.Error.Description))
		case r.Data != nil && r.Data.Message == skippedUpdate:
			errs = append(errs, fmt.Errorf("server %s had not loaded the account and kept the JWT it started with (restart it; see Authority.Preload)", r.Server.Name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("auth: push account %s: %w", BrigAccountName, errors.Join(errs...))
	}
	return nil
}

// Preload loads the BRIG account on ns, a server started with Configure,
// from the JWT Configure gave it. Call it once the server is ready: a
// server that has not loaded the account when PushAccount reaches it
// ignores the push ("jwt update skipped"), and would load the account
// later from its resolver, which still holds the JWT it started with,
// revocations since then missing. (A server loads BRIG when a user of it
// connects or subscribes anywhere in the cluster, or when it holds BRIG's
// JetStream assets, so in practice only a fresh node with nothing of
// brig on it is exposed; Preload closes that gap.)
func (a *Authority) Preload(ns *server.Server) error {
	if _, err := ns.LookupAccount(a.AccountKey()); err != nil {
		return fmt.Errorf("auth: load account %s: %w", BrigAccountName, err)
	}
	return nil
}

// serverReply is what PushAccount reads of a server's answer on the system
// account's API: a server.ServerAPIClaimUpdateResponse, or the
// server.ServerID that IDZ answers.
type serverReply struct {
	Server serverID `json:"server"`
	Data   *struct {
		Message string `json:"message"`
	} `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
	serverID
}

// skippedUpdate is the message of a server that had not loaded the
// account it was sent (server.accountClaimUpdate).
const skippedUpdate = "jwt update skipped"

type serverID struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Waits of collect: for the first answer, and, when it does not know how
// many will come, for more after one (the servers of a cluster answer
// within milliseconds of each other).
const (
	firstAnswerWait = 5 * time.Second
	moreAnswersWait = 500 * time.Millisecond
)

// collect publishes data on subject with a reply inbox and gathers the
// answers by server id, until done says it has them all, no answer came
// for more after the last (firstAnswerWait before the first), or ctx ends.
func collect(ctx context.Context, nc *nats.Conn, subject string, data []byte, done func(map[string]serverReply) bool, more time.Duration) (map[string]serverReply, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, data); err != nil {
		return nil, err
	}
	got := map[string]serverReply{}
	wait := firstAnswerWait
	for !done(got) {
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil { // quiet for wait: every server has answered
			break
		}
		var r serverReply
		err = json.Unmarshal(msg.Data, &r)
		if r.Server.ID == "" {
			r.Server = r.serverID
		}
		if err != nil || r.Server.ID == "" {
			return nil, fmt.Errorf("%s: an answer that is not a server's: %q", subject, msg.Data)
		}
		got[r.Server.ID] = r
		wait = more
	}
	return got, nil
}
