#!/bin/sh
# Builds the static brig binary (deploy/brig) and, from it, the FROM scratch
# image of docker-compose.yml; builds the sandbox image brig/python when the
# Docker daemon lacks it; creates brig's authority and mints the services'
# and clients' credentials (docs/design.md §10); then starts the cluster in
# the background. Extra arguments go to `docker-compose up`, e.g. a list of
# services.
#
# Under BRIG_COMPOSE_DIR (default /var/lib/brig-compose), owned by whoever
# runs this script:
#   auth/                 the authority (nkey seeds), created once; the NATS
#                         nodes mount it read-only. Keep it secret: its seeds
#                         mint any credential.
#   creds/dispatcher.creds, creds/worker.creds
#                         the roles' credentials, each mounted read-only into
#                         its own services only
#   creds/admin.creds     for brig deploy, brig status and brig tenant from
#                         the host
#   creds/default.creds   the default tenant's client credential: what to
#                         hand a program that submits jobs. The tenant's
#                         record lives in the cluster (BRIG_TENANTS), so it
#                         is added, and this file minted, once the cluster
#                         answers: `brig tenant add default`.
# Other tenants: ./deploy/brig tenant add NAME --server nats://127.0.0.1:4222
# --creds $creds/admin.creds --auth-dir $auth --out-dir $creds.
set -eu
cd "$(dirname "$0")/.."
dir=${BRIG_COMPOSE_DIR:-/var/lib/brig-compose}
auth=$dir/auth
creds=$dir/creds

CGO_ENABLED=0 go build -trimpath -o deploy/brig ./cmd/brig
if ! docker image inspect brig/python:latest >/dev/null 2>&1; then
	./deploy/brig image build python
fi

if ! mkdir -p "$dir" 2>/dev/null || [ ! -w "$dir" ]; then
	echo "up.sh: cannot write $dir: create it for $(id -un) (sudo mkdir -p $dir && sudo chown $(id -u) $dir) or set BRIG_COMPOSE_DIR" >&2
	exit 1
fi

# mint ROLE FILE [TENANT] writes a credential of the authority to creds/FILE.
# Minting again is harmless: credentials minted before stay valid. The first
# one creates the authority (--create) when auth/ holds none.
mint() {
	./deploy/brig creds --auth-dir "$auth" --create --role "$1" ${3:+--tenant "$3"} --out "$creds/$2" >/dev/null
}

[ -e "$auth/brig.nk" ] || echo "up.sh: creating brig's authority in $auth"
mint admin admin.creds
mint dispatcher dispatcher.creds
mint worker worker.creds

docker-compose up -d --build "$@"

# The default tenant: its record must be written through the running
# cluster, which takes a while to elect its JetStream leaders. Once it
# exists and default.creds is there, a second up.sh leaves both alone.
server="nats://127.0.0.1:${BRIG_COMPOSE_PORT:-4222}"
tenant() {
	./deploy/brig tenant "$@" --server "$server" --creds "$creds/admin.creds" --auth-dir "$auth"
}
deadline=$(($(date +%s) + 180))
until out=$(tenant ls --json 2>&1); do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "up.sh: the cluster did not answer brig tenant ls within 180s: $out" >&2
		exit 1
	fi
	sleep 2
done
case "$out" in
*'"name":"default"'*) [ -e "$creds/default.creds" ] || tenant creds default --out "$creds/default.creds" >/dev/null ;;
*)
	until err=$(tenant add default --out-dir "$creds" --replicas 3 2>&1 >/dev/null); do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "up.sh: brig tenant add default failed: $err" >&2
			exit 1
		fi
		sleep 2
	done
	;;
esac
echo "up.sh: credentials in $creds (clients: --creds $creds/default.creds; brig deploy, brig status, brig tenant: --creds $creds/admin.creds)"
