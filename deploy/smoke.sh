#!/bin/sh
# Brings docker-compose.yml up, waits until both dispatchers and both
# workers are ready, runs examples/hello.py through the cluster from the
# host as the default tenant (its client credential, which deploy/up.sh
# mints), checks that an anonymous client is refused, adds a tenant, runs
# as it, removes it and checks that its credential is refused, and tears everything
# down again, whatever happened (including the sandbox containers the
# workers leave behind). The authority and credentials under
# BRIG_COMPOSE_DIR stay for the next run.
set -eu
cd "$(dirname "$0")/.."
server="nats://127.0.0.1:${BRIG_COMPOSE_PORT:-4222}"
dir="${BRIG_COMPOSE_DIR:-/var/lib/brig-compose}"
creds="$dir/creds/default.creds"

teardown() {
	docker-compose down -v --remove-orphans --timeout 30 || true
	for w in worker1 worker2; do
		ids=$(docker ps -aq --filter "label=brig.worker=$w")
		[ -z "$ids" ] || docker rm -f $ids >/dev/null
	done
}
fail() {
	echo "smoke: $*" >&2
	docker-compose logs --no-color --tail 50 >&2 || true
	exit 1
}
trap teardown EXIT
trap 'exit 130' INT TERM

./deploy/up.sh

# A role that starts before the cluster has a JetStream leader exits and is
# restarted (restart: on-failure) until it prints its ready line.
deadline=$(($(date +%s) + 180))
for svc in dispatcher1 dispatcher2 worker1 worker2; do
	until docker-compose logs --no-color "$svc" 2>/dev/null | grep -Eq '\| ready (dispatcher|worker)'; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "$svc not ready after 180s"
		sleep 1
	done
	echo "smoke: $svc ready"
done

out=$(timeout 120 ./deploy/brig run --server "$server" --creds "$creds" examples/hello.py) || fail "brig run failed (exit $?): $out"
echo "$out"
case "$out" in
*hello*) ;;
*) fail "brig run printed no hello" ;;
esac

# No credential, no way in: the run must end with 125 (brig could not reach
# the server), never run the job.
code=0
out=$(env -u BRIG_CREDS timeout 60 ./deploy/brig run --server "$server" examples/hello.py 2>&1) || code=$?
[ "$code" -eq 125 ] || fail "an anonymous brig run exited $code, want 125: $out"
echo "smoke: an anonymous client is refused"

# A tenant of its own: its credential runs a job; once the tenant is
# removed, every node refuses that credential (revoked, pushed to the
# cluster).
admin() { ./deploy/brig tenant "$@" --server "$server" --creds "$dir/creds/admin.creds" --auth-dir "$dir/auth"; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"; teardown' EXIT
smoke=$(admin add smoke --max-queued 5 --out-dir "$scratch") || fail "brig tenant add smoke failed"
out=$(timeout 120 ./deploy/brig run --server "$server" --creds "$smoke" examples/hello.py) || fail "brig run as tenant smoke failed (exit $?): $out"
case "$out" in
*hello*) ;;
*) fail "brig run as tenant smoke printed no hello" ;;
esac
admin rm smoke || fail "brig tenant rm smoke failed"
code=0
out=$(timeout 60 ./deploy/brig run --server "$server" --creds "$smoke" examples/hello.py 2>&1) || code=$?
[ "$code" -eq 125 ] || fail "a removed tenant's brig run exited $code, want 125: $out"
echo "smoke: a removed tenant's credential is refused"
echo "smoke: ok"
