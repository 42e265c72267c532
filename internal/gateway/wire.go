package gateway

import "github.com/brig-dev/brig/internal/gatewayproto"

// The wire's home is package gatewayproto. These two names stay here for
// the worker, which binds sockets (Binding.OnQuotaExceeded hands it an
// *Error) and mounts them at Socket; new code uses gatewayproto's.

// Error says why a call failed: gatewayproto.Error.
type Error = gatewayproto.Error

// Socket is where the gateway socket appears inside a container:
// gatewayproto.Socket.
const Socket = gatewayproto.Socket
