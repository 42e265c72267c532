package gatewayproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/build"
	"reflect"
	"strings"
	"testing"
)

// TestLeaf: the package imports the standard library only, so that every
// side of the socket may use it without the others' dependencies.
func TestLeaf(t *testing.T) {
	t.Parallel()
	pkg, err := build.Default.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
			t.Errorf("gatewayproto imports %s: a wire package imports the standard library only", imp)
		}
	}
}

func TestEncodeLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		enc  func() ([]byte, error)
		want string
	}{
		{"request", func() ([]byte, error) {
			return EncodeRequest(&Request{ID: 7, Token: "t", Op: OpDictPut, Name: "d", Key: "k", Value: json.RawMessage(`"<a&b>"`)})
		}, `{"id":7,"token":"t","op":"dict.put","name":"d","key":"k","value":"<a&b>"}` + "\n"},
		{"empty request", func() ([]byte, error) { return EncodeRequest(&Request{}) },
			`{"id":0,"token":"","op":"","name":""}` + "\n"},
		{"response", func() ([]byte, error) {
			return EncodeResponse(&Response{ID: 3, OK: true, Found: true, Value: json.RawMessage(`{"html":"<p>&amp;</p>"}`)})
		}, `{"id":3,"ok":true,"found":true,"value":{"html":"<p>&amp;</p>"}}` + "\n"},
		{"error response", func() ([]byte, error) {
			return EncodeResponse(&Response{Error: &Error{Type: ErrAuthError, Message: "no", Resource: "dict:d", Action: "read"}})
		}, `{"id":0,"ok":false,"error":{"type":"AuthError","message":"no","resource":"dict:d","action":"read"}}` + "\n"},
	} {
		got, err := tt.enc()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
	if _, err := EncodeResponse(&Response{Value: json.RawMessage(`not json`)}); err == nil {
		t.Error("a Value that is not JSON was encoded")
	}
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		line    string
		want    Request
		wantErr string // "" for none
	}{
		{`{"id":1,"token":"t","op":"queue.get","name":"q","timeout_ms":5}`,
			Request{ID: 1, Token: "t", Op: OpQueueGet, Name: "q", TimeoutMS: 5}, ""},
		{`{"id":2,"op":"function.call","name":"f","code":"x","args":[1, 2]}`,
			Request{ID: 2, Op: OpCall, Name: "f", Code: "x", Args: json.RawMessage(`[1, 2]`)}, ""},
		// The ID read before the error is kept, for a refusal to carry.
		{`{"id":3,"nope":1}`, Request{ID: 3}, `unknown field "nope"`},
		{`{"id":4} {"id":5}`, Request{ID: 4}, ErrTrailingData.Error()},
		{`{"id":6}x`, Request{ID: 6}, ErrTrailingData.Error()},
		{`not json`, Request{}, "invalid character"},
		{``, Request{}, "EOF"},
		{`[]`, Request{}, "cannot unmarshal array"},
	} {
		got, err := DecodeRequest([]byte(tt.line))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("DecodeRequest(%s): %v", tt.line, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("DecodeRequest(%s) = %v, want an error containing %q", tt.line, err, tt.wantErr)
		case !reflect.DeepEqual(got, tt.want):
			t.Errorf("DecodeRequest(%s) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
	if _, err := DecodeRequest([]byte(`{"id":1} 2`)); !errors.Is(err, ErrTrailingData) {
		t.Errorf("trailing value: %v, want ErrTrailingData", err)
	}
}

// FuzzDecodeRequest: the gateway decodes whatever a job sends. No panic,
// and whatever decodes encodes back to one line that decodes to the same
// request.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"token":"t","op":"dict.put","name":"d","key":"k","value":{"a":[1,"<"]}}`,
		`{"id":2,"op":"function.call","name":"f","args":[1],"code":"x","timeout_ms":5}`,
		`{"ID":7,"OP":"dict.get","NAME":"d"}`,
		`{"id":1e99}`, `{"value":"\ud800"}`, `{"name":"a\u2028b"}`, `not json`, ``, `[]`, `{} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := DecodeRequest(line)
		if err != nil {
			return
		}
		data, err := EncodeRequest(&req)
		if err != nil {
			t.Fatalf("decoded %q to %+v, which does not encode: %v", line, req, err)
		}
		if bytes.IndexByte(data, '\n') != len(data)-1 {
			t.Fatalf("encoded %+v as %q: not one line", req, data)
		}
		again, err := DecodeRequest(data[:len(data)-1])
		if err != nil {
			t.Fatalf("%q does not decode again: %v", data, err)
		}
		// Values are compacted on the way out; compare them as JSON.
		req.Value, req.Args, again.Value, again.Args = compact(t, req.Value), compact(t, req.Args), compact(t, again.Value), compact(t, again.Args)
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("%q decoded to %+v, then to %+v", line, req, again)
		}
	})
}

func compact(t *testing.T, raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("value %q: %v", raw, err)
	}
	return buf.Bytes()
}
