package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/internal/httpapi"
)

// A body trickled slower than BodyTimeout allows is answered 408 and its
// connection closed; nothing is submitted.
func TestSlowBody(t *testing.T) {
	_, base := ownServer(t, httpapi.Config{BodyTimeout: 500 * time.Millisecond})
	tok := defaultToken(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"id":"slow-body","function":"echo"}`
	fmt.Fprintf(conn, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", tok, len(body), body[:5])
	// The rest never comes: the server answers without it.
	resp, err := io.ReadAll(conn)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 408") || !strings.Contains(string(resp), "RequestTimeout") {
		t.Fatalf("answer to a slow body: %q", resp)
	}
	call(t, "GET", "/v1/jobs/slow-body", tok, nil).problem(t, 404, httpapi.TypeNotFound, "")
}

// Headers that never end (slowloris) get the connection closed after
// ReadHeaderTimeout.
func TestSlowHeaders(t *testing.T) {
	_, base := ownServer(t, httpapi.Config{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-a: ")
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != io.EOF {
		t.Fatalf("a connection whose headers never end: %v, want it closed (EOF)", err)
	}
}

// Headers over MaxHeaderBytes are refused.
func TestHugeHeaders(t *testing.T) {
	r := call(t, "GET", "/v1/status", defaultToken(t), nil, "X-Big", strings.Repeat("a", 64<<10))
	if r.status != 431 {
		t.Fatalf("64 KiB of headers: %d %s", r.status, r.body)
	}
}
