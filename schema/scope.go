package schema

import (
	"fmt"
	"strings"
)

// Resource kinds a credential scope may name (docs/design.md §4).
const (
	ResourceDict     = "dict"
	ResourceQueue    = "queue"
	ResourceFunction = "function"
)

var scopeActions = map[string][]string{
	ResourceDict:     {"read", "write"},
	ResourceQueue:    {"put", "get"},
	ResourceFunction: {"call"},
}

// Scope is one parsed grant: kind:name:action.
type Scope struct {
	Kind   string
	Name   string
	Action string
}

func (s Scope) String() string { return s.Kind + ":" + s.Name + ":" + s.Action }

// ParseScope parses dict:<name>:read|write, queue:<name>:put|get or
// function:<name>:call.
func ParseScope(s string) (Scope, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Scope{}, fmt.Errorf("scope %q must be kind:name:action", clip(s))
	}
	sc := Scope{Kind: parts[0], Name: parts[1], Action: parts[2]}
	actions, ok := scopeActions[sc.Kind]
	if !ok {
		return Scope{}, fmt.Errorf("scope %q: kind must be dict, queue or function", clip(s))
	}
	if !ValidName(sc.Name) {
		return Scope{}, fmt.Errorf("scope %q: %q is not a valid name", clip(s), clip(sc.Name))
	}
	for _, a := range actions {
		if a == sc.Action {
			return sc, nil
		}
	}
	return Scope{}, fmt.Errorf("scope %q: action for %s must be one of %s", clip(s), sc.Kind, strings.Join(actions, ", "))
}
