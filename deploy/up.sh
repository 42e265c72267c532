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
#   creds/admin.creds     for brig deploy and brig status from the host
#   creds/default.creds   the default tenant's client credential: what to
#                         hand a program that submits jobs
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
mint client default.creds default
echo "up.sh: credentials in $creds (clients: --creds $creds/default.creds; brig deploy, brig status: --creds $creds/admin.creds)"

docker-compose up -d --build "$@"
