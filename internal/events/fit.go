package events

import (
	"fmt"
	"unicode/utf8"

	"github.com/brig-dev/brig/schema"
)

// Fit encodes a terminal event in at most limit bytes, by construction
// (docs/design.md §13): every text field is clipped, the denial lists cut to
// their first schema.MaxTerminalAuthErrors and
// schema.MaxTerminalEgressDenials, and stdout and stderr share what
// is left, each cut on a character boundary and flagged as truncated. Only
// when limit leaves no room for the job's output (a server whose
// max_payload is under schema.MinServerPayload) is the output dropped, and
// output_error says so. It changes ev to what was encoded.
func Fit(ev *schema.Event, limit int) ([]byte, error) {
	clipFields(ev)
	stdout, stderr := ev.Stdout, ev.Stderr
	ev.Stdout, ev.Stderr = "", ""
	fixed, err := schema.MarshalEvent(ev)
	if err != nil {
		return nil, err
	}
	// Room for the two keys, quotes and truncation flags.
	const streamKeys = len(`,"stdout":"","stderr":"","stdout_truncated":true,"stderr_truncated":true`)
	if len(fixed)+streamKeys > limit && len(ev.Output) > 0 {
		ev.OutputError = fmt.Sprintf("%s of %d bytes did not fit in the server's max_payload of %d bytes",
			schema.ResultFile, len(ev.Output), limit)
		ev.Output = nil
		if fixed, err = schema.MarshalEvent(ev); err != nil {
			return nil, err
		}
	}
	room := limit - len(fixed) - streamKeys
	if room < 0 {
		return nil, fmt.Errorf("%s event of job %s is %d bytes without its output, over the limit of %d", ev.Type, ev.JobID, len(fixed), limit)
	}
	outCost, errCost := escapedLen(stdout), escapedLen(stderr)
	outRoom := room / 2
	switch {
	case outCost+errCost <= room:
		outRoom = outCost
	case outCost < outRoom:
		outRoom = outCost
	case errCost < room-outRoom:
		outRoom = room - errCost
	}
	var cut bool
	ev.Stdout, cut = prefixWithin(stdout, outRoom)
	ev.StdoutTruncated = ev.StdoutTruncated || cut
	ev.Stderr, cut = prefixWithin(stderr, room-escapedLen(ev.Stdout))
	ev.StderrTruncated = ev.StderrTruncated || cut
	data, err := schema.MarshalEvent(ev)
	if err != nil {
		return nil, err
	}
	if len(data) > limit { // escapedLen is exact: cannot happen
		return nil, fmt.Errorf("%s event of job %s encoded to %d bytes, over the limit of %d", ev.Type, ev.JobID, len(data), limit)
	}
	return data, nil
}

// clipFields bounds every text field and list of an event that brig (not
// the job's output) fills.
func clipFields(ev *schema.Event) {
	ev.Message = schema.ClipText(ev.Message, schema.MaxEventTextBytes)
	ev.OutputError = schema.ClipText(ev.OutputError, schema.MaxEventTextBytes)
	if ev.Error != nil {
		e := *ev.Error
		e.Message = schema.ClipText(e.Message, schema.MaxEventTextBytes)
		ev.Error = &e
	}
	ev.AuthErrors = clipList(ev.AuthErrors, schema.MaxTerminalAuthErrors)
	ev.EgressDenials = clipList(ev.EgressDenials, schema.MaxTerminalEgressDenials)
	ev.Host = schema.EgressDenial{Host: ev.Host}.Clipped().Host
}

// clipList keeps the first max entries of list, each clipped; nil stays
// nil.
func clipList[T interface{ Clipped() T }](list []T, max int) []T {
	if list == nil {
		return nil
	}
	clipped := make([]T, min(len(list), max))
	for i := range clipped {
		clipped[i] = list[i].Clipped()
	}
	return clipped
}

// runeCost is the JSON-encoded size of the rune r, which takes size bytes
// in s, as schema.Marshal encodes it (no HTML escaping; TestFitKeepsWhatFits
// checks it against the encoder).
func runeCost(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return 6 // invalid byte: \ufffd
	case r == '"', r == '\\', r == '\b', r == '\f', r == '\n', r == '\r', r == '\t':
		return 2
	case r < 0x20, r == '\u2028', r == '\u2029':
		return 6
	}
	return size
}

// escapedLen is the encoded length of s, without its quotes.
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += runeCost(r, size)
		i += size
	}
	return n
}

// prefixWithin returns the longest prefix of s, ending on a character
// boundary, whose encoding takes at most room bytes, and whether it is
// shorter than s.
func prefixWithin(s string, room int) (string, bool) {
	used := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		c := runeCost(r, size)
		if used+c > room {
			return s[:i], true
		}
		used += c
		i += size
	}
	return s, false
}
