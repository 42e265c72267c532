// Package image builds brig's sandbox images offline.
//
// No registry is involved: mmdebstrap assembles a minimal Debian root file
// system from the host's Debian mirror and writes it as a tar stream that
// goes straight into the Docker Engine's image import (the API behind
// `docker import`), without a temporary file. The import sets the image
// config that every sandbox relies on: a PATH, LANG=C.UTF-8, user
// 65534:65534 (nobody, present in the rootfs), working directory /work (an
// empty directory owned by nobody, where the worker mounts its tmpfs) and
// the label brig.image=<name>.
//
// The common call, as `brig dev` makes it before it accepts jobs:
//
//	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
//	...
//	spec, _ := image.Lookup("python")
//	built, err := image.Ensure(ctx, docker, spec, os.Stderr, log)
//
// Ensure and Build serialise builds of the same ref through a lock file in
// the user's cache directory, so two goroutines or two brig processes that
// find the image missing at the same time build it once.
//
// Running mmdebstrap is the one place where brig's product code starts an
// external program; Docker itself is only ever reached through the Engine
// API.
package image
