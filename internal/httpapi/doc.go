// Package httpapi is brig's HTTP API (docs/design.md §11): JSON over
// HTTP/1.1 for tenants, a thin layer over the Go SDK. A request's bearer
// token is a tenant's NATS credential; the server holds none of its own,
// opens (and pools) one NATS connection per token, and leaves every check
// of the token's rights to NATS.
//
//	srv, err := httpapi.New(httpapi.Config{Listen: "127.0.0.1:4280", NATSURL: url})
//	if err != nil { ... }
//	if err := srv.Start(ctx); err != nil { ... }
//	defer srv.Stop(ctx)
package httpapi
