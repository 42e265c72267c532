package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

// The functions service (docs/design.md §3.1, §10.3). A tenant's
// credential has no JetStream API, so it cannot read or write the function
// bucket; it asks on brig.functions.<tenant>, and the dispatcher that takes
// the request (queue group CancelQueue) answers one schema.FunctionsReply on the
// request's reply subject, which must be an inbox of that tenant, as for
// status. The tenant is the subject's: a request reads what that tenant's
// jobs resolve and writes that tenant's own keys only.

// Bounds of the functions service (docs/design.md §3.1).
const (
	// MaxFunctionsRequests bounds the functions requests one dispatcher has
	// in hand; past it a request is answered busy at once.
	MaxFunctionsRequests = 32
	// MaxFunctionsRequestBytes caps a request: one definition
	// (schema.MaxFunctionBytes) and the envelope around it.
	MaxFunctionsRequestBytes = schema.MaxFunctionBytes + 1024
	// functionsLookup bounds the bucket reads and writes of one request.
	functionsLookup = 10 * time.Second
)

// functionsService returns the handler of brig.functions.*, with its own
// bound of MaxFunctionsRequests in hand.
func (d *Dispatcher) functionsService() nats.MsgHandler {
	return d.functionsHandler(make(chan struct{}, MaxFunctionsRequests))
}

// functionsHandler answers functions requests, each holding a place in
// inHand while it works; with inHand full it answers busy.
func (d *Dispatcher) functionsHandler(inHand chan struct{}) nats.MsgHandler {
	return tenantService[schema.FunctionsReply]{
		name: "functions", prefix: schema.FunctionsPrefix, inHand: inHand, budget: functionsLookup,
		busy: func(string) schema.FunctionsReply {
			return schema.FunctionsReply{Error: schema.BusyAnswer, ErrorType: schema.ErrBusy}
		},
		serve:  d.serveFunctions,
		answer: d.answerFunctions,
	}.handler(d)
}

// serveFunctions decodes and carries out one request of tenant.
func (d *Dispatcher) serveFunctions(ctx context.Context, tenant string, data []byte) schema.FunctionsReply {
	req, err := decodeFunctionsRequest(data)
	if err != nil {
		return refusal(schema.ErrInvalidFunction, err)
	}
	store := d.functionStore()
	var r schema.FunctionsReply
	switch req.Op {
	case schema.FunctionsList:
		r, err = d.listFunctions(ctx, store, tenant)
	case schema.FunctionsGet:
		r, err = getFunction(ctx, store, tenant, req.Name)
	case schema.FunctionsDeploy:
		r, err = deployFunction(ctx, store, tenant, req.Function)
	case schema.FunctionsDelete:
		r, err = deleteFunction(ctx, store, tenant, req.Name)
	}
	if err != nil {
		return d.functionsError(tenant, req, err)
	}
	return r
}

// decodeFunctionsRequest strictly decodes a request, bounded by
// MaxFunctionsRequestBytes.
func decodeFunctionsRequest(data []byte) (*schema.FunctionsRequest, error) {
	if len(data) > MaxFunctionsRequestBytes {
		return nil, &schema.FieldError{Field: "(message)", Msg: fmt.Sprintf("is %d bytes, over the %d-byte limit (MaxFunctionsRequestBytes)", len(data), MaxFunctionsRequestBytes)}
	}
	var req schema.FunctionsRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, &schema.FieldError{Field: "(message)", Msg: "is not a functions request: " + err.Error()}
	}
	if dec.More() {
		return nil, &schema.FieldError{Field: "(message)", Msg: "has data after the JSON object"}
	}
	switch req.Op {
	case schema.FunctionsList, schema.FunctionsGet, schema.FunctionsDeploy, schema.FunctionsDelete:
	default:
		return nil, &schema.FieldError{Field: "op", Msg: fmt.Sprintf("must be list, get, deploy or delete, got %q", schema.ClipText(string(req.Op), 64))}
	}
	if (req.Op == schema.FunctionsDeploy) != (len(req.Function) > 0) {
		return nil, &schema.FieldError{Field: "function", Msg: "is deploy's, and deploy's only"}
	}
	return &req, nil
}

// functionStore is the store the dispatcher resolves functions from; nil
// when it resolves the built-ins only.
func (d *Dispatcher) functionStore() *functions.Store {
	switch r := d.cfg.Functions.(type) {
	case functions.KVResolver:
		return r.Store
	case *functions.KVResolver:
		return r.Store
	}
	return nil
}

// errNoStore answers a write to a dispatcher without a function bucket.
var errNoStore = errors.New("this dispatcher resolves the built-in functions only; it keeps no deployed ones")

// answerFunctions publishes r on reply; one too large for the server (a
// list of large global definitions) is answered Infrastructure instead, so
// that the client hears why.
func (d *Dispatcher) answerFunctions(reply string, r schema.FunctionsReply) {
	data, _ := json.Marshal(r)
	if limit := d.cfg.Conn.MaxPayload(); limit > 0 && int64(len(data)+len(reply)) > limit {
		d.log.Warn("a functions answer is larger than the server's max_payload", "bytes", len(data), "max_payload", limit)
		data, _ = json.Marshal(schema.FunctionsReply{ErrorType: schema.ErrInfrastructure,
			Error: fmt.Sprintf("the answer is %d bytes, over the NATS server's max_payload of %d; get the functions one by one", len(data), limit)})
	}
	if err := d.cfg.Conn.Publish(reply, data); err != nil {
		d.log.Warn("answer a functions request", "reply", reply, "err", err)
	}
}
