package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// checkKeys walks data token by token beside the Go type it decodes into
// and rejects what encoding/json would quietly accept: keys that match a
// field only case-insensitively, unknown keys (reported with their full
// path), and keys that appear twice in one object. Malformed JSON is left
// for the decoder to report.
func checkKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := walkValue(dec, t, "")
	if _, ok := err.(*FieldError); ok {
		return err
	}
	return nil
}

// walkValue consumes one JSON value. A nil t (free-form JSON, or a type
// with its own decoder) is consumed without checks.
func walkValue(dec *json.Decoder, t reflect.Type, at string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		t = nil
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, at)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

func walkObject(dec *json.Decoder, t reflect.Type, at string) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var child reflect.Type
		path := joinPath(at, fieldName(key))
		switch {
		case t != nil && t.Kind() == reflect.Struct:
			f, ok := jsonField(t, key)
			if !ok {
				return &FieldError{Field: path, Msg: "is not a known field (names are case-sensitive)"}
			}
			child = f.Type
		case t != nil && t.Kind() == reflect.Map:
			child, path = t.Elem(), fmt.Sprintf("%s[%q]", at, clip(key))
		}
		if t != nil && seen[key] {
			return &FieldError{Field: path, Msg: "appears more than once"}
		}
		seen[key] = true
		if err := walkValue(dec, child, path); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}
