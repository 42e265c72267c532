package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/brig-dev/brig/schema"
)

// The wire of the functions service (dispatcher/functions.go): one request
// on brig.functions.<tenant>, one answer on an inbox of the tenant.

// ask sends one request and reads its answer; a refusal is a
// *FunctionError.
func (f *Functions) ask(ctx context.Context, req schema.FunctionsRequest) (*schema.FunctionsReply, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg, err := f.c.request(ctx, schema.FunctionsSubject(f.c.tenant), data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("no brig dispatcher answers %s (is brig running?): %w", schema.FunctionsSubject(f.c.tenant), err)
	}
	if err != nil {
		return nil, err
	}
	var r schema.FunctionsReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, fmt.Errorf("bad answer: %w", err)
	}
	switch {
	case r.Error == schema.BusyAnswer && r.ErrorType == "":
		return nil, &FunctionError{Type: schema.ErrBusy, Message: r.Error}
	case r.Error != "" || r.ErrorType != "":
		return nil, &FunctionError{Type: r.ErrorType, Field: r.Field, Message: r.Error}
	}
	return &r, nil
}

// invalidFunction is a definition that fails validation, refused before
// it is sent, as brig would refuse it.
func invalidFunction(err error) error {
	fe := &FunctionError{Type: schema.ErrInvalidFunction, Message: err.Error()}
	var field *schema.FieldError
	if errors.As(err, &field) {
		fe.Field = field.Field
	}
	return fe
}
