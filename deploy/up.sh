#!/bin/sh
# Builds the static brig binary (deploy/brig) and, from it, the FROM scratch
# image of docker-compose.yml; builds the sandbox image brig/python when the
# Docker daemon lacks it; then starts the cluster in the background.
# Extra arguments go to `docker-compose up`, e.g. a list of services.
set -eu
cd "$(dirname "$0")/.."

CGO_ENABLED=0 go build -trimpath -o deploy/brig ./cmd/brig
if ! docker image inspect brig/python:latest >/dev/null 2>&1; then
	./deploy/brig image build python
fi
docker-compose up -d --build "$@"
