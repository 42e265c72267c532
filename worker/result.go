package worker

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/schema"
)

// jobOutput is what a terminal event carries of the job's result.json: the
// bytes the job wrote (less surrounding white space), or nothing and why.
// A result brig will not carry (docs/design.md §13: over
// schema.MaxResultBytes, nested deeper than schema.MaxResultDepth, not
// JSON, not a regular file) is the job's business: its status still comes
// from its exit code.
func jobOutput(exit *initproto.Exit) (json.RawMessage, string) {
	if exit.ResultError != "" {
		return nil, schema.ClipText(schema.ResultFile+": "+exit.ResultError, schema.MaxEventTextBytes)
	}
	raw := bytes.TrimSpace(exit.Result)
	if len(exit.Result) == 0 {
		return nil, ""
	}
	var why string
	switch depth := schema.JSONDepth(raw); {
	case len(raw) > schema.MaxResultBytes:
		why = fmt.Sprintf("is %d bytes, over the %d-byte limit", len(raw), schema.MaxResultBytes)
	case depth > schema.MaxResultDepth:
		why = fmt.Sprintf("nests %d levels deep, over the limit of %d levels", depth, schema.MaxResultDepth)
	case !json.Valid(raw):
		why = "is not valid JSON"
	default:
		return json.RawMessage(raw), ""
	}
	return nil, schema.ResultFile + " " + why
}
