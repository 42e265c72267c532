package initproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/brig-dev/brig/internal/initproto"
)

// TestEncodeExitKeepsResultBytes: whatever the job wrote comes back as it
// was, with nothing HTML-escaped or compacted on the way.
func TestEncodeExitKeepsResultBytes(t *testing.T) {
	t.Parallel()
	tests := map[string][]byte{
		"html":        []byte(`"<script>&amp;</script>"`),
		"whitespace":  []byte("{\n  \"a\" :\t[1,  2]\n}"),
		"line sep":    []byte("\"\u2028\u2029\""),
		"angles":      bytes.Repeat([]byte{'<'}, 100_000),
		"not JSON":    []byte("\x00\xff{"),
		"empty":       nil,
		"at the cap":  bytes.Repeat([]byte{0xff}, initproto.MaxResultBytes),
		"escaped str": []byte(`"\u003c\n"`),
	}
	for name, result := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := initproto.EncodeExit(&initproto.Exit{ExitCode: 1, Result: result})
			if err != nil {
				t.Fatalf("EncodeExit: %v", err)
			}
			if bytes.Contains(data, []byte(`\u003c`)) || bytes.HasSuffix(data, []byte("\n")) {
				t.Errorf("encoding escapes HTML or ends in a newline: %.80s", data)
			}
			var got initproto.Exit
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !bytes.Equal(got.Result, result) || got.ExitCode != 1 {
				t.Errorf("result came back as %.40q (%d bytes), want %.40q (%d bytes)", got.Result, len(got.Result), result, len(result))
			}
		})
	}
}

// TestEncodeExitFitsAtBounds: an Exit with every field at its worst fits
// one Exit frame, and the reader takes it.
func TestEncodeExitFitsAtBounds(t *testing.T) {
	t.Parallel()
	worstError := strings.Repeat("\x01", 3*initproto.MaxErrorBytes) // \u0001: 6 bytes each
	e := &initproto.Exit{
		ExitCode: math.MinInt, Signal: math.MinInt, DurationNS: math.MinInt64, OOMKills: math.MinInt64,
		Result:      bytes.Repeat([]byte{0xff}, initproto.MaxResultBytes),
		ResultError: worstError, WipeError: worstError, Reusable: true,
	}
	data, err := initproto.EncodeExit(e)
	if err != nil {
		t.Fatalf("EncodeExit: %v", err)
	}
	if len(data) > initproto.MaxExitBytes {
		t.Fatalf("exit at the bounds is %d bytes, over MaxExitBytes %d", len(data), initproto.MaxExitBytes)
	}
	wf, rf := framers()
	var buf bytes.Buffer
	if err := wf.WriteFrame(&buf, initproto.FrameExit, data); err != nil {
		t.Fatal(err)
	}
	if _, payload, err := rf.ReadFrame(&buf); err != nil || !bytes.Equal(payload, data) {
		t.Fatalf("ReadFrame: %v", err)
	}
	var got initproto.Exit
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{got.ResultError, got.WipeError} {
		if len(s) > initproto.MaxErrorBytes || !strings.HasSuffix(s, "[cut]") {
			t.Errorf("error string of %d bytes (%.20q...), want it cut to %d", len(s), s, initproto.MaxErrorBytes)
		}
	}
	if e.WipeError != worstError {
		t.Error("EncodeExit changed its argument")
	}
}

func TestEncodeExitRefusesOversizeResult(t *testing.T) {
	t.Parallel()
	_, err := initproto.EncodeExit(&initproto.Exit{Result: make([]byte, initproto.MaxResultBytes+1)})
	if !errors.Is(err, initproto.ErrFrameTooLarge) {
		t.Errorf("err = %v, want ErrFrameTooLarge", err)
	}
}

// TestEncodeExitCutsOnCharacterBoundary: a cut error string stays UTF-8.
func TestEncodeExitCutsOnCharacterBoundary(t *testing.T) {
	t.Parallel()
	for pad := range utf8.UTFMax {
		msg := strings.Repeat("x", pad) + strings.Repeat("€", initproto.MaxErrorBytes)
		data, err := initproto.EncodeExit(&initproto.Exit{WipeError: msg})
		if err != nil {
			t.Fatal(err)
		}
		var got initproto.Exit
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(got.WipeError) || strings.ContainsRune(got.WipeError, utf8.RuneError) || len(got.WipeError) > initproto.MaxErrorBytes {
			t.Errorf("pad %d: cut to %d bytes, valid UTF-8 %v", pad, len(got.WipeError), utf8.ValidString(got.WipeError))
		}
	}
	short := "wipe /work: 1 entries left"
	if data, _ := initproto.EncodeExit(&initproto.Exit{WipeError: short}); !bytes.Contains(data, []byte(short)) {
		t.Errorf("a short error was changed: %s", data)
	}
}

// TestRequestResultCap: a request whose result cap would let the Exit frame
// overflow is refused on both sides.
func TestRequestResultCap(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{-1, initproto.MaxResultBytes + 1, math.MaxInt64} {
		req := &initproto.Request{Command: []string{"true"}, ResultMaxBytes: n}
		var buf bytes.Buffer
		if err := initproto.WriteRequest(&buf, req); err == nil || buf.Len() != 0 {
			t.Errorf("WriteRequest with result_max_bytes %d: err %v, wrote %d bytes", n, err, buf.Len())
		}
		body, _ := json.Marshal(req)
		_, err := initproto.ReadRequest(bytes.NewReader(lengthPrefixed(uint32(len(body)), string(body))))
		if err == nil || !strings.Contains(err.Error(), "result_max_bytes") {
			t.Errorf("ReadRequest with result_max_bytes %d: err %v", n, err)
		}
	}
}
