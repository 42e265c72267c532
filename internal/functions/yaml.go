package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/brig-dev/brig/schema"
)

// MaxYAMLBytes caps a file of definitions.
const MaxYAMLBytes = 4 << 20

// DefinitionError is an invalid definition in a YAML file.
type DefinitionError struct {
	// Index is the definition's position in the file, from 0, counting
	// across lists and --- documents.
	Index int
	// Name is the definition's name, when it has a valid one.
	Name string
	// Err says what is wrong; a *schema.FieldError names the field.
	Err error
}

func (e *DefinitionError) Error() string {
	at := fmt.Sprintf("functions[%d]", e.Index)
	msg := e.Err.Error()
	var fe *schema.FieldError
	if errors.As(e.Err, &fe) {
		if fe.Field != "(message)" {
			at += "." + fe.Field
		}
		msg = fe.Msg
	}
	if e.Name != "" {
		at += fmt.Sprintf(" (function %q)", e.Name)
	}
	return at + ": " + msg
}

func (e *DefinitionError) Unwrap() error { return e.Err }

// ParseYAML reads and validates function definitions: one definition, a
// list of them, or several --- documents of either. Keys are the JSON
// field names of schema.Function and are decoded by the same strict
// decoder as everything else brig reads: an unknown key, a wrong type or
// an invalid value is a *DefinitionError naming the definition and the
// field, e.g. "functions[1].limits.memry_mb (function "grader"): is not a
// known field". As in YAML 1.1, unquoted yes/no/on/off are booleans, so
// quote such env values. A key twice in one mapping is an error, and so is
// a key that overrides one merged in with <<; anchors and aliases work.
// Two definitions with one name are an error too.
func ParseYAML(data []byte) ([]schema.Function, error) {
	if len(data) > MaxYAMLBytes {
		return nil, fmt.Errorf("YAML is %d bytes, over the %d-byte limit", len(data), MaxYAMLBytes)
	}
	docs, err := yamlDocuments(data)
	if err != nil {
		return nil, err
	}
	var fns []schema.Function
	index := map[string]int{}
	for _, doc := range docs {
		for _, raw := range doc {
			fn, err := decodeDefinition(raw, len(fns), index)
			if err != nil {
				return nil, err
			}
			index[fn.Name] = len(fns)
			fns = append(fns, *fn)
		}
	}
	if len(fns) == 0 {
		return nil, errors.New("no function definitions found")
	}
	return fns, nil
}

func decodeDefinition(raw json.RawMessage, i int, index map[string]int) (*schema.Function, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, &DefinitionError{Index: i, Err: errors.New("must be a mapping of function fields")}
	}
	fn, err := schema.DecodeFunction(raw)
	if err != nil {
		return nil, &DefinitionError{Index: i, Name: peekName(raw), Err: err}
	}
	if first, dup := index[fn.Name]; dup {
		return nil, &DefinitionError{Index: i, Name: fn.Name, Err: &schema.FieldError{
			Field: "name", Msg: fmt.Sprintf("%q is already defined by functions[%d]", fn.Name, first),
		}}
	}
	return fn, nil
}

// yamlDocuments splits a YAML stream into its documents, each converted
// to JSON and flattened to its definitions: a mapping is one, a sequence
// is a list of them. Empty documents are skipped.
func yamlDocuments(data []byte) ([][]json.RawMessage, error) {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	dec.SetStrict(true) // duplicate keys are errors
	var docs [][]json.RawMessage
	for n := 1; ; n++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("invalid YAML: %w", err)
		}
		if v == nil {
			continue
		}
		doc, err := documentJSON(v)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		docs = append(docs, doc)
	}
}

// documentJSON converts one decoded document with sigs.k8s.io/yaml, so
// that YAML maps to JSON the way Kubernetes tools do.
func documentJSON(v any) ([]json.RawMessage, error) {
	y, err := yamlv2.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("re-encode YAML: %w", err)
	}
	j, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return nil, fmt.Errorf("convert YAML to JSON: %w", err)
	}
	j = bytes.TrimSpace(j)
	switch {
	case len(j) == 0:
	case j[0] == '{':
		return []json.RawMessage{j}, nil
	case j[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(j, &list); err != nil {
			return nil, fmt.Errorf("read list: %w", err)
		}
		return list, nil
	}
	return nil, errors.New("must be a function definition (a mapping) or a list of them")
}

// peekName reads a definition's name for error messages, if it is valid.
func peekName(raw json.RawMessage) string {
	var probe struct {
		Name any `json:"name"`
	}
	_ = json.Unmarshal(raw, &probe)
	if s, ok := probe.Name.(string); ok && schema.ValidName(s) {
		return s
	}
	return ""
}

// MarshalYAML encodes fn as `brig functions show` prints it and ParseYAML
// reads it back unchanged: the fields of its stored encoding
// (schema.Marshal), in that order, less empty mappings, each string that
// YAML would read as something else (yes, 1e3, null, control characters)
// quoted.
func MarshalYAML(fn schema.Function) ([]byte, error) {
	data, err := schema.Marshal(fn)
	if err != nil {
		return nil, fmt.Errorf("function %q: encode: %w", fn.Name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	doc, err := yamlValue(dec)
	if err != nil {
		return nil, fmt.Errorf("function %q: convert to YAML: %w", fn.Name, err)
	}
	out, err := yamlv2.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("function %q: encode YAML: %w", fn.Name, err)
	}
	return out, nil
}

// yamlValue reads the next JSON value of dec as a value for yamlv2.Marshal:
// an object as a MapSlice, which keeps its keys' order, a number as an
// int64 or float64 (a json.Number would be emitted as a string). The
// JSON is schema.Marshal's, so its nesting is the Function type's.
func yamlValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			list := []any{}
			for dec.More() {
				item, err := yamlValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, item)
			}
			_, err := dec.Token() // ]
			return list, err
		}
		m := yamlv2.MapSlice{}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil, err
			}
			val, err := yamlValue(dec)
			if err != nil {
				return nil, err
			}
			// An empty mapping (limits: {}) reads back the same as none.
			if sub, ok := val.(yamlv2.MapSlice); ok && len(sub) == 0 {
				continue
			}
			m = append(m, yamlv2.MapItem{Key: key, Value: val})
		}
		_, err := dec.Token() // }
		return m, err
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		return v.Float64()
	}
	return tok, nil // string, bool or nil
}
