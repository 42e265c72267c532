package functions_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/functions"
	"github.com/brig-dev/brig/schema"
)

const graderYAML = `name: grader
image: brig/python:latest
command: ["python3", "/work/main.py"]
env:
  LANG: C.UTF-8
limits:
  memory_mb: 128
timeout_ms: 10000
scopes:
  - dict:grades:write
  - function:python:call
network: false
`

func TestParseYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		yaml  string
		names []string
	}{
		{"single document", graderYAML, []string{"grader"}},
		{"list", `
- name: a
  image: img
  command: [x]
- name: b
  image: img
  command: [x]
  restricted: false
`, []string{"a", "b"}},
		{"multiple documents", `---
name: a
image: img
command: [x]
---
# an empty document is skipped
---
name: b
image: img
command: [x]
...
`, []string{"a", "b"}},
		{"documents of lists", `
name: a
image: img
command: [x]
---
- {name: b, image: img, command: [x]}
- {name: c, image: img, command: [x], pool: gpu}
`, []string{"a", "b", "c"}},
		{"anchors", `
- name: a
  image: img
  command: &cmd [python3, /work/main.py]
  env: &env {LANG: C.UTF-8}
- name: b
  image: img
  command: *cmd
  env: *env
`, []string{"a", "b"}},
		{"quoted strings that look like other types", `
name: "123"
image: img
command: ["true", "1"]
env: {DEBUG: "yes", N: "5"}
`, []string{"123"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fns, err := functions.ParseYAML([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, fn := range fns {
				names = append(names, fn.Name)
			}
			if !reflect.DeepEqual(names, tt.names) {
				t.Errorf("names = %v, want %v", names, tt.names)
			}
		})
	}
}

func TestParseYAMLFields(t *testing.T) {
	t.Parallel()
	fns, err := functions.ParseYAML([]byte(graderYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := grader()
	if len(fns) != 1 || !reflect.DeepEqual(fns[0], want) {
		t.Errorf("ParseYAML = %+v, want %+v", fns, want)
	}
}

// TestParseYAMLQuotas: a function's quotas are read as written; the ones
// left out stay zero (the defaults are filled in per job).
func TestParseYAMLQuotas(t *testing.T) {
	t.Parallel()
	fns, err := functions.ParseYAML([]byte(`name: small
image: img
command: [x]
quotas:
  dict_mb: 1
  queue_messages: 500
  resources: 2
  calls: 4
`))
	if err != nil {
		t.Fatal(err)
	}
	want := schema.Quotas{DictMB: 1, QueueMessages: 500, Resources: 2, Calls: 4}
	if len(fns) != 1 || fns[0].Quotas != want {
		t.Fatalf("quotas = %+v, want %+v", fns[0].Quotas, want)
	}
}

// TestParseYAMLEgress: brig deploy's YAML takes egress, and its entries
// are checked as the JSON's are.
func TestParseYAMLEgress(t *testing.T) {
	t.Parallel()
	fns, err := functions.ParseYAML([]byte(`name: fetcher
image: img
command: [x]
egress:
  - api.example.com
  - "*.example.org:8443"
  - 198.51.100.0/24
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"api.example.com", "*.example.org:8443", "198.51.100.0/24"}
	if len(fns) != 1 || !reflect.DeepEqual(fns[0].Egress, want) {
		t.Fatalf("egress = %q, want %q", fns[0].Egress, want)
	}
}

func TestParseYAMLErrors(t *testing.T) {
	t.Parallel()
	ok := "- {name: ok, image: img, command: [x]}\n"
	tests := []struct {
		name  string
		yaml  string
		index int    // -1: not about one definition
		field string // the *schema.FieldError's field, if any
		want  string // in the message
	}{
		{"unknown nested key", ok + "- {name: grader, image: img, command: [x], limits: {memry_mb: 1}}",
			1, "limits.memry_mb", `functions[1].limits.memry_mb (function "grader"): is not a known field`},
		{"unknown top key", "name: a\nimage: img\ncommand: [x]\nimages: y\n",
			0, "images", `functions[0].images (function "a"): is not a known field`},
		{"key in the wrong case", "name: a\nImage: img\ncommand: [x]\n", 0, "Image", "functions[0].Image"},
		{"wrong type", "name: a\nimage: img\ncommand: [x]\ntimeout_ms: ten\n",
			0, "timeout_ms", "functions[0].timeout_ms (function \"a\"): must be an integer"},
		{"command not a list", "name: a\nimage: img\ncommand: python3 main.py\n", 0, "command", "must be an array"},
		{"unquoted yes in env", "name: a\nimage: img\ncommand: [x]\nenv: {DEBUG: yes}\n", 0, "env", "must be a string"},
		{"bad scope", ok + "---\nname: s\nimage: img\ncommand: [x]\nscopes: [dict:cache:read, dict:cache:put]\n",
			1, "scopes[1]", `functions[1].scopes[1] (function "s")`},
		{"invalid name", "name: my.func\nimage: img\ncommand: [x]\n", 0, "name", `functions[0].name: must be`},
		{"missing name", "image: img\ncommand: [x]\n", 0, "name", "functions[0].name: "},
		{"missing image", "name: a\ncommand: [x]\n", 0, "image", "functions[0].image (function \"a\"): is empty"},
		{"unknown quota", "name: a\nimage: img\ncommand: [x]\nquotas: {dict_gb: 1}\n",
			0, "quotas.dict_gb", `functions[0].quotas.dict_gb (function "a"): is not a known field`},
		{"quota too large", "name: a\nimage: img\ncommand: [x]\nquotas: {queue_mb: 5000}\n",
			0, "quotas.queue_mb", `functions[0].quotas.queue_mb (function "a"): must be between 1 and 1024`},
		{"bad runtime", "name: a\nimage: img\ncommand: [x]\nruntime: kata\n", 0, "runtime", "runtime"},
		{"bad egress entry", "name: a\nimage: img\ncommand: [x]\negress: [api.example.com, localhost]\n",
			0, "egress[1]", `functions[0].egress[1] (function "a"): "localhost": a single-label name`},
		{"egress with network", "name: a\nimage: img\ncommand: [x]\nnetwork: true\negress: [api.example.com]\n",
			0, "egress", "must be empty with network: true"},
		{"egress not a list", "name: a\nimage: img\ncommand: [x]\negress: api.example.com\n", 0, "egress", "must be an array"},
		{"duplicate names", ok + ok, 1, "name", `already defined by functions[0]`},
		{"list element not a mapping", "- just a string\n", 0, "", "functions[0]: must be a mapping"},

		{"duplicate key", "name: a\nname: b\nimage: img\ncommand: [x]\n", -1, "", "already set"},
		{"merge key overriding a field", "- &a {name: a, image: img, command: [x]}\n- {<<: *a, name: b}\n", -1, "", "already set"},
		{"syntax error", "name: [a\n", -1, "", "invalid YAML"},
		{"scalar document", "hello\n", -1, "", "document 1: must be a function definition"},
		{"empty", "# nothing here\n", -1, "", "no function definitions"},
		{"only separators", "---\n---\n", -1, "", "no function definitions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fns, err := functions.ParseYAML([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseYAML = %+v, want an error", fns)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var de *functions.DefinitionError
			if tt.index < 0 {
				if errors.As(err, &de) {
					t.Errorf("error %q is a DefinitionError, want a file-level error", err)
				}
				return
			}
			if !errors.As(err, &de) || de.Index != tt.index {
				t.Fatalf("error %q: want a DefinitionError for functions[%d]", err, tt.index)
			}
			var fe *schema.FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Errorf("error %q: want a FieldError for %s", err, tt.field)
			}
		})
	}
}

func TestParseYAMLTooLarge(t *testing.T) {
	t.Parallel()
	data := []byte(graderYAML + "# " + strings.Repeat("x", functions.MaxYAMLBytes))
	if _, err := functions.ParseYAML(data); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("err = %v, want a size error", err)
	}
}

func FuzzParseYAML(f *testing.F) {
	f.Add([]byte(graderYAML))
	f.Add([]byte("- {name: a, image: img, command: [x]}\n---\nname: b\nimage: img\ncommand: [x]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("---\n- 1\n- [x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fns, err := functions.ParseYAML(data)
		if err != nil {
			return
		}
		for i := range fns {
			if err := fns[i].Validate(); err != nil {
				t.Fatalf("ParseYAML accepted an invalid function: %v", err)
			}
		}
	})
}
