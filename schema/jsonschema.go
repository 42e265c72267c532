package schema

import _ "embed"

// The JSON Schema documents are kept as strings so that no caller can change
// them: every accessor hands out a fresh copy. jsonschema_test.go checks them
// against the Go types field by field.
var (
	//go:embed jsonschema/job.schema.json
	jobSchema string
	//go:embed jsonschema/event.schema.json
	eventSchema string
)

// JobSchema returns the JSON Schema (draft 2020-12) document for Job, for
// clients that validate before they publish.
func JobSchema() []byte { return []byte(jobSchema) }

// EventSchema returns the JSON Schema (draft 2020-12) document for Event.
func EventSchema() []byte { return []byte(eventSchema) }
