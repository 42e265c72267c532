package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/testenv/needs"
)

// readmeBlocks returns the fenced blocks in language lang (```lang) of the
// README's section "## <section>", up to the next "## " heading.
func readmeBlocks(t *testing.T, section, lang string) []string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(readme), "\n## "+section+"\n")
	if !ok {
		t.Fatalf("the README has no %q section", "## "+section)
	}
	body, _, _ = strings.Cut(body, "\n## ")
	var blocks []string
	for i, part := range strings.Split(body, "```") {
		if code, ok := strings.CutPrefix(part, lang+"\n"); ok && i%2 == 1 {
			blocks = append(blocks, code)
		}
	}
	return blocks
}

// readmeOutput is the output a block shows: its last lines that start
// with "# ", without the "# ".
func readmeOutput(block string) string {
	lines := strings.Split(strings.TrimSpace(block), "\n")
	start := len(lines)
	for start > 0 && strings.HasPrefix(lines[start-1], "# ") {
		start--
	}
	var want []string
	for _, l := range lines[start:] {
		want = append(want, strings.TrimPrefix(l, "# "))
	}
	return strings.Join(want, "\n")
}

// TestReadmeOverHTTP runs the README's "Over HTTP" examples exactly as
// written, in an empty directory, against the shared stack's HTTP API with
// BRIG_URL and BRIG_TOKEN set as the section's first block sets them: the
// curl blocks (submit and wait; follow the events as SSE and cancel) under
// bash, the Python one with the client on PYTHONPATH, and the Go one, which
// must be examples/hello-go/main.go, with go run. Each must print what the
// README shows below it.
func TestReadmeOverHTTP(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"curl", "jq", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's HTTP examples need %s: %v", tool, err)
		}
	}
	var curls []string
	for _, b := range readmeBlocks(t, "Over HTTP", "sh") {
		if strings.Contains(b, "curl ") {
			curls = append(curls, b)
		}
	}
	if len(curls) != 2 {
		t.Fatalf("the README's Over HTTP section has %d curl examples; want 2 (submit and wait, follow and cancel)", len(curls))
	}
	for i, block := range curls {
		t.Run("curl"+string(rune('1'+i)), func(t *testing.T) {
			t.Parallel()
			runReadmeBlock(t, block, "bash", "-euo", "pipefail", "-c", block)
		})
	}
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		py := needs.Python(t)
		blocks := readmeBlocks(t, "Over HTTP", "python")
		if len(blocks) != 1 {
			t.Fatalf("%d Python examples; want 1", len(blocks))
		}
		runReadmeBlock(t, blocks[0], py, "-c", blocks[0])
	})
	t.Run("go", func(t *testing.T) {
		t.Parallel()
		blocks := readmeBlocks(t, "Over HTTP", "go")
		src, err := os.ReadFile("../examples/hello-go/main.go")
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) != 1 || blocks[0] != string(src) {
			t.Fatalf("the README's Go example is not examples/hello-go/main.go as it is")
		}
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		runReadmeBlockIn(t, wd+"/..", "hello from brig", "go", "run", "./examples/hello-go")
	})
}

// runReadmeBlock runs name args in an empty directory with the README's
// environment and wants block's output.
func runReadmeBlock(t *testing.T, block, name string, args ...string) {
	t.Helper()
	runReadmeBlockIn(t, t.TempDir(), readmeOutput(block), name, args...)
}

// runReadmeBlockIn runs name args in dir with BRIG_URL, BRIG_TOKEN (the
// shared stack's default tenant), BRIG_SERVER and the Python client on
// PYTHONPATH, and wants want on stdout.
func runReadmeBlockIn(t *testing.T, dir, want, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), jobBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(pythonEnv(t), "BRIG_SERVER="+stack.URL())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\nstderr: %s", name, err, stderr.String())
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("printed %q; the README shows %q\nstderr: %s", got, want, stderr.String())
	}
	t.Logf("output:\n%s", out)
}
