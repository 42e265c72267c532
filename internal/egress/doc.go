// Package egress prepares the network of jobs that ask for one
// (`network: true`): a dedicated Docker bridge network, brig-egress, and
// host firewall rules so that its containers reach the public internet
// only. docs/design.md §5: such a job still cannot reach NATS, the worker or the
// host.
//
// Docker's default bridge would let a container reach every address of the
// host (172.17.0.1, the host's LAN address, anything listening on
// 0.0.0.0), the other containers and the private ranges around the host.
// brig-egress has its own bridge interface, brig-egress0, with
// inter-container traffic off and no IPv6, and the firewall drops every
// packet that comes in from brig-egress0 and is
//
//   - addressed to the host itself (INPUT chain), or
//   - forwarded to a private, shared, loopback, link-local, multicast,
//     reserved or documentation range (DOCKER-USER, the chain Docker
//     creates for its users and never flushes).
//
// Name resolution: containers on a user-defined network ask Docker's
// embedded resolver, which forwards their queries from the container's
// own network namespace to the host's resolvers. When those resolvers are
// on a private address (a LAN router, a cloud's 10.x resolver) or on the
// host itself, the rules above drop the queries too, and names do not
// resolve: a job then has to use addresses, or the operator points the
// daemon at a public resolver.
//
// The common call, as the worker makes it before its first job with a
// network:
//
//	name, err := egress.Ensure(ctx, docker, log) // docker: *client.Client
//	...
//	host := &container.HostConfig{NetworkMode: container.NetworkMode(name), ...}
//
// Ensure is idempotent and safe to call from several processes on one host.
// The firewall is the host's: the caller must be root in the Docker host's
// network namespace (a containerised worker needs the host's network and
// CAP_NET_ADMIN), and iptables and, on hosts with IPv6, ip6tables must be
// installed. Check reports whether the rules are (still) in place, for
// health checks after a firewall reload that flushed INPUT.
//
// Running iptables is, with mmdebstrap in internal/image, one of the few
// places where brig starts an external program; Docker itself is only ever
// reached through the Engine API.
package egress
