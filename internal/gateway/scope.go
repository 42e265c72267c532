package gateway

import (
	"fmt"
	"regexp"

	"github.com/brig-dev/brig/internal/gatewayproto"
	"github.com/brig-dev/brig/schema"
)

// kvKeyRe is what JetStream KV accepts as a key.
var kvKeyRe = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// requiredScope is the scope an operation needs, or an error for a request
// that names no valid resource.
func requiredScope(req *gatewayproto.Request) (schema.Scope, error) {
	var sc schema.Scope
	switch req.Op {
	case gatewayproto.OpDictGet:
		sc = schema.Scope{Kind: schema.ResourceDict, Action: "read"}
	case gatewayproto.OpDictPut, gatewayproto.OpDictDelete:
		sc = schema.Scope{Kind: schema.ResourceDict, Action: "write"}
	case gatewayproto.OpQueuePut:
		sc = schema.Scope{Kind: schema.ResourceQueue, Action: "put"}
	case gatewayproto.OpQueueGet:
		sc = schema.Scope{Kind: schema.ResourceQueue, Action: "get"}
	case gatewayproto.OpCall:
		sc = schema.Scope{Kind: schema.ResourceFunction, Action: "call"}
	default:
		return sc, fmt.Errorf("unknown operation %q", clip(req.Op))
	}
	if !schema.ValidName(req.Name) {
		return sc, fmt.Errorf("%s name %q is not valid", sc.Kind, clip(req.Name))
	}
	sc.Name = req.Name
	return sc, nil
}

// clip shortens what a job sent for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
