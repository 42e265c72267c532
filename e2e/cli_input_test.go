package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/brig-dev/brig/internal/natstest"
	"github.com/brig-dev/brig/schema"
)

// brigCLIStdin is brigCLI with stdin.
func brigCLIStdin(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, brigBin, args...)
	cmd.Env = append(scrubbedEnv("BRIG_SERVER=", "BRIG_CREDS=", "BRIG_TLS_CA=", "XDG_DATA_HOME="), "XDG_DATA_HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("brig %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("brig %s: still running after %s", strings.Join(args, " "), jobBudget)
	}
	return cliResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// inputJob prints what a job got: its stdin, its args, a file and an
// environment variable.
const inputJob = `import json, os, sys
print("stdin:", sys.stdin.read().strip())
print("args:", json.dumps(json.load(open("/work/args.json")), sort_keys=True))
print("file:", open("/work/in/data.txt").read().strip())
print("env:", os.environ["GREETING"])
`

// TestCLIRunInput: brig run gives a job its stdin, args, files and
// environment (--stdin, --args, --file, --env), from files or brig's own
// stdin, and refuses what it cannot send before sending anything: the
// refused job's id then runs a fresh job, so nothing of it reached brig.
func TestCLIRunInput(t *testing.T) {
	t.Parallel()
	creds := []string{"--server", stack.URL(), "--creds", stack.ClientCreds}
	code := codeFile(t, inputJob)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	in := write("in.txt", "line from a file\n")
	data := write("data.txt", "café data\n")
	args := write("args.json", `{"n": 3, "tags": ["<a>", "&"]}`)
	want := "stdin: line from a file\nargs: {\"n\": 3, \"tags\": [\"<a>\", \"&\"]}\nfile: café data\nenv: hello, world\n"

	t.Run("from files", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, append([]string{"run", "--stdin", in, "--args", "@" + args, "--file", data + ":in/data.txt",
			"--env", "GREETING=hello, world", code}, creds...)...)
		wantExit(t, r, 0)
		if r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
	})
	t.Run("stdin and inline args", func(t *testing.T) {
		t.Parallel()
		r := brigCLIStdin(t, "line from a file\n", append([]string{"run", code, "--stdin", "-", "--args", `{"tags":["<a>","&"],"n":3}`,
			"--file", data + ":in/data.txt", "--env", "GREETING=hello, world"}, creds...)...)
		wantExit(t, r, 0)
		if r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
	})
	t.Run("default PATH", func(t *testing.T) {
		t.Parallel()
		r := brigCLI(t, append([]string{"run", "--file", data, codeFile(t, `print(open("/work/data.txt").read(), end="")`)}, creds...)...)
		wantExit(t, r, 0)
		if r.stdout != "café data\n" {
			t.Errorf("stdout %q, want the file's content", r.stdout)
		}
	})

	big := write("big.txt", strings.Repeat("x", schema.DefaultMaxJobBytes+1))
	refusals := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stderr string
	}{
		{"args not JSON", []string{"--args", `{"n": 3`}, "", 2, "brig run: --args: not valid JSON"},
		{"args file not JSON", []string{"--args", "@" + in}, "", 2, "brig run: --args @" + in + ": not valid JSON"},
		{"env without a value", []string{"--env", "GREETING"}, "", 2, `brig run: --env "GREETING": want K=V`},
		{"a missing file", []string{"--file", filepath.Join(dir, "nope")}, "", 2, "no such file or directory"},
		{"code from stdin with --stdin", []string{"--stdin", in, "-"}, "print(1)", 2, "with --stdin the code comes from FILE"},
		{"a file over the limit", []string{"--file", big}, "", 125, "is over the 524288-byte (512 KiB) submission limit"},
		{"stdin over what the code left", []string{"--stdin", "-"}, strings.Repeat("y", schema.DefaultMaxJobBytes), 125,
			"--stdin -, with the "},
		// Within what the inputs may take together, but not once encoded.
		{"the submission over the limit", []string{"--stdin", "-"}, strings.Repeat("y", schema.DefaultMaxJobBytes-300), 125,
			"invalid job: the submission is "},
		{"a PATH out of /work", []string{"--file", data + ":../etc/x"}, "", 125, `files["../etc/x"]: path leaves /work`},
		{"a reserved variable", []string{"--env", "BRIG_TOKEN=x"}, "", 125, `env["BRIG_TOKEN"]: names starting with BRIG_ are reserved`},
	}
	for _, tt := range refusals {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			t.Parallel()
			id := newID("cli-refused")
			args := append([]string{"run", "--id", id}, tt.args...)
			if tt.name != "code from stdin with --stdin" {
				args = append(args, code)
			}
			r := brigCLIStdin(t, tt.stdin, append(args, creds...)...)
			wantExit(t, r, tt.code)
			if !strings.Contains(r.stderr, tt.stderr) || r.stdout != "" {
				t.Errorf("stdout %q, stderr %q; want nothing and %q", r.stdout, clip(r.stderr), tt.stderr)
			}
			// Nothing was sent: brig has no event of the id, and a job
			// with it runs (a sent submission would hold the id).
			if w := brigCLI(t, append([]string{"watch", id}, creds...)...); w.code != 125 || !strings.Contains(w.stderr, "NotFound") {
				t.Errorf("brig watch of the refused job: exit %d, stderr %q; want 125 NotFound", w.code, w.stderr)
			}
			r = brigCLI(t, append([]string{"run", "--id", id, codeFile(t, `print("fresh")`)}, creds...)...)
			if r.code != 0 || r.stdout != "fresh\n" {
				t.Errorf("a job with the refused job's id: exit %d, stdout %q, stderr %q", r.code, r.stdout, clip(r.stderr))
			}
		})
	}
}

// TestCLIWatchUnknown: brig watch of an id brig has no event of answers
// NotFound at once with exit 125 and changes nothing: a job with the id
// then runs, and watch follows it.
func TestCLIWatchUnknown(t *testing.T) {
	t.Parallel()
	creds := []string{"--server", stack.URL(), "--creds", stack.ClientCreds}
	id := newID("cli-watch-typo")
	r := brigCLI(t, append([]string{"watch", id}, creds...)...)
	wantExit(t, r, 125)
	if r.stdout != "" || !strings.Contains(r.stderr, "brig watch: job "+id+": NotFound") {
		t.Errorf("stdout %q, stderr %q; want NotFound", r.stdout, r.stderr)
	}
	r = brigCLI(t, append([]string{"run", "--id", id, codeFile(t, `print("after")`)}, creds...)...)
	wantExit(t, r, 0)
	if r.stdout != "after\n" {
		t.Errorf("a job with the id after the watch: stdout %q", r.stdout)
	}
	r = brigCLI(t, append([]string{"watch", id}, creds...)...)
	wantExit(t, r, 0)
	checkWatchOutput(t, r.stdout, keyOf(id))
}

// TestCLIInterrupt: SIGINT to brig run cancels its job and exits 130; the
// job's terminal event is cancelled.
func TestCLIInterrupt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	id := newID("cli-interrupt")
	cmd := exec.CommandContext(ctx, brigBin, "run", "--id", id, "--server", stack.URL(), "--creds", stack.ClientCreds,
		codeFile(t, "import time\nprint('running', flush=True)\ntime.sleep(600)"))
	cmd.Env = append(scrubbedEnv("BRIG_SERVER=", "BRIG_CREDS=", "BRIG_TLS_CA=", "XDG_DATA_HOME="), "XDG_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "running" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("first line %q (%v), want running; stderr %s", sc.Text(), sc.Err(), stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d, want 130; stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted: cancelling job "+id) {
		t.Errorf("stderr %q, want it to say the job is being cancelled", stderr.String())
	}
	if ev, _ := watchResult(t, id); ev.Status != schema.StatusCancelled {
		t.Errorf("terminal event %s, want cancelled", brief(ev))
	}
}

// TestCLIConventions: help, version and unknown commands, with the
// binary as users run it.
func TestCLIConventions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args   []string
		code   int
		stdout string
	}{
		{[]string{"help", "run"}, 0, "Usage: brig run [flags] FILE|-"},
		{[]string{"run", "-h"}, 0, "Usage: brig run [flags] FILE|-"},
		{[]string{"watch", "--help"}, 0, "Usage: brig watch [flags] JOB_ID"},
		{[]string{"help", "tenant", "add"}, 0, "Usage: brig tenant add NAME"},
		{[]string{"help"}, 0, "Exit codes:"},
		{[]string{"help", "nosuch"}, 2, ""},
		{[]string{"nosuch"}, 2, ""},
		{[]string{"run", "--nosuch", "x.py"}, 2, ""},
	} {
		r := brigCLI(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) || (tt.code != 0 && r.stdout != "") {
			t.Errorf("brig %s: exit %d, stdout %q; want %d and %q", strings.Join(tt.args, " "), r.code, clip(r.stdout), tt.code, tt.stdout)
		}
	}

	// brig version names the Go version and the VCS revision the binary
	// was built from, as `go version -m` reads them from the binary.
	r := brigCLI(t, "version")
	wantExit(t, r, 0)
	if !strings.HasPrefix(r.stdout, "brig ") || !strings.Contains(r.stdout, runtime.Version()) {
		t.Errorf("brig version: %q, want brig's version and %s", r.stdout, runtime.Version())
	}
	out, err := exec.Command("go", "version", "-m", brigBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if m := regexp.MustCompile(`(?m)^\s*build\s+vcs\.revision=(\S+)$`).FindSubmatch(out); m != nil {
		if !strings.Contains(r.stdout, "revision "+string(m[1])) {
			t.Errorf("brig version: %q, want revision %s", r.stdout, m[1])
		}
	} else if strings.Contains(r.stdout, "revision") {
		t.Errorf("brig version: %q names a revision the binary does not record", r.stdout)
	}
}

// TestCLINoBrig: against a NATS server without brig the binary says so
// and exits 125, rather than wait.
func TestCLINoBrig(t *testing.T) {
	t.Parallel()
	url, _, _ := natstest.Start(t)
	for _, args := range [][]string{
		{"run", codeFile(t, `print(1)`)}, {"watch", "j1"}, {"cancel", "j1"}, {"status"}, {"deploy", "../examples/functions.yaml"},
	} {
		r := brigCLI(t, append(args, "--server", url)...)
		if r.code != 125 || !strings.Contains(r.stderr, "no brig at "+url+": ") {
			t.Errorf("brig %s: exit %d, stderr %q; want 125 and no brig at %s", args[0], r.code, r.stderr, url)
		}
	}
}

// TestCLIReadmeInputExample runs the README's `brig run --stdin --args
// --file --env` example exactly as written, in an empty directory, with
// `brig` on PATH and the shared stack as its server, and wants the output
// the README shows (its `# ` lines).
func TestCLIReadmeInputExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for i, part := range strings.Split(string(readme), "```") {
		if i%2 == 1 && strings.Contains(part, "brig run --stdin - --args") {
			block = strings.TrimPrefix(part, "sh\n")
		}
	}
	if block == "" {
		t.Fatal("the README has no `brig run --stdin - --args` example")
	}
	var script, want []string
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if out, ok := strings.CutPrefix(line, "# "); ok {
			want = append(want, out)
		} else {
			script = append(script, line)
		}
	}
	bin := t.TempDir()
	if err := os.Symlink(brigBin, filepath.Join(bin, "brig")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
	cmd.Dir = t.TempDir()
	cmd.Env = append(scrubbedEnv("BRIG_", "PATH=", "XDG_DATA_HOME="), "XDG_DATA_HOME="+t.TempDir(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "BRIG_SERVER="+stack.URL(), "BRIG_CREDS="+stack.ClientCreds)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README's example: %v\nstderr: %s", err, stderr.String())
	}
	if got := strings.TrimSpace(string(out)); got != strings.Join(want, "\n") {
		t.Errorf("the README's example printed %q, the README shows %q", got, strings.Join(want, "\n"))
	}
	t.Logf("README example output:\n%s", out)
}
