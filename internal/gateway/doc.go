// Package gateway is a job's only door to shared resources. The worker
// serves one unix socket per job, bind-mounted into the container at
// /run/brig/gateway.sock; the job's code sends JSON-line requests carrying
// its token (BRIG_TOKEN). Every request is checked for the token's
// signature, its expiry, that it belongs to the socket's job, and that it
// grants the scope the operation needs; only then does the gateway perform
// the call on NATS itself. The container never holds a NATS credential
// (docs/design.md §4.3).
//
// The protocol, one JSON request per line and one JSON response per line,
// in order, with its limits, is package internal/gatewayproto, which the
// in-container clients import without this package's NATS stack.
package gateway
