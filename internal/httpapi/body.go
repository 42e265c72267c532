package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"time"
)

// readBody reads a JSON request body of at most limit bytes within
// BodyTimeout: 415 for another content type (absent is JSON), 413 past
// the limit, 408 for a body that comes too slowly (and the connection is
// closed).
func (s *Server) readBody(c *call, limit int) ([]byte, *Problem) {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, problem(http.StatusUnsupportedMediaType, TypeUnsupportedMediaType,
				"Content-Type %q: send application/json", clipText(ct)).withField("Content-Type")
		}
	}
	if c.r.ContentLength > int64(limit) {
		c.w.Header().Set("Connection", "close")
		return nil, tooLarge(limit)
	}
	_ = c.rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	data, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, int64(limit)))
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		_ = c.rc.SetReadDeadline(time.Time{})
		return data, nil
	case errors.As(err, &mbe):
		return nil, tooLarge(limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline stays: the server reads what is left of the body
		// before it closes the connection, and must not wait for it.
		c.w.Header().Set("Connection", "close")
		return nil, problem(http.StatusRequestTimeout, TypeRequestTimeout,
			"the body did not arrive within %s", s.cfg.BodyTimeout)
	}
	c.w.Header().Set("Connection", "close")
	return nil, invalidRequest("(body)", "reading the body: %v", err)
}

func tooLarge(limit int) *Problem {
	return problem(http.StatusRequestEntityTooLarge, TypeTooLarge, "the body is over the %d-byte limit", limit).withField("(message)")
}

// parseWait reads ?wait: a Go duration (30s) or whole seconds, 0 < wait <=
// MaxWait; absent is 0.
func parseWait(r *http.Request) (time.Duration, *Problem) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, invalidRequest("wait", "wait=%q is neither a duration (30s) nor whole seconds", clipText(v))
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > MaxWait {
		return 0, invalidRequest("wait", "wait=%q must be over 0 and at most %s", clipText(v), MaxWait)
	}
	return d, nil
}

// withKey puts "key": value first in a JSON object that has no key, so
// that the strict decoder sees it (a job's id, a function's name, both
// optional in a request); anything else is left for the decoder to judge.
// value must need no escaping beyond quotes.
func withKey(data []byte, key, value string) []byte {
	var probe map[string]json.RawMessage
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) < 2 || trimmed[0] != '{' || json.Unmarshal(trimmed, &probe) != nil || probe[key] != nil {
		return data
	}
	rest := bytes.TrimSpace(trimmed[1:])
	out := []byte(`{` + strconv.Quote(key) + `:` + strconv.Quote(value))
	if rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}
