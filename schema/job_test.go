package schema_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
)

// SetTimeout rounds up to the wire's whole milliseconds, so that a short
// positive limit never reads as 0 (the function's default), and keeps a
// negative one negative, so that Validate refuses it.
func TestJobSetTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		d      time.Duration
		wantMS int64
		valid  bool
	}{
		{0, 0, true},
		{time.Nanosecond, 1, true},
		{999 * time.Microsecond, 1, true},
		{time.Millisecond, 1, true},
		{1500 * time.Microsecond, 2, true},
		{5 * time.Second, 5000, true},
		{time.Hour, schema.MaxTimeoutMS, true},
		{time.Hour + time.Nanosecond, schema.MaxTimeoutMS + 1, false},
		{-time.Nanosecond, -1, false},
		{-2 * time.Millisecond, -2, false},
		{math.MaxInt64, math.MaxInt64/int64(time.Millisecond) + 1, false},
		{math.MinInt64, math.MinInt64 / int64(time.Millisecond), false},
	} {
		job := schema.Job{ID: "j", Function: "python"}
		job.SetTimeout(tt.d)
		if job.TimeoutMS != tt.wantMS {
			t.Errorf("SetTimeout(%v): TimeoutMS = %d, want %d", tt.d, job.TimeoutMS, tt.wantMS)
		}
		if err := job.Validate(); (err == nil) != tt.valid {
			t.Errorf("SetTimeout(%v): Validate = %v, want valid %v", tt.d, err, tt.valid)
		} else if err != nil {
			wantFieldError(t, err, "timeout")
		}
		if tt.d >= 0 && tt.d <= time.Hour {
			if got := job.Timeout(); got < tt.d || got-tt.d >= time.Millisecond {
				t.Errorf("SetTimeout(%v): Timeout() = %v, want %v rounded up to a millisecond", tt.d, got, tt.d)
			}
		}
	}
}

// Timeout reads TimeoutMS as a Duration, saturating where a Duration
// cannot hold it.
func TestJobTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ms   int64
		want time.Duration
	}{
		{0, 0},
		{1, time.Millisecond},
		{30_000, 30 * time.Second},
		{-5, -5 * time.Millisecond},
		{math.MaxInt64, math.MaxInt64},
		{math.MinInt64, math.MinInt64},
	} {
		job := schema.Job{TimeoutMS: tt.ms}
		if got := job.Timeout(); got != tt.want {
			t.Errorf("Timeout() of TimeoutMS %d = %v, want %v", tt.ms, got, tt.want)
		}
	}
}

// A job that asks for scopes must say restricted: false itself: a
// restricted job (the default) is granted none, and its scopes would be
// dropped without a word (docs/design.md §4.1).
func TestJobScopesNeedUnrestricted(t *testing.T) {
	t.Parallel()
	scopes := []string{"dict:cache:read"}
	for _, tt := range []struct {
		name       string
		restricted *bool
		scopes     []string
		valid      bool
	}{
		// Left out: the function's default decides, which only the
		// dispatcher knows (dispatcher TestDispatchScopesOfRestrictedFunction).
		{"scopes, restricted left out", nil, scopes, true},
		{"scopes, restricted", schema.Ptr(true), scopes, false},
		{"scopes, unrestricted", schema.Ptr(false), scopes, true},
		{"no scopes, restricted by default", nil, nil, true},
		{"no scopes, restricted", schema.Ptr(true), nil, true},
		{"no scopes, unrestricted", schema.Ptr(false), nil, true},
		{"empty scopes, restricted", schema.Ptr(true), []string{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := schema.Job{ID: "j", Function: "python", Restricted: tt.restricted, Scopes: tt.scopes}
			err := job.Validate()
			if tt.valid {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantFieldError(t, err, "restricted")
			if !strings.Contains(err.Error(), "scopes") {
				t.Errorf("error %q does not say why: the scopes", err)
			}
		})
	}
	// Decoded the same way: the dispatcher refuses what a client would.
	for _, data := range []string{
		jobJSON(map[string]any{"scopes": scopes, "restricted": true}),
	} {
		if _, err := schema.DecodeJob([]byte(data), 0); err == nil {
			t.Errorf("DecodeJob(%s) accepted a restricted job with scopes", data)
		} else {
			wantFieldError(t, err, "restricted")
		}
	}
	if _, err := schema.DecodeJob([]byte(jobJSON(map[string]any{"scopes": scopes, "restricted": false})), 0); err != nil {
		t.Errorf("DecodeJob of an unrestricted job with scopes: %v", err)
	}
}
