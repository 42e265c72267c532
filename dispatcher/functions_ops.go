package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

// The operations of the functions service (functions.go) for tenant T,
// docs/design.md §3.1.

// listFunctions answers what T's jobs resolve, one entry a name. A stored
// definition brig cannot use is left out (and logged): it has no
// definition to show, and a get of its name says what is wrong.
func (d *Dispatcher) listFunctions(ctx context.Context, store *functions.Store, tenant string) (schema.FunctionsReply, error) {
	entries := functions.Builtins()
	if store != nil {
		var err error
		if entries, err = store.VisibleTo(ctx, tenant); err != nil {
			return schema.FunctionsReply{}, err
		}
	}
	out := make([]schema.FunctionInfo, 0, len(entries))
	for _, e := range entries {
		if e.Err != nil {
			d.log.Warn("a function a tenant sees is invalid", "tenant", tenant, "err", e.Err)
			continue
		}
		out = append(out, infoOf(e))
	}
	return schema.FunctionsReply{Functions: out}, nil
}

// getFunction answers the function name resolves to for T's jobs.
func getFunction(ctx context.Context, store *functions.Store, tenant, name string) (schema.FunctionsReply, error) {
	e, err := functions.KVResolver{Store: store}.Lookup(ctx, tenant, name)
	if err != nil {
		return schema.FunctionsReply{}, err
	}
	info := infoOf(e)
	return schema.FunctionsReply{Function: &info}, nil
}

// deployFunction writes T's own definition (key T.<name>), as
// functions.Store.DeployOwn allows a tenant.
func deployFunction(ctx context.Context, store *functions.Store, tenant string, raw json.RawMessage) (schema.FunctionsReply, error) {
	fn, err := schema.DecodeFunction(raw)
	if err != nil {
		return schema.FunctionsReply{}, err
	}
	if store == nil {
		return schema.FunctionsReply{}, errNoStore
	}
	e, changed, err := store.DeployOwn(ctx, tenant, *fn)
	if err != nil {
		return schema.FunctionsReply{}, err
	}
	info := infoOf(e)
	return schema.FunctionsReply{Function: &info, Changed: changed}, nil
}

// deleteFunction removes T's own definition of name; a global or built-in
// one is an admin's to remove.
func deleteFunction(ctx context.Context, store *functions.Store, tenant, name string) (schema.FunctionsReply, error) {
	if store != nil {
		err := store.DeleteFor(ctx, tenant, name)
		if !errors.Is(err, functions.ErrNotFound) {
			return schema.FunctionsReply{}, err
		}
	}
	e, err := functions.KVResolver{Store: store}.Lookup(ctx, tenant, name)
	if errors.Is(err, functions.ErrInvalidStored) {
		// A global definition brig cannot use: still not the tenant's.
		err = nil
	}
	if err != nil {
		return schema.FunctionsReply{}, err
	}
	return schema.FunctionsReply{}, &functions.ForbiddenError{
		Msg: fmt.Sprintf("function %q is %s, not the tenant's own; only an admin may delete it", name, ownerOf(e)),
	}
}

// infoOf is an entry as a tenant sees it.
func infoOf(e functions.Entry) schema.FunctionInfo {
	return schema.FunctionInfo{Name: e.Name, Owner: ownerOf(e), Revision: e.Revision, Updated: e.Updated, Function: e.Function}
}

func ownerOf(e functions.Entry) schema.FunctionOwner {
	switch {
	case e.Builtin:
		return schema.OwnerBuiltin
	case e.Tenant == "":
		return schema.OwnerGlobal
	}
	return schema.OwnerTenant
}

// functionsError answers a request that failed, with the error type a
// client branches on.
func (d *Dispatcher) functionsError(tenant string, req *schema.FunctionsRequest, err error) schema.FunctionsReply {
	var field *schema.FieldError
	var forbidden *functions.ForbiddenError
	switch {
	case errors.As(err, &forbidden):
		return schema.FunctionsReply{Error: headerText(err.Error()), ErrorType: schema.ErrForbidden, Field: forbidden.Field}
	case errors.As(err, &field) && !errors.Is(err, functions.ErrInvalidStored):
		return refusal(schema.ErrInvalidFunction, err)
	case errors.Is(err, functions.ErrNotFound):
		return schema.FunctionsReply{Error: fmt.Sprintf("function %q not found", schema.ClipText(req.Name, 64)), ErrorType: schema.ErrNotFound}
	case errors.Is(err, functions.ErrQuotaExceeded), errors.Is(err, functions.ErrBucketFull):
		return schema.FunctionsReply{Error: headerText(err.Error()), ErrorType: schema.ErrQuotaExceeded}
	case errors.Is(err, functions.ErrConflict):
		return schema.FunctionsReply{Error: schema.BusyAnswer, ErrorType: schema.ErrBusy}
	}
	d.log.Warn("answer a functions request", "tenant", tenant, "op", req.Op, "err", err)
	return schema.FunctionsReply{Error: headerText(string(req.Op) + " functions: " + err.Error()), ErrorType: schema.ErrInfrastructure}
}

// refusal answers an invalid request or definition, naming the field.
func refusal(t schema.ErrorType, err error) schema.FunctionsReply {
	r := schema.FunctionsReply{Error: headerText(err.Error()), ErrorType: t}
	var field *schema.FieldError
	if errors.As(err, &field) {
		r.Field = field.Field
	}
	return r
}
