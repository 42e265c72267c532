package auth

import (
	"fmt"

	"github.com/nats-io/jwt/v2"

	"github.com/brig-dev/brig/internal/bus"
	"github.com/brig-dev/brig/schema"
)

// Permissions is the allow-list of a role (docs/design.md §10). There are
// no deny rules: a subject not listed is refused. (NATS's 2026 advisories
// were bypasses of deny rules through overlapping wildcards and queue
// groups; an allow-list has no such overlap to get wrong.)
//
// A client holds no JetStream API at all. Creating a consumer would let it
// choose a push consumer's deliver subject, and the server would then
// publish the stream's messages there on its behalf: on brig.cancel.<id>,
// brig.work.<pool> or $KV.BRIG_FUNCTIONS.<name>. It replays events through
// the dispatchers' brig.replay service instead, and submits with a plain
// publish to brig.submit.>, which the stream stores and acknowledges to
// the client's inbox. Each of those subjects carries the client's tenant.
func Permissions(role Role, tenant string) (jwt.Permissions, error) {
	var p jwt.Permissions
	allow := func(pub, sub []string) jwt.Permissions {
		p.Pub.Allow.Add(pub...)
		p.Sub.Allow.Add(sub...)
		return p
	}
	if (role == RoleClient) != (tenant != "") {
		return p, fmt.Errorf("auth: a tenant goes with the client role and no other (role %q, tenant %q)", role, tenant)
	}
	if tenant != "" && !ValidTenant(tenant) {
		return p, fmt.Errorf("auth: invalid tenant name %q (1-20 of a-z, 0-9 and -, starting with a letter)", tenant)
	}
	// What every brig role uses of JetStream: the API, acks, flow control,
	// KV buckets (theirs: functions, keys, workers, jobs' dicts and
	// queues) and replies to their own requests.
	js := []string{"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>", "_INBOX.>"}
	switch role {
	case RoleAdmin, RoleSystem:
		return allow([]string{">"}, []string{">"}), nil
	case RoleDispatcher:
		// brig.active.> are the markers of the tenants' accepted jobs
		// (max_queued, docs/design.md §10.3); brig.running.> those of
		// their routed jobs (max_running), and brig.hold.> the jobs that
		// wait for a running slot.
		return allow(append(js, "brig.events.>", "brig.work.>", schema.ActivePrefix+">", bus.RunningPrefix+">", bus.HoldPrefix+">"),
			[]string{"_INBOX.>", "brig.cancel.>", "brig.replay.>", "brig.status.*", schema.FunctionsPrefix + "*", "$JS.EVENT.ADVISORY.>"}), nil
	case RoleWorker:
		// A worker publishes events; its gateway puts on jobs' queues
		// (brig.queue.<name>, streams BRIG_QUEUE_<name>), and submits,
		// follows and cancels the child jobs its jobs call (as a client
		// would).
		return allow(append(js, "brig.events.>", "brig.queue.>", "brig.submit.>", "brig.cancel.>", "brig.replay.>"),
			[]string{"_INBOX.>", "brig.cancel.>"}), nil
	case RoleClient:
		// Its tenant's subjects only (docs/design.md §10.3): the tenant of
		// a submission, cancellation or replay is its subject's token, and
		// its inboxes (nats.CustomInboxPrefix(schema.InboxPrefix(tenant)))
		// are its own, so it can neither act in nor listen to another
		// tenant. brig.status.T asks the dispatchers for its quotas and
		// use (docs/design.md §7), which it cannot read itself;
		// brig.functions.T to list, deploy and delete its functions
		// (docs/design.md §3.1), whose bucket it cannot touch.
		return allow([]string{"brig.submit." + tenant + ".>", "brig.cancel." + tenant + ".*", "brig.replay." + tenant + ".*",
			"brig.status." + tenant, schema.FunctionsSubject(tenant)},
			[]string{schema.InboxPrefix(tenant) + ".>"}), nil
	}
	return p, fmt.Errorf("auth: unknown role %q", role)
}
