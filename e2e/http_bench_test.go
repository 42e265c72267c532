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
// event through the SDK and through the HTTP API (POST ?wait=60s on a
// kept-alive connection), for echo (no container) and python. Each
// iteration runs one job each way, one after the other and each first
// every other time, so that both see the same machine and the same states
// of the warm cache; the
// sub-benchmark reports both p50s in ms and their ratio (http/sdk).
func BenchmarkSubmitToTerminal(b *testing.B) {
	tok, err := os.ReadFile(stack.ClientToken)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for _, fn := range []struct{ name, code string }{{"echo", ""}, {"python", "print(1)"}} {
		job := func() schema.Job { return schema.Job{ID: sdk.NewJobID(), Function: fn.name, Code: fn.code} }
		b.Run(fn.name, func(b *testing.B) {
			var viaSDK, viaHTTP []time.Duration
			runSDK := func() {
				viaSDK = append(viaSDK, timeJob(b, func() error {
					_, err := brig.Run(b.Context(), job())
					return err
				}))
			}
			runHTTP := func() {
				viaHTTP = append(viaHTTP, timeJob(b, func() error { return postWait(b, client, string(tok), job()) }))
			}
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 { // each goes first half the time
					runSDK()
					runHTTP()
				} else {
					runHTTP()
					runSDK()
				}
			}
			s, h := p50ms(viaSDK), p50ms(viaHTTP)
			b.ReportMetric(s, "sdk-p50-ms")
			b.ReportMetric(h, "http-p50-ms")
			b.ReportMetric(h/s, "http/sdk")
		})
	}
}

// timeJob runs job once and returns how long it took.
func timeJob(b *testing.B, job func() error) time.Duration {
	start := time.Now()
	if err := job(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// p50ms is the median of took, in ms.
func p50ms(took []time.Duration) float64 {
	slices.Sort(took)
	return float64(took[len(took)/2].Microseconds()) / 1000
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
