package schema

import "time"

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
