package sandbox

import (
	"strings"
	"sync"
	"testing"
)

func TestCapture(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		limit         int64
		writes        []string
		wantKept      []string // what each Add returns
		want          string
		wantTruncated bool
	}{
		{"no writes", 10, nil, nil, "", false},
		{"under limit", 10, []string{"abc", "de"}, []string{"abc", "de"}, "abcde", false},
		{"exactly limit in one write", 5, []string{"abcde"}, []string{"abcde"}, "abcde", false},
		{"exactly limit across writes", 5, []string{"ab", "cd", "e"}, []string{"ab", "cd", "e"}, "abcde", false},
		{"empty write at limit", 3, []string{"abc", ""}, []string{"abc", ""}, "abc", false},
		{"one byte over", 5, []string{"abcdef"}, []string{"abcde"}, "abcde", true},
		{"crossing the limit", 5, []string{"abc", "defg", "h"}, []string{"abc", "de", ""}, "abcde", true},
		{"write after full", 3, []string{"abc", "d"}, []string{"abc", ""}, "abc", true},
		{"zero limit, empty write", 0, []string{""}, []string{""}, "", false},
		{"zero limit", 0, []string{"a", "bc"}, []string{"", ""}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewCapture(tt.limit)
			for i, w := range tt.writes {
				if got := string(c.Add([]byte(w))); got != tt.wantKept[i] {
					t.Errorf("Add #%d (%q) kept %q, want %q", i, w, got, tt.wantKept[i])
				}
			}
			got, truncated := c.Result()
			if got != tt.want || truncated != tt.wantTruncated {
				t.Errorf("Result() = (%q, %v), want (%q, %v)", got, truncated, tt.want, tt.wantTruncated)
			}
		})
	}
}

func TestCaptureManyWrites(t *testing.T) {
	t.Parallel()
	const limit = 1000
	c := NewCapture(limit)
	kept := 0
	for range 700 {
		kept += len(c.Add([]byte("xyz")))
	}
	got, truncated := c.Result()
	if len(got) != limit || kept != limit || !truncated {
		t.Errorf("after 2100 bytes: kept %d (returned %d), truncated %v; want %d, %d, true", len(got), kept, truncated, limit, limit)
	}
	if strings.Trim(got, "xyz") != "" || got[:6] != "xyzxyz" {
		t.Errorf("captured bytes out of order: %q...", got[:12])
	}
}

// TestCaptureConcurrent: Add locks, so concurrent writers must neither race
// nor keep more than the limit between them.
func TestCaptureConcurrent(t *testing.T) {
	t.Parallel()
	const limit, writers, each = 512, 8, 100
	c := NewCapture(limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	kept := 0
	for range writers {
		wg.Go(func() {
			for range each {
				n := len(c.Add([]byte("ab")))
				mu.Lock()
				kept += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got, truncated := c.Result()
	if len(got) != limit || kept != limit || !truncated {
		t.Errorf("kept %d (returned %d), truncated %v; want %d, %d, true", len(got), kept, truncated, limit, limit)
	}
}

// The kept slice aliases the caller's buffer; the capture must own a copy.
func TestCaptureCopies(t *testing.T) {
	t.Parallel()
	c := NewCapture(10)
	p := []byte("abc")
	c.Add(p)
	copy(p, "XYZ")
	if got, _ := c.Result(); got != "abc" {
		t.Errorf("capture changed with the caller's buffer: %q", got)
	}
}
