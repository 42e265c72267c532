package initproto_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/initproto"
)

// lengthPrefixed is a request body behind its 4-byte big-endian length.
func lengthPrefixed(n uint32, body string) []byte {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], n)
	return append(hdr[:], body...)
}

// frame is a raw frame header with the given type and length, then payload.
func frame(typ byte, n uint32, payload []byte) []byte {
	buf := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(buf[1:], n)
	return append(buf, payload...)
}

// noBigReads fails a read into a buffer larger than max: a reader that
// trusted a hostile length would ask for that much.
type noBigReads struct {
	t   *testing.T
	r   io.Reader
	max int
}

func (n *noBigReads) Read(p []byte) (int, error) {
	if len(p) > n.max {
		n.t.Errorf("read into a %d-byte buffer; want at most %d", len(p), n.max)
	}
	return n.r.Read(p)
}

func TestRequestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  initproto.Request
	}{
		{"minimal", initproto.Request{Command: []string{"true"}}},
		{"full", initproto.Request{
			Command:        []string{"python3", "/work/main.py", "arg with space"},
			Env:            []string{"A=1", "B=two=2"},
			Dir:            "/work",
			Files:          map[string]string{"main.py": "print('hi')\n", "lib/a.txt": "\x00é"},
			Stdin:          "line1\nline2\n",
			OutputLimit:    256 << 10,
			ResultPath:     "/work/out/result.json",
			ResultMaxBytes: 1 << 18,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := initproto.WriteRequest(&buf, &tt.req); err != nil {
				t.Fatalf("WriteRequest: %v", err)
			}
			if got := binary.BigEndian.Uint32(buf.Bytes()[:4]); int(got) != buf.Len()-4 {
				t.Fatalf("length prefix %d, body is %d bytes", got, buf.Len()-4)
			}
			got, err := initproto.ReadRequest(&buf)
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.req) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, tt.req)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes left unread", buf.Len())
			}
		})
	}
}

func TestWriteRequestTooLarge(t *testing.T) {
	t.Parallel()
	req := &initproto.Request{Command: []string{"true"}, Stdin: strings.Repeat("x", initproto.MaxRequestBytes)}
	var buf bytes.Buffer
	err := initproto.WriteRequest(&buf, req)
	if !errors.Is(err, initproto.ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes of a refused request", buf.Len())
	}
}

func TestReadRequestRejects(t *testing.T) {
	t.Parallel()
	valid := `{"command":["true"]}`
	tests := []struct {
		name    string
		in      []byte
		wantIs  error
		wantMsg string
	}{
		{"empty input", nil, io.EOF, ""},
		{"short length", []byte{0, 0}, io.ErrUnexpectedEOF, ""},
		{"over MaxRequestBytes", lengthPrefixed(initproto.MaxRequestBytes+1, ""), initproto.ErrFrameTooLarge, ""},
		{"max uint32 length", lengthPrefixed(^uint32(0), valid), initproto.ErrFrameTooLarge, ""},
		{"truncated body", lengthPrefixed(uint32(len(valid)), valid[:len(valid)-3]), io.ErrUnexpectedEOF, ""},
		{"length but no body", lengthPrefixed(10, ""), io.EOF, ""},
		{"not JSON", lengthPrefixed(3, "abc"), nil, "decode init request"},
		{"empty command", lengthPrefixed(14, `{"command":[]}`), nil, "no command"},
		{"null command", lengthPrefixed(16, `{"command":null}`), nil, "no command"},
		{"missing command", lengthPrefixed(2, `{}`), nil, "no command"},
		{"zero length", lengthPrefixed(0, ""), nil, "decode init request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &noBigReads{t: t, r: bytes.NewReader(tt.in), max: 1 << 10}
			req, err := initproto.ReadRequest(r)
			if err == nil {
				t.Fatalf("ReadRequest = %+v, want an error", req)
			}
			if req != nil {
				t.Errorf("ReadRequest returned %+v with error %v", req, err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

// TestReadRequestOversizeNoAllocation checks that a hostile length is
// refused before its buffer is made. Not parallel: it measures the heap.
func TestReadRequestOversizeNoAllocation(t *testing.T) {
	in := lengthPrefixed(^uint32(0), "")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := initproto.ReadRequest(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, initproto.ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("ReadRequest of a 4 GiB length allocated %d bytes", grew)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	exit, err := initproto.EncodeExit(&initproto.Exit{ExitCode: 3, Signal: 9, Result: []byte(`{"a":1}`), DurationNS: 42})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		typ     byte
		payload []byte
	}{
		{"stdout", initproto.FrameStdout, []byte("hello\n")},
		{"stdout empty", initproto.FrameStdout, []byte{}},
		{"stdout at MaxChunk", initproto.FrameStdout, bytes.Repeat([]byte{'o'}, initproto.MaxChunk)},
		{"stderr", initproto.FrameStderr, []byte("oops\x00\xff")},
		{"stderr at MaxChunk", initproto.FrameStderr, bytes.Repeat([]byte{'e'}, initproto.MaxChunk)},
		{"exit", initproto.FrameExit, exit},
		{"exit at MaxExitBytes", initproto.FrameExit, bytes.Repeat([]byte{' '}, initproto.MaxExitBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wf, rf := framers()
			var buf bytes.Buffer
			if err := wf.WriteFrame(&buf, tt.typ, tt.payload); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			// A second frame behind it must stay readable.
			if err := wf.WriteFrame(&buf, initproto.FrameStdout, []byte("next")); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			typ, payload, err := rf.ReadFrame(&buf)
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if typ != tt.typ || !bytes.Equal(payload, tt.payload) {
				t.Errorf("ReadFrame = (%d, %d bytes), want (%d, %d bytes)", typ, len(payload), tt.typ, len(tt.payload))
			}
			typ, payload, err = rf.ReadFrame(&buf)
			if err != nil || typ != initproto.FrameStdout || string(payload) != "next" {
				t.Errorf("second frame = (%d, %q, %v)", typ, payload, err)
			}
			if _, _, err := rf.ReadFrame(&buf); !errors.Is(err, io.EOF) {
				t.Errorf("after the last frame err = %v, want io.EOF", err)
			}
		})
	}
}

func TestReadFrameRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		wantIs  error
		wantMsg string
	}{
		{"type 0", frame(0, 0, nil), nil, "unknown frame type 0"},
		{"type 4", frame(4, 1, []byte("x")), nil, "unknown frame type 4"},
		{"type 255", frame(255, 0, nil), nil, "unknown frame type 255"},
		{"stdout over MaxChunk", frame(initproto.FrameStdout, initproto.MaxChunk+1, nil), initproto.ErrFrameTooLarge, ""},
		{"stderr over MaxChunk", frame(initproto.FrameStderr, initproto.MaxChunk+1, nil), initproto.ErrFrameTooLarge, ""},
		{"stdout max uint32", frame(initproto.FrameStdout, ^uint32(0), nil), initproto.ErrFrameTooLarge, ""},
		{"exit over MaxExitBytes", frame(initproto.FrameExit, initproto.MaxExitBytes+1, nil), initproto.ErrFrameTooLarge, ""},
		{"exit max uint32", frame(initproto.FrameExit, ^uint32(0), nil), initproto.ErrFrameTooLarge, ""},
		{"truncated payload", frame(initproto.FrameStdout, 10, []byte("abc")), io.ErrUnexpectedEOF, "read frame"},
		{"header only", frame(initproto.FrameExit, 2, nil), io.EOF, "read frame"},
		{"truncated header", []byte{initproto.FrameStdout, 0, 0}, io.ErrUnexpectedEOF, ""},
		{"empty", nil, io.EOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &noBigReads{t: t, r: bytes.NewReader(tt.in), max: 1 << 10}
			typ, payload, err := initproto.NewFramer(testKey).ReadFrame(r)
			if err == nil {
				t.Fatalf("ReadFrame = (%d, %q), want an error", typ, payload)
			}
			if payload != nil {
				t.Errorf("ReadFrame returned a %d-byte payload with error %v", len(payload), err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	wf, _ := framers()
	var ok bytes.Buffer
	_ = wf.WriteFrame(&ok, initproto.FrameStdout, []byte("out"))
	_ = wf.WriteFrame(&ok, initproto.FrameStderr, []byte("err"))
	_ = wf.WriteFrame(&ok, initproto.FrameExit, []byte(`{"exit_code":0,"duration_ns":1}`))
	f.Add(ok.Bytes())
	f.Add([]byte{})
	f.Add([]byte{initproto.FrameStdout})
	f.Add(frame(initproto.FrameStdout, 10, []byte("abc")))
	f.Add(frame(initproto.FrameExit, initproto.MaxExitBytes+1, nil))
	f.Add(frame(7, 0, nil))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		wf, rf := framers()
		r := bytes.NewReader(data)
		for {
			before := r.Len()
			typ, payload, err := rf.ReadFrame(r)
			if err != nil {
				if payload != nil {
					t.Fatalf("payload of %d bytes alongside error %v", len(payload), err)
				}
				return
			}
			consumed := before - r.Len()
			switch {
			case typ != initproto.FrameStdout && typ != initproto.FrameStderr && typ != initproto.FrameExit:
				t.Fatalf("accepted unknown frame type %d", typ)
			case typ != initproto.FrameExit && len(payload) > initproto.MaxChunk:
				t.Fatalf("accepted a %d-byte output frame", len(payload))
			case len(payload) > initproto.MaxExitBytes:
				t.Fatalf("accepted a %d-byte exit frame", len(payload))
			case consumed != 5+len(payload)+initproto.MACSize:
				t.Fatalf("consumed %d bytes for a %d-byte payload", consumed, len(payload))
			}
			// What was read must write back to the same bytes.
			var buf bytes.Buffer
			if err := wf.WriteFrame(&buf, typ, payload); err != nil {
				t.Fatal(err)
			}
			start := len(data) - before
			if !bytes.Equal(buf.Bytes(), data[start:start+consumed]) {
				t.Fatalf("frame does not re-encode to its input")
			}
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	var ok bytes.Buffer
	_ = initproto.WriteRequest(&ok, &initproto.Request{Command: []string{"true"}, Env: []string{"A=1"}})
	f.Add(ok.Bytes())
	f.Add(lengthPrefixed(14, `{"command":[]}`))
	f.Add(lengthPrefixed(initproto.MaxRequestBytes+1, ""))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := initproto.ReadRequest(bytes.NewReader(data))
		if err != nil {
			if req != nil {
				t.Fatalf("request alongside error %v", err)
			}
			return
		}
		if len(req.Command) == 0 {
			t.Fatal("accepted a request with no command")
		}
	})
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

// framers returns a writer and a reader framer on the same key.
func framers() (w, r *initproto.Framer) {
	return initproto.NewFramer(testKey), initproto.NewFramer(testKey)
}

// TestFramesAreAuthenticated: frames from anyone without the key, replayed
// or reordered frames are refused.
func TestFramesAreAuthenticated(t *testing.T) {
	t.Parallel()
	var first, second bytes.Buffer
	wf, _ := framers()
	_ = wf.WriteFrame(&first, initproto.FrameStdout, []byte("one"))
	_ = wf.WriteFrame(&second, initproto.FrameExit, []byte(`{"exit_code":0}`))
	var forged bytes.Buffer
	_ = initproto.NewFramer([]byte("another key, as a job would guess")).WriteFrame(&forged, initproto.FrameExit, []byte(`{"exit_code":0}`))
	flipped := append([]byte(nil), first.Bytes()...)
	flipped[6] ^= 1
	tests := map[string][]byte{
		"forged with another key": forged.Bytes(),
		"reordered":               second.Bytes(),
		"payload flipped":         flipped,
		"replayed":                append(append([]byte(nil), first.Bytes()...), first.Bytes()...),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, rf := framers()
			r := bytes.NewReader(in)
			var err error
			for err == nil {
				_, _, err = rf.ReadFrame(r)
			}
			if !errors.Is(err, initproto.ErrBadMAC) {
				t.Errorf("err = %v, want ErrBadMAC", err)
			}
		})
	}
}
