package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/brig-dev/brig/schema"
	"github.com/brig-dev/brig/sdk"
)

// BenchmarkSubmitToTerminal times one job from submission to its terminal
// event, through the SDK and through the HTTP API (POST ?wait=60s on a
// kept-alive connection), for echo (no container) and python; each
// sub-benchmark reports its p50 in ms, and the http/sdk ratio of each
// function is logged.
func BenchmarkSubmitToTerminal(b *testing.B) {
	tok, err := os.ReadFile(stack.ClientToken)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	p50 := map[string]float64{}
	for _, fn := range []struct{ name, code string }{{"echo", ""}, {"python", "print(1)"}} {
		job := func() schema.Job { return schema.Job{ID: sdk.NewJobID(), Function: fn.name, Code: fn.code} }
		b.Run("sdk/"+fn.name, func(b *testing.B) {
			p50["sdk/"+fn.name] = timeJobs(b, func() error {
				_, err := brig.Run(b.Context(), job())
				return err
			})
		})
		b.Run("http/"+fn.name, func(b *testing.B) {
			p50["http/"+fn.name] = timeJobs(b, func() error { return postWait(b, client, string(tok), job()) })
		})
		if s, h := p50["sdk/"+fn.name], p50["http/"+fn.name]; s > 0 && h > 0 {
			b.Logf("%s: http/sdk p50 ratio %.2f (%.1f ms / %.1f ms)", fn.name, h/s, h, s)
		}
	}
}

// timeJobs runs job b.N times and reports the p50 in ms.
func timeJobs(b *testing.B, job func() error) float64 {
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := job(); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	ms := float64(took[len(took)/2].Microseconds()) / 1000
	b.ReportMetric(ms, "p50-ms")
	return ms
}

// postWait submits job over HTTP and waits for its terminal event.
func postWait(b *testing.B, client *http.Client, token string, job schema.Job) error {
	data, err := json.Marshal(job)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(b.Context(), "POST", stack.HTTPURL()+"/v1/jobs?wait=60s", bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.Fatalf("POST ?wait: %d %s", resp.StatusCode, body)
	}
	return nil
}
