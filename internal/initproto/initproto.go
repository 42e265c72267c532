// Package initproto is the wire between a worker and the init process it
// starts inside each sandbox container (brig's own static binary, run as
// `brig sandbox-init`).
//
// The worker writes one Request to the container's stdin: a 4-byte
// big-endian length and a JSON body. The init answers on the container's
// stdout with frames: a type byte, a 4-byte big-endian length and a payload.
// Output frames carry the job's stdout and stderr; one Exit frame ends the
// conversation. Only the init writes to the container's stdout (the job's
// own output goes through pipes the init reads), so the job cannot forge
// frames; the worker still treats every frame as hostile input.
package initproto

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Frame types.
const (
	FrameStdout byte = 1
	FrameStderr byte = 2
	FrameExit   byte = 3
)

// Ready is the one byte a prewarmed sandbox's init writes on its stdout,
// before any frame, once its warm-up is done or its zygote has imported
// its preload: the worker hands it no job before (docs/design.md §5).
const Ready byte = 'R'

// Size caps. An Exit frame holds at most MaxResultBytes of result (base64,
// 4/3 of that) and MaxErrorBytes per error string (at most 6 bytes each
// once JSON-escaped), so it always fits in MaxExitBytes (see EncodeExit).
const (
	MaxRequestBytes = 16 << 20
	MaxChunk        = 32 << 10
	MaxExitBytes    = 1 << 20
	// MaxResultBytes caps Request.ResultMaxBytes, and so Exit.Result.
	MaxResultBytes = 256 << 10
	// MaxErrorBytes caps Exit.ResultError and Exit.WipeError.
	MaxErrorBytes = 4 << 10
)

// Request tells the init what to run.
type Request struct {
	Command []string          `json:"command"`
	Env     []string          `json:"env"`
	Dir     string            `json:"dir"`
	Files   map[string]string `json:"files"`
	Stdin   string            `json:"stdin"`
	// OutputLimit caps the bytes forwarded per stream; the init forwards one
	// byte more so that the worker can tell truncation, then drains the rest.
	OutputLimit int64 `json:"output_limit"`
	// NProc, when set, is the job's RLIMIT_NPROC (its pids limit where the
	// runtime cannot count pids per container, as under gVisor).
	NProc int64 `json:"nproc,omitempty"`
	// Key authenticates the init's frames (see Framer).
	Key []byte `json:"key"`
	// ResultPath is read after the job's process ends and sent in Exit.
	ResultPath string `json:"result_path"`
	// ResultMaxBytes caps the result file; at most MaxResultBytes.
	ResultMaxBytes int64 `json:"result_max_bytes"`
	// Reuse asks the init to wipe the sandbox after the job (every process
	// killed; /work, /tmp, /dev/shm, /dev/mqueue and System V IPC emptied)
	// and to wait on stdin for the next request (reuse mode). Each request
	// brings its own Key.
	Reuse bool `json:"reuse,omitempty"`
	// GatewayPath is the host path of the job's gateway socket. The
	// gateway's ends of the job's connections show in the sandbox's
	// /proc/net/unix under it until the worker resets the gateway, after
	// the wipe; the wipe leaves those alone.
	GatewayPath string `json:"gateway_path,omitempty"`
	// Egress, when set, starts the egress relay (docs/design.md §12)
	// before the job: DNS on 0.0.0.0:53 (UDP, TCP) and TCP listeners on
	// every port in Ports and on wire.ProxyPort, each connection handed to
	// wire.SocketPath.
	Egress *EgressRelay `json:"egress,omitempty"`
}

// EgressRelay is what the init's egress relay listens on (docs/design.md
// §12.1): the ports the job's egress list allows. A job with one runs in a
// cold, single-use sandbox.
type EgressRelay struct {
	Ports []int `json:"ports"`
}

// Exit reports how the job's process ended.
type Exit struct {
	ExitCode int `json:"exit_code"`
	// Signal is the signal that killed the process, 0 if it exited.
	Signal int `json:"signal,omitempty"`
	// Result is the content of ResultPath as the job wrote it, surrounding
	// whitespace trimmed, at most MaxResultBytes. It travels as base64, so
	// that its bytes arrive unchanged whatever they are; the init has
	// checked it is JSON, and the reader must check again: the init runs
	// inside the sandbox.
	Result []byte `json:"result,omitempty"`
	// ResultError says why ResultPath could not be used.
	ResultError string `json:"result_error,omitempty"`
	DurationNS  int64  `json:"duration_ns"`
	// OOMKills is the cgroup's OOM-kill count when the init can read it.
	OOMKills int64 `json:"oom_kills,omitempty"`
	// Reusable: the init wiped the sandbox after this job and reads the
	// next request now. False when the request did not ask for reuse or
	// when anything of the job may have survived.
	Reusable bool `json:"reusable,omitempty"`
	// WipeError says why a reuse wipe failed.
	WipeError string `json:"wipe_error,omitempty"`
	// Zygote: the job was handed to the interpreter started before it
	// (docs/design.md §5.1), not run by a plain exec.
	Zygote bool `json:"zygote,omitempty"`
}

// ErrFrameTooLarge marks a frame over its size cap.
var ErrFrameTooLarge = errors.New("frame too large")

// EncodeExit encodes e for an Exit frame: without HTML escaping, with its
// error strings cut to MaxErrorBytes, and refusing a result over
// MaxResultBytes, so that the frame never exceeds MaxExitBytes.
func EncodeExit(e *Exit) ([]byte, error) {
	if len(e.Result) > MaxResultBytes {
		return nil, fmt.Errorf("exit result is %d bytes: %w", len(e.Result), ErrFrameTooLarge)
	}
	c := *e
	c.ResultError, c.WipeError = clipError(c.ResultError), clipError(c.WipeError)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("encode exit: %w", err)
	}
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(data) > MaxExitBytes { // unreachable by the caps above
		return nil, fmt.Errorf("exit is %d bytes: %w", len(data), ErrFrameTooLarge)
	}
	return data, nil
}

// clipError cuts s to at most MaxErrorBytes, on a character boundary.
func clipError(s string) string {
	if len(s) <= MaxErrorBytes {
		return s
	}
	const mark = " [cut]"
	s = s[:MaxErrorBytes-len(mark)]
	for i := len(s) - 1; i >= max(0, len(s)-utf8.UTFMax); i-- {
		if utf8.RuneStart(s[i]) {
			if !utf8.FullRuneInString(s[i:]) {
				s = s[:i] // a character the cut split
			}
			break
		}
	}
	return s + mark
}

// validate checks what both sides rely on: a command to run, and a result
// cap that keeps the Exit frame within MaxExitBytes.
func (r *Request) validate() error {
	if len(r.Command) == 0 {
		return errors.New("init request has no command")
	}
	if r.ResultMaxBytes < 0 || r.ResultMaxBytes > MaxResultBytes {
		return fmt.Errorf("init request's result_max_bytes %d is outside [0, %d]", r.ResultMaxBytes, MaxResultBytes)
	}
	return nil
}

// WriteRequest writes a length-prefixed request.
func WriteRequest(w io.Writer, req *Request) error {
	if err := req.validate(); err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode init request: %w", err)
	}
	if len(body) > MaxRequestBytes {
		return fmt.Errorf("init request is %d bytes: %w", len(body), ErrFrameTooLarge)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := w.Write(append(hdr[:], body...)); err != nil {
		return fmt.Errorf("write init request: %w", err)
	}
	return nil
}

// ReadRequest reads a length-prefixed request.
func ReadRequest(r io.Reader) (*Request, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read init request length: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxRequestBytes {
		return nil, fmt.Errorf("init request is %d bytes: %w", n, ErrFrameTooLarge)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read init request: %w", err)
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("decode init request: %w", err)
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	return &req, nil
}

// MACSize is the length of the tag that ends every frame.
const MACSize = 16

// ErrBadMAC marks a frame that the init did not write: something in the
// sandbox wrote to the stream (possible where the sandbox cannot keep the
// job out of the init's file descriptors, as under gVisor).
var ErrBadMAC = errors.New("frame failed authentication")

// NewKey returns a fresh per-job frame key.
func NewKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

// Framer writes or reads one direction of frames. Every frame carries a
// truncated HMAC-SHA256 over its sequence number, type and payload, keyed
// by the per-job key the worker sends in the Request; the job never sees
// the key, so it can neither forge nor replay nor reorder frames.
type Framer struct {
	key []byte
	seq uint64
}

// NewFramer returns a framer for key; use one for writing and another for
// reading.
func NewFramer(key []byte) *Framer { return &Framer{key: key} }

func (f *Framer) tag(typ byte, payload []byte) []byte {
	m := hmac.New(sha256.New, f.key)
	var hdr [9]byte
	binary.BigEndian.PutUint64(hdr[:8], f.seq)
	hdr[8] = typ
	m.Write(hdr[:])
	m.Write(payload)
	f.seq++
	return m.Sum(nil)[:MACSize]
}

// WriteFrame writes one frame.
func (f *Framer) WriteFrame(w io.Writer, typ byte, payload []byte) error {
	buf := make([]byte, 5, 5+len(payload)+MACSize)
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	buf = append(buf, payload...)
	buf = append(buf, f.tag(typ, payload)...)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame, refusing unknown types, oversize payloads and
// frames whose tag does not check out.
func (f *Framer) ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	limit := uint32(MaxChunk)
	switch hdr[0] {
	case FrameStdout, FrameStderr:
	case FrameExit:
		limit = MaxExitBytes
	default:
		return 0, nil, fmt.Errorf("unknown frame type %d: %w", hdr[0], ErrBadMAC)
	}
	if n > limit {
		return 0, nil, fmt.Errorf("frame of type %d is %d bytes: %w", hdr[0], n, ErrFrameTooLarge)
	}
	body := make([]byte, int(n)+MACSize)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("read frame: %w", err)
	}
	payload, tag := body[:n], body[n:]
	if !hmac.Equal(tag, f.tag(hdr[0], payload)) {
		return 0, nil, ErrBadMAC
	}
	return hdr[0], payload, nil
}
