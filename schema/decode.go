package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Size caps on whole messages.
const (
	DefaultMaxJobBytes = 512 << 10
	MaxEventBytes      = 8 << 20
	MaxWorkBytes       = 1 << 20
)

// ErrTooLarge marks a message over its size cap.
var ErrTooLarge = errors.New("message too large")

// FieldError is a decoding or validation failure that names its field.
// Field is a dotted JSON path ("limits.memory_mb", "files[../x]") or
// "(message)" for problems with the message as a whole.
type FieldError struct {
	Field string
	Msg   string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// DecodeJob strictly decodes and validates a job. maxBytes <= 0 means
// DefaultMaxJobBytes.
func DecodeJob(data []byte, maxBytes int) (*Job, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxJobBytes
	}
	var j Job
	if err := decodeStrict(data, &j, maxBytes); err != nil {
		return nil, err
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return &j, nil
}

// DecodeEvent strictly decodes an event.
func DecodeEvent(data []byte) (*Event, error) {
	var e Event
	if err := decodeStrict(data, &e, MaxEventBytes); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// DecodeWork strictly decodes and validates a dispatcher's work message.
func DecodeWork(data []byte) (*Work, error) {
	var w Work
	if err := decodeStrict(data, &w, MaxWorkBytes); err != nil {
		return nil, err
	}
	if w.Version != Version {
		return nil, fieldErr("version", "is %d, this build speaks %d", w.Version, Version)
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return &w, nil
}

// decodeStrict decodes exactly one JSON object into v, refusing unknown
// fields, wrong types, trailing data and anything over maxBytes.
func decodeStrict(data []byte, v any, maxBytes int) error {
	if len(data) > maxBytes {
		return &FieldError{Field: "(message)", Msg: fmt.Sprintf("is %d bytes, over the %d-byte limit", len(data), maxBytes), Err: ErrTooLarge}
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fieldErr("(message)", "is not a JSON object")
	}
	if err := checkKeys(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fieldErr("(message)", "has data after the JSON object")
	}
	return nil
}

// jsonFieldError turns encoding/json's errors into FieldErrors.
func jsonFieldError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(message)"
		}
		return &FieldError{Field: field, Msg: fmt.Sprintf("must be %s, not JSON %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value), Err: err}
	case errors.As(err, &syntaxErr):
		return &FieldError{Field: "(message)", Msg: fmt.Sprintf("is not valid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr), Err: err}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		quoted := strings.TrimPrefix(err.Error(), "json: unknown field ")
		name, uerr := strconv.Unquote(quoted)
		if uerr != nil {
			name = strings.Trim(quoted, `"`)
		}
		return &FieldError{Field: fieldName(name), Msg: "is not a known field", Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &FieldError{Field: "(message)", Msg: "is truncated JSON", Err: err}
	}
	return &FieldError{Field: "(message)", Msg: err.Error(), Err: err}
}

// jsonField finds the struct field whose JSON name is exactly key.
// encoding/json would also accept a case-insensitive match; brig does not,
// so that no two readers of one message can disagree on a field.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	f, ok := jsonFields(t)[key]
	return f, ok
}

// fieldsByType caches jsonFields: every message decoded checks each of its
// keys, and walking a type's fields by reflection each time cost more than
// the rest of decoding.
var fieldsByType sync.Map // reflect.Type → map[string]reflect.StructField

// jsonFields maps the JSON names of t's fields to the fields.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	if m, ok := fieldsByType.Load(t); ok {
		return m.(map[string]reflect.StructField)
	}
	m := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(t) {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || (f.Anonymous && tag == "") || tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if _, dup := m[tag]; !dup {
			m[tag] = f
		}
	}
	fieldsByType.Store(t, m)
	return m
}

// fieldName quotes a key that would not read as one segment of a path: an
// empty one, or one with dots, spaces or other punctuation.
func fieldName(key string) string {
	plain := func(r rune) bool {
		return r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	if key != "" && strings.IndexFunc(key, func(r rune) bool { return !plain(r) }) < 0 {
		return clip(key)
	}
	return strconv.Quote(clip(key))
}

func joinPath(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return goKind
}
