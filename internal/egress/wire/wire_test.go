package wire

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, Header{V: Version, Kind: KindTCP, Dst: "127.64.0.1:443"}); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("rest")
	r := bufio.NewReader(&buf)
	h, dst, err := Read(r)
	if err != nil || h.Kind != KindTCP || dst.String() != "127.64.0.1:443" {
		t.Fatalf("Read: %+v %v %v", h, dst, err)
	}
	rest, _ := r.ReadString(0)
	if rest != "rest" {
		t.Fatalf("read past the header: %q left", rest)
	}
}

func TestReadRefuses(t *testing.T) {
	for _, line := range []string{
		``, `{}`, `{"v":2,"kind":"tcp","dst":"127.64.0.1:443"}`,
		`{"v":1,"kind":"udp","dst":"127.64.0.1:443"}`,
		`{"v":1,"kind":"tcp"}`, `{"v":1,"kind":"tcp","dst":"[::1]:443"}`,
		`{"v":1,"kind":"tcp","dst":"127.64.0.1:0"}`, `{"v":1,"kind":"tcp","dst":"host:443"}`,
		`{"v":1,"kind":"dns","dst":"127.64.0.1:53"}`, `{"v":1,"kind":"dns","x":1}`,
		`{"v":1,"kind":"dns"} {}`, `{"v":1,"kind":"dns","pad":"` + strings.Repeat("a", MaxHeader) + `"}`,
	} {
		if _, _, err := Read(bufio.NewReader(strings.NewReader(line + "\n"))); !errors.Is(err, ErrHeader) {
			t.Errorf("%.60q: err %v, want ErrHeader", line, err)
		}
	}
	if _, _, err := Read(bufio.NewReader(strings.NewReader(`{"v":1,"kind":"dns"}`))); !errors.Is(err, ErrHeader) {
		t.Errorf("no newline: %v", err)
	}
}
