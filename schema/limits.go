package schema

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on what one job may make brig carry, beyond the job's own fields
// (validate.go). Each has a row in the README's "Limits" table and in
// docs/design.md; exceeding one is the job's business, never brig's failure.
const (
	// MaxAuthErrorEvents is how many auth_error events one attempt of a job
	// publishes one by one; further denials are only counted, and one
	// summary auth_error event with the total (AuthErrorCount) follows
	// before the terminal event.
	MaxAuthErrorEvents = 100
	// MaxTerminalAuthErrors is how many denials a terminal event lists (the
	// first ones); AuthErrorCount carries the total.
	MaxTerminalAuthErrors = 10
	// MaxEgressDeniedEvents is how many egress_denied events one attempt
	// publishes one by one; further refusals are only counted, and one
	// summary egress_denied event with the total (EgressDeniedCount)
	// follows before the terminal event.
	MaxEgressDeniedEvents = 100
	// MaxTerminalEgressDenials is how many refusals a terminal event lists.
	MaxTerminalEgressDenials = 10
	// MaxEgressHostBytes bounds an egress_denied event's host.
	MaxEgressHostBytes = 255
	// MaxEventTextBytes bounds every free-text field of an event brig builds
	// (error messages, an auth error's resource, action and message,
	// output_error), measured before JSON encoding.
	MaxEventTextBytes = 1 << 10
	// MaxResultDepth is how deeply a result.json may nest its arrays and
	// objects for brig to carry it as the terminal event's output.
	MaxResultDepth = 64
	// MinServerPayload is the smallest max_payload of a NATS server brig
	// runs on: a terminal event at every bound fits in it (events.Fit).
	MinServerPayload = 1 << 20
)

// Clipped returns ae with each text field cut to MaxEventTextBytes.
func (ae AuthError) Clipped() AuthError {
	return AuthError{
		Resource: ClipText(ae.Resource, MaxEventTextBytes),
		Action:   ClipText(ae.Action, MaxEventTextBytes),
		Message:  ClipText(ae.Message, MaxEventTextBytes),
	}
}

// Clipped returns d with its host within MaxEgressHostBytes and its
// message within MaxEventTextBytes, control characters in the host (which
// the job chose) replaced: an event must not carry a job's terminal
// escapes or line breaks into a log.
func (d EgressDenial) Clipped() EgressDenial {
	d.Host = ClipText(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, d.Host), MaxEgressHostBytes)
	d.Message = ClipText(d.Message, MaxEventTextBytes)
	return d
}

// ClipText cuts s to at most n bytes on a character boundary, marking the
// cut with "...".
func ClipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && s[cut]&0xC0 == 0x80 { // inside a UTF-8 sequence
		cut--
	}
	return s[:cut] + "..."
}
