package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Marshal encodes v as brig sends it on the wire. encoding/json's default
// escapes <, > and & as \u003c and the like: one byte of a job's code or
// result becomes six, so a size checked on the input is not the size sent
// (docs/design.md §13). Nothing brig publishes is HTML-escaped.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ErrOutputNotJSON marks an event whose output is not one JSON value.
var ErrOutputNotJSON = errors.New("output is not a JSON value")

// MarshalEvent encodes ev like Marshal, with its output spliced in as the
// very bytes the job wrote (encoding/json would compact them), so that a
// result.json comes back byte for byte, less surrounding white space.
func MarshalEvent(ev *Event) ([]byte, error) {
	out := bytes.TrimSpace(ev.Output)
	if len(out) == 0 {
		cp := *ev
		cp.Output = nil
		return Marshal(&cp)
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("%s event of job %s: %w", ev.Type, ev.JobID, ErrOutputNotJSON)
	}
	cp := *ev
	cp.Output = nil
	data, err := Marshal(&cp)
	if err != nil {
		return nil, err
	}
	// data is a non-empty object ({"job_id":...}): the output goes last.
	buf := make([]byte, 0, len(data)+len(out)+len(`,"output":`))
	buf = append(buf, data[:len(data)-1]...)
	buf = append(buf, `,"output":`...)
	buf = append(buf, out...)
	return append(buf, '}'), nil
}

// JSONDepth returns how deeply the arrays and objects of a valid JSON text
// nest (0 for a scalar). It does not recurse, so a hostile depth costs a
// scan and nothing more.
func JSONDepth(data []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range data {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
