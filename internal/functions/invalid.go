package functions

import (
	"errors"
	"fmt"
)

// ErrInvalidStored is matched (errors.Is) by the error for a stored
// definition that brig cannot use. Unlike a failure to reach the bucket,
// it is permanent: every read gives the same answer until the definition
// is deployed again (docs/design.md §3).
var ErrInvalidStored = errors.New("stored function definition is invalid")

// InvalidStoredError is a value in the bucket that is not a definition Put
// would have stored: it does not decode strictly, fails validation, or
// names another function than its key. Only a writer that bypassed Put
// leaves one: a hand-made `nats kv put`, or a brig whose schema differs.
// It matches ErrInvalidStored and unwraps to the reason, a
// *schema.FieldError naming the field.
type InvalidStoredError struct {
	// Name is the key: the function's name, or <tenant>.<name> for a
	// tenant's own (Key).
	Name string
	// Revision is the revision of the key that is invalid.
	Revision uint64
	// Err says what is wrong.
	Err error
}

func (e *InvalidStoredError) Error() string {
	return fmt.Sprintf("function %q: its stored definition (%s revision %d) is invalid: %v", e.Name, Bucket, e.Revision, e.Err)
}

func (e *InvalidStoredError) Unwrap() error { return e.Err }

// Is makes the error match ErrInvalidStored.
func (e *InvalidStoredError) Is(target error) bool { return target == ErrInvalidStored }
