package schema

import (
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file is the contract between the JSON Schema documents and the Go
// types: adding a field on one side without the other fails here.

type jsonObject = map[string]any

func loadSchema(t *testing.T, doc []byte) jsonObject {
	t.Helper()
	var s jsonObject
	if err := json.Unmarshal(doc, &s); err != nil {
		t.Fatalf("schema is not valid JSON: %v", err)
	}
	if got := s["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf("$schema = %v, want draft 2020-12", got)
	}
	return s
}

// sub walks a schema by property names, "items" and "additionalProperties".
func sub(t *testing.T, s jsonObject, path ...string) jsonObject {
	t.Helper()
	for _, p := range path {
		switch p {
		case "items", "additionalProperties", "propertyNames":
			s, _ = s[p].(jsonObject)
		default:
			props, _ := s["properties"].(jsonObject)
			s, _ = props[p].(jsonObject)
		}
		if s == nil {
			t.Fatalf("schema has no %s", strings.Join(path, "."))
		}
	}
	return s
}

// jsonFieldsOf lists what encoding/json calls a struct's fields, flattening
// untagged embedded structs the way encoding/json does.
func jsonFieldsOf(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(t) {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || (f.Anonymous && tag == "") || tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		fields[tag] = f
	}
	return fields
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	timeType       = reflect.TypeFor[time.Time]()
)

// allowedTypes is the set of JSON Schema types a Go type may declare; nil
// means any JSON value.
func allowedTypes(t reflect.Type) []string {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	var types []string
	switch {
	case t == rawMessageType:
		return nil
	case t == timeType:
		types = []string{"string"}
	case t.Kind() == reflect.String:
		types = []string{"string"}
	case t.Kind() == reflect.Bool:
		types = []string{"boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		types = []string{"integer"}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		types = []string{"number"}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		types = []string{"string"} // base64
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		types = []string{"array"}
	case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		types = []string{"object"}
	default:
		types = []string{"(no JSON type for " + t.String() + ")"}
	}
	if nullable {
		types = append(types, "null")
	}
	return types
}

func schemaTypes(s jsonObject) []string {
	switch v := s["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			str, _ := x.(string)
			out = append(out, str)
		}
		return out
	}
	return nil
}

// schemaChecker compares one schema document with the Go types and records
// which struct it met at which path.
type schemaChecker struct {
	t       *testing.T
	visited map[string]reflect.Type
}

func (c *schemaChecker) checkValue(path string, s jsonObject, goType reflect.Type) {
	c.t.Helper()
	allowed := allowedTypes(goType)
	declared := schemaTypes(s)
	if allowed == nil {
		return // json.RawMessage: any JSON value, any schema
	}
	if len(declared) == 0 {
		c.t.Errorf("%s: schema declares no type; Go type %s needs one of %v", path, goType, allowed)
		return
	}
	for _, d := range declared {
		if !slices.Contains(allowed, d) {
			c.t.Errorf("%s: schema type %q does not fit Go type %s (allowed %v)", path, d, goType, allowed)
		}
	}
	for goType.Kind() == reflect.Pointer {
		goType = goType.Elem()
	}
	switch {
	case goType == timeType:
		if s["format"] != "date-time" {
			c.t.Errorf("%s: time.Time should have format date-time, got %v", path, s["format"])
		}
	case goType.Kind() == reflect.Struct:
		c.checkObject(path, s, goType)
	case goType.Kind() == reflect.Map:
		c.checkMap(path, s, goType)
	case goType.Kind() == reflect.Slice && goType.Elem().Kind() != reflect.Uint8:
		items, _ := s["items"].(jsonObject)
		if items == nil {
			c.t.Errorf("%s: array schema has no items", path)
			return
		}
		c.checkValue(path+"[]", items, goType.Elem())
	}
}

func (c *schemaChecker) checkMap(path string, s jsonObject, goType reflect.Type) {
	c.t.Helper()
	if goType.Key().Kind() != reflect.String {
		c.t.Errorf("%s: map key %s is not a string", path, goType.Key())
	}
	if _, hasProps := s["properties"]; hasProps {
		c.t.Errorf("%s: a Go map must not have fixed schema properties", path)
	}
	values, _ := s["additionalProperties"].(jsonObject)
	if values == nil {
		c.t.Errorf("%s: map schema needs additionalProperties describing its values", path)
		return
	}
	c.checkValue(path+"{}", values, goType.Elem())
}

func (c *schemaChecker) checkObject(path string, s jsonObject, goType reflect.Type) {
	c.t.Helper()
	c.visited[path] = goType
	if s["additionalProperties"] != false {
		c.t.Errorf("%s: additionalProperties = %v, want false", path, s["additionalProperties"])
	}
	props, _ := s["properties"].(jsonObject)
	fields := jsonFieldsOf(goType)
	goNames := slices.Sorted(maps.Keys(fields))
	schemaNames := slices.Sorted(maps.Keys(props))
	if !slices.Equal(goNames, schemaNames) {
		c.t.Errorf("%s: Go %s fields %v != schema properties %v", path, goType, goNames, schemaNames)
	}
	required, _ := s["required"].([]any)
	for _, r := range required {
		if _, ok := props[r.(string)]; !ok {
			c.t.Errorf("%s: required %q is not a property", path, r)
		}
	}
	for _, name := range goNames {
		if p, ok := props[name].(jsonObject); ok {
			c.checkValue(path+"."+name, p, fields[name].Type)
		}
	}
}

func TestSchemaMatchesGoTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		doc    []byte
		root   reflect.Type
		nested map[string]reflect.Type // path -> struct the schema must mirror
	}{
		{
			name: "job", doc: JobSchema(), root: reflect.TypeFor[Job](),
			nested: map[string]reflect.Type{
				"job":        reflect.TypeFor[Job](),
				"job.limits": reflect.TypeFor[Limits](),
			},
		},
		{
			name: "event", doc: EventSchema(), root: reflect.TypeFor[Event](),
			nested: map[string]reflect.Type{
				"event":               reflect.TypeFor[Event](),
				"event.auth_errors[]": reflect.TypeFor[AuthError](),
				"event.error":         reflect.TypeFor[ErrorInfo](),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &schemaChecker{t: t, visited: map[string]reflect.Type{}}
			c.checkValue(tt.name, loadSchema(t, tt.doc), tt.root)
			for path, want := range tt.nested {
				if got := c.visited[path]; got != want {
					t.Errorf("object %s checked against %v, want %v", path, got, want)
				}
			}
		})
	}
}

func TestSchemaRequired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    jsonObject
		want []string
	}{
		{"job", loadSchema(t, JobSchema()), []string{"function", "id"}},
		{"event", loadSchema(t, EventSchema()), []string{"attempt", "job_id", "seq", "time", "type"}},
		{"event.auth_errors[]", sub(t, loadSchema(t, EventSchema()), "auth_errors", "items"), []string{"action", "message", "resource"}},
		{"event.error", sub(t, loadSchema(t, EventSchema()), "error"), []string{"message", "type"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range tt.s["required"].([]any) {
			got = append(got, r.(string))
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: required = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func enumOf(t *testing.T, s jsonObject) []string {
	t.Helper()
	var out []string
	for _, v := range s["enum"].([]any) {
		out = append(out, v.(string))
	}
	slices.Sort(out)
	return out
}

// strs lists enumeration constants as the strings a schema's enum holds.
func strs[T ~string](vs ...T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func TestSchemaEnums(t *testing.T) {
	t.Parallel()
	job, event := loadSchema(t, JobSchema()), loadSchema(t, EventSchema())
	eventTypes := []EventType{EventAccepted, EventStarted, EventOutput, EventAuthError, EventEgressDenied, EventResult, EventTimeout, EventError, EventCancelled}
	var terminal []EventType
	for _, et := range eventTypes {
		if IsTerminal(et) {
			terminal = append(terminal, et)
		}
	}
	tests := []struct {
		name string
		s    jsonObject
		want []string
	}{
		{"job.runtime", sub(t, job, "runtime"), []string{RuntimeRunc, RuntimeRunsc}},
		{"event.type", sub(t, event, "type"), strs(eventTypes...)},
		{"event.stream", sub(t, event, "stream"), strs(StreamStdout, StreamStderr)},
		{"event.reason", sub(t, event, "reason"), strs(EgressNotAllowed, EgressIPLiteral, EgressMismatch, EgressNotPublic, EgressProtocol, EgressLimit)},
		{"event.sandbox", sub(t, event, "sandbox"), strs(SandboxCold, SandboxPrewarmed, SandboxReused)},
		{"event.status", sub(t, event, "status"), strs(StatusSucceeded, StatusFailed, StatusTimeout, StatusOOM, StatusCancelled, StatusRejected, StatusError)},
		{"event.error.type", sub(t, event, "error", "type"), strs(ErrAuthError, ErrTimeout, ErrOOM, ErrInvalidJob, ErrNotFound, ErrCancelled, ErrNonZeroExit, ErrInfrastructure, ErrQuotaExceeded, ErrEgressDenied)},
		{"event if terminal then status", sub(t, event["if"].(jsonObject), "type"), strs(terminal...)},
	}
	for _, tt := range tests {
		want := slices.Sorted(slices.Values(tt.want))
		if got := enumOf(t, tt.s); !slices.Equal(got, want) {
			t.Errorf("%s: enum = %v, want %v", tt.name, got, want)
		}
	}
	then, _ := event["then"].(jsonObject)
	if req, _ := then["required"].([]any); len(req) != 1 || req[0] != "status" {
		t.Errorf("terminal events must require status, then = %v", then)
	}
}

// bounds returns a numeric keyword found directly or in a non-const anyOf
// branch (the "0 means default, else min..max" form).
func bound(t *testing.T, s jsonObject, keyword string) float64 {
	t.Helper()
	if v, ok := s[keyword].(float64); ok {
		return v
	}
	anyOf, _ := s["anyOf"].([]any)
	for _, b := range anyOf {
		if v, ok := b.(jsonObject)[keyword].(float64); ok {
			return v
		}
	}
	t.Fatalf("no %s in %v", keyword, s)
	return 0
}

func TestSchemaBounds(t *testing.T) {
	t.Parallel()
	job, event := loadSchema(t, JobSchema()), loadSchema(t, EventSchema())
	tests := []struct {
		name    string
		s       jsonObject
		keyword string
		want    float64
	}{
		{"timeout", sub(t, job, "timeout"), "minimum", 0},
		{"timeout", sub(t, job, "timeout"), "maximum", MaxTimeoutMS},
		{"retries", sub(t, job, "retries"), "minimum", 0},
		{"retries", sub(t, job, "retries"), "maximum", MaxRetries},
		{"files", sub(t, job, "files"), "maxProperties", MaxFiles},
		{"files keys", sub(t, job, "files", "propertyNames"), "maxLength", MaxFilePathLen},
		{"env", sub(t, job, "env"), "maxProperties", MaxEnv},
		{"scopes", sub(t, job, "scopes"), "maxItems", MaxScopes},
		{"egress", sub(t, job, "egress"), "maxItems", MaxEgress},
		{"egress entries", sub(t, job, "egress", "items"), "minLength", 1},
		{"egress entries", sub(t, job, "egress", "items"), "maxLength", MaxEgressEntryLen},
		{"reply_to", sub(t, job, "reply_to"), "maxLength", MaxReplyToLen},
		{"limits.memory_mb", sub(t, job, "limits", "memory_mb"), "minimum", MinMemoryMB},
		{"limits.memory_mb", sub(t, job, "limits", "memory_mb"), "maximum", MaxMemoryMB},
		{"limits.cpus", sub(t, job, "limits", "cpus"), "minimum", 0.01},
		{"limits.cpus", sub(t, job, "limits", "cpus"), "maximum", MaxCPUs},
		{"limits.pids", sub(t, job, "limits", "pids"), "minimum", MinPids},
		{"limits.pids", sub(t, job, "limits", "pids"), "maximum", MaxPids},
		{"limits.output_bytes", sub(t, job, "limits", "output_bytes"), "maximum", MaxOutputBytes},
		{"event.seq", sub(t, event, "seq"), "minimum", 0},
	}
	for _, tt := range tests {
		if got := bound(t, tt.s, tt.keyword); got != tt.want {
			t.Errorf("%s: %s = %v, want %v", tt.name, tt.keyword, got, tt.want)
		}
	}
	// Go's limits accept 0 as "default"; so must the schema.
	for _, f := range []string{"memory_mb", "cpus", "pids"} {
		anyOf, _ := sub(t, job, "limits", f)["anyOf"].([]any)
		if len(anyOf) == 0 || anyOf[0].(jsonObject)["const"] != float64(0) {
			t.Errorf("limits.%s: want anyOf [{const 0}, {min..max}], got %v", f, anyOf)
		}
	}
}

// TestSchemaConditionals checks the rules that tie one field to another,
// as validate.go applies them: scopes need restricted false, a non-empty
// egress list needs network false and single_use true.
func TestSchemaConditionals(t *testing.T) {
	t.Parallel()
	job := loadSchema(t, JobSchema())
	allOf, _ := job["allOf"].([]any)
	tests := []struct {
		when  string         // the field whose minItems 1 is the condition
		fixed map[string]any // what the then branch fixes
	}{
		{"scopes", map[string]any{"restricted": false}},
		{"egress", map[string]any{"network": false, "single_use": true}},
	}
	if len(allOf) != len(tests) {
		t.Fatalf("allOf has %d rules, want %d", len(allOf), len(tests))
	}
	for i, tt := range tests {
		rule, _ := allOf[i].(jsonObject)
		cond, _ := rule["if"].(jsonObject)
		if req, _ := cond["required"].([]any); len(req) != 1 || req[0] != tt.when || sub(t, cond, tt.when)["minItems"] != float64(1) {
			t.Errorf("allOf[%d].if = %v, want %s required with minItems 1", i, cond, tt.when)
		}
		then, _ := rule["then"].(jsonObject)
		props, _ := then["properties"].(jsonObject)
		if len(props) != len(tt.fixed) {
			t.Errorf("allOf[%d].then = %v, want %v", i, then, tt.fixed)
		}
		for field, want := range tt.fixed {
			if got := sub(t, then, field)["const"]; got != want {
				t.Errorf("allOf[%d].then.%s const = %v, want %v", i, field, got, want)
			}
		}
	}
}

func TestSchemaPatternsAreGos(t *testing.T) {
	t.Parallel()
	job, event := loadSchema(t, JobSchema()), loadSchema(t, EventSchema())
	tests := []struct {
		name string
		s    jsonObject
		want *regexp.Regexp
	}{
		{"job.id", sub(t, job, "id"), idRe},
		{"job.function", sub(t, job, "function"), nameRe},
		{"job.env keys", sub(t, job, "env", "propertyNames"), envKeyRe},
		{"event.job_id", sub(t, event, "job_id"), jobKeyRe},
	}
	for _, tt := range tests {
		if got := tt.s["pattern"]; got != tt.want.String() {
			t.Errorf("%s: pattern = %v, want %s (validate.go)", tt.name, got, tt.want)
		}
	}
}

// schemaAccepts applies a string schema's pattern, not.pattern and
// maxLength the way a JSON Schema validator would. The patterns use only
// syntax that ECMA-262 and Go's regexp read alike.
func schemaAccepts(t *testing.T, s jsonObject, v string) bool {
	t.Helper()
	if max, ok := s["maxLength"].(float64); ok && float64(len([]rune(v))) > max {
		return false
	}
	if min, ok := s["minLength"].(float64); ok && float64(len([]rune(v))) < min {
		return false
	}
	if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(v) {
		return false
	}
	if not, ok := s["not"].(jsonObject); ok {
		if p, ok := not["pattern"].(string); ok && regexp.MustCompile(p).MatchString(v) {
			return false
		}
	}
	return true
}

// TestSchemaPatternsAgreeWithValidate checks the hand-written patterns
// against the Go validators on the same inputs.
func TestSchemaPatternsAgreeWithValidate(t *testing.T) {
	t.Parallel()
	job := loadSchema(t, JobSchema())
	long := strings.Repeat("a", 300)
	tests := []struct {
		name   string
		s      jsonObject
		goOK   func(string) bool
		inputs []string
	}{
		{
			name: "files keys", s: sub(t, job, "files", "propertyNames"),
			goOK: func(p string) bool { return validFilePath(p) == nil },
			inputs: []string{"main.py", "a/b/c.txt", ".hidden", "a/.b", "..a", "a/...", "output.txt", "outx/y", "x/out",
				"", ".", "..", "./a", "a/.", "a/./b", "../x", "a/../../x", "a/..", "/abs", "a//b", "a/", "//",
				"out", "out/result.json", "a\x00b", "a\nb", "a\u0085b", "a\x7fb", "é/ü", long[:255], long[:256]},
		},
		{
			name: "env keys", s: sub(t, job, "env", "propertyNames"),
			goOK: func(k string) bool {
				return (&Job{ID: "j", Function: "f", Env: map[string]string{k: ""}}).validateEnv() == nil
			},
			inputs: []string{"A", "_X", "PATH", "a_1", "BRIG", "BRIGX", "BRIG_X", "BRIG_", "1A", "A-B", "A B", "", "é", long[:128], long[:129]},
		},
		{
			name: "reply_to", s: sub(t, job, "reply_to"),
			goOK: func(s string) bool { return validSubject(s) == nil },
			inputs: []string{"_INBOX.abc", "a", "a.b.c", "brig.submit.python", "é.ü",
				"a..b", ".a", "a.", "a b", "a\tb", "a*", "a.*", "a.>", ">", "$JS.API.x", "a$", "a\x7f", long[:256], long[:257]},
		},
		{
			name: "scopes", s: sub(t, job, "scopes", "items"),
			goOK: func(s string) bool { _, err := ParseScope(s); return err == nil },
			inputs: []string{"dict:cache:read", "dict:cache:write", "queue:q_1:put", "queue:q-1:get", "function:resize:call", "dict:" + long[:64] + ":read",
				"", "dict", "dict:cache", "dict:cache:put", "queue:q:read", "function:f:read", "dict::read", "dict:-a:read",
				"dict:a.b:read", "DICT:a:read", "dict:a:READ", "dict:a:read:x", "dict:" + long[:65] + ":read", "dict:a:read\n"},
		},
	}
	for _, tt := range tests {
		for _, in := range tt.inputs {
			if got, want := schemaAccepts(t, tt.s, in), tt.goOK(in); got != want {
				t.Errorf("%s %q: schema accepts = %v, Go accepts = %v", tt.name, in, got, want)
			}
		}
	}
}

func TestSchemaAccessorsReturnCopies(t *testing.T) {
	t.Parallel()
	for name, get := range map[string]func() []byte{"job": JobSchema, "event": EventSchema} {
		b := get()
		want := string(b)
		clear(b)
		if got := string(get()); got != want {
			t.Errorf("%s: changing the returned slice changed the schema", name)
		}
	}
}
