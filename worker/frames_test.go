package worker

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/brig-dev/brig/internal/initproto"
)

// Only frames the init could not have written are tampering; a stream
// that breaks is brig's failure, and one that ends is the end.
func TestReadFramesTampering(t *testing.T) {
	t.Parallel()
	key := initproto.NewKey()
	var good bytes.Buffer
	if err := initproto.NewFramer(key).WriteFrame(&good, initproto.FrameStdout, []byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	forged := append([]byte{initproto.FrameStdout, 0, 0, 0, 1, 'x'}, make([]byte, initproto.MACSize)...)
	for _, tt := range []struct {
		name     string
		stream   io.Reader
		tampered bool
	}{
		{"ends cleanly", &good, false},
		{"forged frame", bytes.NewReader(forged), true},
		{"unknown frame type", bytes.NewReader([]byte{9, 0, 0, 0, 0}), true},
		{"oversize frame", bytes.NewReader([]byte{initproto.FrameStdout, 0xff, 0xff, 0xff, 0xff}), true},
		{"cut mid-frame", bytes.NewReader(forged[:7]), false},
		{"stream broke", io.MultiReader(bytes.NewReader(good.Bytes()), errReader{errors.New("connection reset by peer")}), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := newOutcome(nil, "", "")
			w := &Worker{}
			if exit := w.readFrames(tt.stream, initproto.NewFramer(key), out, nil); exit != nil {
				t.Fatalf("exit %+v from a stream without an exit frame", exit)
			}
			if out.tampered != tt.tampered {
				log, _ := out.initLog.result()
				t.Errorf("tampered = %v, want %v (%s)", out.tampered, tt.tampered, log)
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
