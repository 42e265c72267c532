package sandbox

import (
	"bytes"
	"errors"
	"io"
	"reflect"
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
			out := &Outcome{Stdout: NewCapture(1 << 10), Stderr: NewCapture(1 << 10), InitLog: NewCapture(initStderrCap)}
			if exit := readFrames(tt.stream, initproto.NewFramer(key), out, nil); exit != nil {
				t.Fatalf("exit %+v from a stream without an exit frame", exit)
			}
			if out.Tampered != tt.tampered {
				log, _ := out.InitLog.Result()
				t.Errorf("Tampered = %v, want %v (%s)", out.Tampered, tt.tampered, log)
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestDecodeExit(t *testing.T) {
	t.Parallel()
	got, err := decodeExit([]byte(`{"exit_code":3,"signal":9,"result":"eyJhIjpbMSwyXX0=","duration_ns":42,"oom_kills":1}`))
	want := initproto.Exit{ExitCode: 3, Signal: 9, Result: []byte(`{"a":[1,2]}`), DurationNS: 42, OOMKills: 1}
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("decodeExit = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"\x00\x01", "", `{"exit_code":"0"}`, `{"result":{"a":1}}`} {
		if got, err := decodeExit([]byte(bad)); err == nil {
			t.Errorf("decodeExit(%q) = %+v, want an error", bad, got)
		}
	}
}
