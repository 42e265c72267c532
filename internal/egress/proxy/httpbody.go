package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxChunkLine bounds a chunk-size line or a trailer field of a chunked
// request body.
const maxChunkLine = 4 << 10

// framing is how a request's body ends (RFC 9112 §6.3): after length
// bytes, or after its last chunk. A request with neither header has no
// body.
type framing struct {
	chunked bool
	length  int64
}

// errFraming is a body the proxy cannot walk to the next request head.
var errFraming = errors.New("HTTP request body")

// framingField names the fields whose '_' spellings bodyFraming refuses.
var framingField = map[string]bool{"content-length": true, "transfer-encoding": true, "upgrade": true, "connection": true}

// bodyFraming reads, from a head sniff.ReadHTTPRequestHead accepted (so
// CRLF lines, no obs-fold, no Content-Length beside Transfer-Encoding,
// Content-Lengths that agree), what sniff does not keep: an Upgrade, and
// the body's framing. Any Transfer-Encoding but a lone "chunked" is
// refused: the proxy could not find where the body ends.
func bodyFraming(raw []byte) (framing, error) {
	lines := strings.Split(string(raw), "\r\n")
	var f framing
	encodings := 0
	for _, line := range lines[1:] {
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.Trim(value, " \t")
		name = strings.ToLower(name)
		if alias := strings.ReplaceAll(name, "_", "-"); alias != name && framingField[alias] {
			// Some servers (CGI-style header maps) read '_' as '-': they
			// would find a Host or a body length the proxy did not.
			return framing{}, fmt.Errorf("%w: header %q reads as %s to some servers", errFraming, name, alias)
		}
		switch name {
		case "upgrade":
			return framing{}, fmt.Errorf("%w: Upgrade %q is not relayed", errFraming, value)
		case "transfer-encoding":
			encodings++
			if encodings > 1 || !strings.EqualFold(value, "chunked") {
				return framing{}, fmt.Errorf("%w: Transfer-Encoding other than one chunked", errFraming)
			}
			f.chunked = true
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return framing{}, fmt.Errorf("%w: Content-Length %q", errFraming, value)
			}
			f.length = n
		}
	}
	return f, nil
}

// copyBody copies one request body framed by f from r to w, unchanged.
func copyBody(w io.Writer, r *bufio.Reader, f framing) error {
	if !f.chunked {
		_, err := io.CopyN(w, r, f.length)
		return err
	}
	for {
		line, err := copyLine(w, r)
		if err != nil {
			return err
		}
		size, err := chunkSize(line)
		if err != nil {
			return err
		}
		if size == 0 {
			return copyTrailers(w, r)
		}
		if _, err := io.CopyN(w, r, size); err != nil {
			return err
		}
		crlf, err := chunkLine(r)
		if err != nil {
			return err
		}
		if crlf != "\r\n" {
			return fmt.Errorf("%w: chunk data longer than its size", errFraming)
		}
		if _, err := io.WriteString(w, crlf); err != nil {
			return err
		}
	}
}

// copyTrailers copies a chunked body's trailer fields and its final
// empty line.
func copyTrailers(w io.Writer, r *bufio.Reader) error {
	for {
		line, err := copyLine(w, r)
		if err != nil {
			return err
		}
		if line == "\r\n" {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' || !strings.Contains(line, ":") {
			return fmt.Errorf("%w: malformed trailer field", errFraming)
		}
	}
}

// copyLine reads one line with chunkLine and copies it to w.
func copyLine(w io.Writer, r *bufio.Reader) (string, error) {
	line, err := chunkLine(r)
	if err != nil {
		return "", err
	}
	_, err = io.WriteString(w, line)
	return line, err
}

// chunkLine reads one line, CRLF included, of at most maxChunkLine bytes;
// a bare LF or CR, or a control byte, is refused (two parsers could
// disagree on it).
func chunkLine(r *bufio.Reader) (string, error) {
	var b []byte
	for len(b) < maxChunkLine {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		b = append(b, c)
		n := len(b)
		switch {
		case c == '\n' && n >= 2 && b[n-2] == '\r':
			return string(b), nil
		case c == '\n' || n >= 2 && b[n-2] == '\r':
			return "", fmt.Errorf("%w: bare CR or LF in chunk framing", errFraming)
		case c < ' ' && c != '\t' && c != '\r' || c == 0x7f:
			return "", fmt.Errorf("%w: control byte in chunk framing", errFraming)
		}
	}
	return "", fmt.Errorf("%w: chunk line longer than %d bytes", errFraming, maxChunkLine)
}

// chunkSize parses a chunk-size line: hex digits, then optional
// extensions after ';'.
func chunkSize(line string) (int64, error) {
	hex, _, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), ";")
	if hex == "" || len(hex) > 15 || strings.Trim(hex, "0123456789abcdefABCDEF") != "" {
		return 0, fmt.Errorf("%w: chunk size %q", errFraming, hex)
	}
	return strconv.ParseInt(hex, 16, 64)
}
