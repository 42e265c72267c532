package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// brig http serves the API, says where on stderr, and stops on its
// context's end (SIGTERM) with exit 0; a stray argument is exit 2.
func TestCmdHTTP(t *testing.T) {
	if code := cmdHTTP(t.Context(), []string{"--listen", "127.0.0.1:0", "extra"}, nil, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("a stray argument: exit %d, want %d", code, exitUsage)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cmdHTTP(ctx, []string{"--listen", "127.0.0.1:0", "--server", "nats://127.0.0.1:1"}, nil, io.Discard, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "http ")
	if err != nil || !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q (%v), want http http://127.0.0.1:PORT", line, err)
	}
	resp, err := http.Get(url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /openapi.json: %d", resp.StatusCode)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("stopped: exit %d, want 0", code)
	}
}
