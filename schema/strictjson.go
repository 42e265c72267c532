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
	err := walkValue(dec, t, nil)
	if _, ok := err.(*FieldError); ok {
		return err
	}
	return nil
}

// keyPath is where in the message the walk is, rendered only for an error.
type keyPath struct {
	parent *keyPath
	key    string // a struct field or map key
	index  int    // an array index, when isIndex
	kind   byte   // 'f' field, 'm' map key, 'i' index
}

func (p *keyPath) String() string {
	if p == nil {
		return ""
	}
	at := p.parent.String()
	switch p.kind {
	case 'i':
		return fmt.Sprintf("%s[%d]", at, p.index)
	case 'm':
		return fmt.Sprintf("%s[%q]", at, clip(p.key))
	}
	return joinPath(at, fieldName(p.key))
}

// walkValue consumes one JSON value. A nil t (free-form JSON, or a type
// with its own decoder) is skipped without checks.
func walkValue(dec *json.Decoder, t reflect.Type, at *keyPath) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		var skip json.RawMessage
		return dec.Decode(&skip)
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
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, &keyPath{parent: at, index: i, kind: 'i'}); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}

func walkObject(dec *json.Decoder, t reflect.Type, at *keyPath) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var child reflect.Type
		here := &keyPath{parent: at, key: key, kind: 'f'}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := jsonField(t, key)
			if !ok {
				return &FieldError{Field: here.String(), Msg: "is not a known field (names are case-sensitive)"}
			}
			child = f.Type
		case reflect.Map:
			child, here.kind = t.Elem(), 'm'
		}
		if seen[key] {
			return &FieldError{Field: here.String(), Msg: "appears more than once"}
		}
		seen[key] = true
		if err := walkValue(dec, child, here); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}
