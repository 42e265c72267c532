package schema

import (
	"encoding/json"
	"time"
)

// FunctionOwner says whose a function is, as a tenant sees it
// (docs/design.md §3.1).
type FunctionOwner string

// Owners of a FunctionInfo.
const (
	// OwnerTenant: the tenant's own; it may deploy and delete it.
	OwnerTenant FunctionOwner = "tenant"
	// OwnerGlobal: deployed by an admin for every tenant.
	OwnerGlobal FunctionOwner = "global"
	// OwnerBuiltin: brig's own (python, echo).
	OwnerBuiltin FunctionOwner = "builtin"
)

// FunctionInfo is one function as a tenant sees it, in the answers of the
// functions service on brig.functions.<tenant> (and the HTTP API's
// /v1/functions): what the tenant's jobs of that name resolve to.
type FunctionInfo struct {
	Name  string        `json:"name"`
	Owner FunctionOwner `json:"owner"`
	// Revision and Updated are the stored definition's (zero for a
	// built-in); an unchanged deploy keeps both.
	Revision uint64    `json:"revision,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
	Function Function  `json:"function"`
}

// FunctionsOp is the operation of a FunctionsRequest.
type FunctionsOp string

// Operations of a FunctionsRequest.
const (
	FunctionsList   FunctionsOp = "list"
	FunctionsGet    FunctionsOp = "get"
	FunctionsDeploy FunctionsOp = "deploy"
	FunctionsDelete FunctionsOp = "delete"
)

// FunctionsRequest is a request on brig.functions.<tenant>
// (FunctionsSubject; docs/design.md §3.1), which the dispatchers decode
// strictly. Name is get's and delete's; Function is deploy's (a Function,
// decoded strictly too).
type FunctionsRequest struct {
	Op       FunctionsOp     `json:"op"`
	Name     string          `json:"name,omitempty"`
	Function json.RawMessage `json:"function,omitempty"`
}

// FunctionsReply answers a FunctionsRequest, on an inbox of the tenant:
// Functions for list, Function for get and deploy (Changed: deploy wrote a
// new revision), nothing for delete; or Error, with ErrorType NotFound,
// Forbidden, InvalidFunction (Field names the field), QuotaExceeded, Busy
// (Error is BusyAnswer) or Infrastructure.
type FunctionsReply struct {
	Functions []FunctionInfo `json:"functions,omitempty"`
	Function  *FunctionInfo  `json:"function,omitempty"`
	Changed   bool           `json:"changed,omitempty"`

	Error     string    `json:"error,omitempty"`
	ErrorType ErrorType `json:"error_type,omitempty"`
	Field     string    `json:"field,omitempty"`
}
