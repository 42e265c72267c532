package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/brig-dev/brig/schema"
)

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadInput(t *testing.T) {
	t.Parallel()
	limit := schema.DefaultMaxJobBytes
	file := writeFile(t, "main.py", "print('file')\n")
	atLimit := writeFile(t, "at", strings.Repeat("x", limit))
	overLimit := writeFile(t, "over", strings.Repeat("x", limit+1))
	binary := writeFile(t, "bin", "\xff\xfe\x00")
	tests := []struct {
		name     string
		arg      string
		stdin    io.Reader
		want     string
		wantErr  string // "usage", "too large" or ""
		wantText string
	}{
		{"file", file, strings.NewReader("ignored"), "print('file')\n", "", ""},
		{"stdin", "-", strings.NewReader("print('hi')\n"), "print('hi')\n", "", ""},
		{"empty stdin", "-", strings.NewReader(""), "", "", ""},
		{"at the limit", atLimit, nil, strings.Repeat("x", limit), "", ""},
		{"missing file", filepath.Join(t.TempDir(), "nope.py"), nil, "", "usage", "code: open "},
		{"a directory", t.TempDir(), nil, "", "usage", "is a directory"},
		{"over the limit", overLimit, nil, "", "too large", "code is over the 524288-byte (512 KiB) submission limit"},
		{"not UTF-8", binary, nil, "", "usage", "not UTF-8 text"},
		{"failing stdin", "-", iotest.ErrReader(os.ErrClosed), "", "usage", "code: read: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readInput("code", tt.arg, tt.stdin, schema.DefaultMaxJobBytes)
			var usage *usageError
			var large *tooLargeError
			switch {
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Errorf("readInput(%q) = %q, %v; want %q", tt.arg, clip(got), err, clip(tt.want))
			case tt.wantErr == "usage" && !errors.As(err, &usage):
				t.Errorf("readInput(%q) error %v, want a usage error", tt.arg, err)
			case tt.wantErr == "too large" && !errors.As(err, &large):
				t.Errorf("readInput(%q) error %v, want a too-large error", tt.arg, err)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantText):
				t.Errorf("readInput(%q) error %q, want it to contain %q", tt.arg, err, tt.wantText)
			}
		})
	}
}

// TestReadInputBounded: one byte over the limit is enough to refuse an
// input; an endless stdin is not held in memory.
func TestReadInputBounded(t *testing.T) {
	t.Parallel()
	r := &countingReader{r: strings.NewReader(strings.Repeat("x", 4*schema.DefaultMaxJobBytes))}
	_, err := readInput("--stdin -", "-", r, schema.DefaultMaxJobBytes)
	var large *tooLargeError
	if !errors.As(err, &large) || r.n > schema.DefaultMaxJobBytes+1 {
		t.Errorf("read %d bytes, error %v; want at most %d and a too-large error", r.n, err, schema.DefaultMaxJobBytes+1)
	}
}

// TestJobInputBoundTotal: the inputs together are bounded by the
// submission limit, not each on its own, so that N --file flags never
// hold N times the limit: four files of 200 KiB stop at the third, which
// is read only as far as the limit, and the error names it.
func TestJobInputBoundTotal(t *testing.T) {
	t.Parallel()
	var args []string
	for i := range 4 {
		f := writeFile(t, fmt.Sprintf("f%d.txt", i), strings.Repeat("x", 200<<10))
		args = append(args, "--file", f)
	}
	in, pos, err := parseRun(t, append(args, "main.py")...)
	if err != nil || len(pos) != 1 {
		t.Fatalf("parse: %v %v", pos, err)
	}
	code := writeFile(t, "main.py", "print(1)\n")
	var job schema.Job
	err = in.build(&job, code, strings.NewReader(""))
	var large *tooLargeError
	if !errors.As(err, &large) || !strings.Contains(err.Error(), "f2.txt") || !strings.Contains(err.Error(), "with the ") {
		t.Fatalf("build: %v; want a too-large error naming the third file and the bytes before it", err)
	}
	if in.taken > schema.DefaultMaxJobBytes+1 {
		t.Errorf("read %d bytes in all; want at most the limit plus one (%d)", in.taken, schema.DefaultMaxJobBytes+1)
	}
}

// parseRun parses brig run's input flags from args as brig run does.
func parseRun(t *testing.T, args ...string) (*jobInput, []string, error) {
	t.Helper()
	fs := newFlagSet("brig run", io.Discard, io.Discard)
	in := addInputFlags(fs)
	pos, err := parseInterleaved(fs, args)
	return in, pos, err
}

// TestJobInputBuild: what --stdin, --args, --file and --env put into the
// job, and what they refuse as a usage error (exit 2, nothing sent).
func TestJobInputBuild(t *testing.T) {
	t.Parallel()
	code := writeFile(t, "main.py", "print(input())\n")
	in := writeFile(t, "in.txt", "line 1\nline 2\n")
	data := writeFile(t, "data.txt", "data\n")
	argsFile := writeFile(t, "args.json", ` {"from": "file"} `)
	notJSON := writeFile(t, "bad.json", `{"a": }`)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  schema.Job // Code is code's unless set
		err   string     // part of the usage error
	}{
		{name: "code only", args: []string{code}},
		{name: "everything", args: []string{"--stdin", in, "--args", `{"n": 3}`, "--file", data, "--file", data + ":sub/dir/x.txt",
			"--env", "A=1", "--env", "B=x=y", "--env", "EMPTY=", code},
			want: schema.Job{Stdin: "line 1\nline 2\n", Args: json.RawMessage(`{"n": 3}`),
				Files: map[string]string{"data.txt": "data\n", "sub/dir/x.txt": "data\n"}, Env: map[string]string{"A": "1", "B": "x=y", "EMPTY": ""}}},
		{name: "flags after the file", args: []string{code, "--stdin", "-", "--args", "[1, 2]"}, stdin: "from stdin",
			want: schema.Job{Stdin: "from stdin", Args: json.RawMessage(`[1, 2]`)}},
		{name: "args from a file", args: []string{"--args", "@" + argsFile, code}, want: schema.Job{Args: json.RawMessage(`{"from": "file"}`)}},
		{name: "args from stdin", args: []string{"--args", "@-", code}, stdin: `"s"`, want: schema.Job{Args: json.RawMessage(`"s"`)}},
		{name: "a file from stdin", args: []string{"--file", "-:in/x", code}, stdin: "piped", want: schema.Job{Files: map[string]string{"in/x": "piped"}}},
		{name: "code from stdin", args: []string{"--args", "null", "-"}, stdin: "print(1)", want: schema.Job{Code: "print(1)", Args: json.RawMessage(`null`)}},

		{name: "--stdin with code from stdin", args: []string{"--stdin", in, "-"}, err: "with --stdin the code comes from FILE"},
		{name: "--stdin - with code from stdin", args: []string{"--stdin", "-", "-"}, err: "with --stdin the code comes from FILE"},
		{name: "two stdin readers", args: []string{"--args", "@-", "--file", "-:x", code}, err: "--args @-, --file -:x all read stdin"},
		{name: "args not JSON", args: []string{"--args", `{"a": 1`, code}, err: "--args: not valid JSON: unexpected end of JSON input"},
		{name: "args with trailing data", args: []string{"--args", `1 2`, code}, err: "--args: not valid JSON: invalid character '2' after top-level value (at byte 3)"},
		{name: "args file not JSON", args: []string{"--args", "@" + notJSON, code}, err: "--args @" + notJSON + ": not valid JSON"},
		{name: "args empty", args: []string{"--args", " ", code}, err: "--args: empty"},
		{name: "args file missing", args: []string{"--args", "@/nonexistent/a.json", code}, err: "--args @/nonexistent/a.json: open /nonexistent/a.json"},
		{name: "env without =", args: []string{"--env", "A", code}, err: `--env "A": want K=V`},
		{name: "env without a name", args: []string{"--env", "=1", code}, err: `--env "=1": want K=V`},
		{name: "env twice", args: []string{"--env", "A=1", "--env", "A=2", code}, err: "--env A given twice"},
		{name: "file with an empty PATH", args: []string{"--file", data + ":", code}, err: "PATH after ':' is empty"},
		{name: "file with an empty LOCAL", args: []string{"--file", ":x", code}, err: "LOCAL is empty"},
		{name: "file - without PATH", args: []string{"--file", "-", code}, err: "--file -:PATH"},
		{name: "two files to one PATH", args: []string{"--file", data, "--file", in + ":data.txt", code}, err: "another --file writes /work/data.txt too"},
		{name: "file missing", args: []string{"--file", "/nonexistent/x", code}, err: "--file /nonexistent/x: open /nonexistent/x"},
		{name: "stdin file missing", args: []string{"--stdin", "/nonexistent/x", code}, err: "--stdin /nonexistent/x: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, pos, err := parseRun(t, tt.args...)
			if err != nil || len(pos) != 1 {
				t.Fatalf("parse %q: %v, positionals %q", tt.args, err, pos)
			}
			var job schema.Job
			err = in.build(&job, pos[0], strings.NewReader(tt.stdin))
			if tt.err != "" {
				var usage *usageError
				if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("build: %v; want a usage error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.Code == "" {
				want.Code = "print(input())\n"
			}
			gotJSON, _ := json.Marshal(job)
			wantJSON, _ := json.Marshal(want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("job\n%s\nwant\n%s", gotJSON, wantJSON)
			}
		})
	}
}

// TestInputFlagsOnce: a second --stdin or --args is refused, not one of
// them silently dropped.
func TestInputFlagsOnce(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--stdin", "a", "--stdin", "b", "x.py"}, {"--args", "1", "--args", "2", "x.py"}} {
		if _, _, err := parseRun(t, args...); err == nil || !strings.Contains(err.Error(), "given twice") {
			t.Errorf("parse %q: %v, want given twice", args, err)
		}
	}
}

// TestCheckJob: the dispatcher's own checks, before anything is sent.
func TestCheckJob(t *testing.T) {
	t.Parallel()
	job := func(edit func(*schema.Job)) *schema.Job {
		j := &schema.Job{ID: "j1", Function: "python", Code: "print(1)"}
		edit(j)
		return j
	}
	tests := []struct {
		name string
		job  *schema.Job
		want string // part of the error; "" for none
	}{
		{"valid", job(func(j *schema.Job) { j.Files = map[string]string{"a/b.txt": "x"}; j.Env = map[string]string{"A": "1"} }), ""},
		{"too large", job(func(j *schema.Job) { j.Stdin = strings.Repeat("x", schema.DefaultMaxJobBytes) }),
			"over the 524288-byte (512 KiB) limit"},
		{"escaped bytes count", job(func(j *schema.Job) { j.Stdin = strings.Repeat("\x01", schema.DefaultMaxJobBytes/6+1) }),
			"over the 524288-byte (512 KiB) limit"},
		{"a path out of /work", job(func(j *schema.Job) { j.Files = map[string]string{"../x": ""} }), `files["../x"]: path leaves /work`},
		{"an absolute path", job(func(j *schema.Job) { j.Files = map[string]string{"/etc/x": ""} }), `files["/etc/x"]: path must be relative to /work`},
		{"a path in out/", job(func(j *schema.Job) { j.Files = map[string]string{"out/result.json": ""} }), "reserved for results"},
		{"a reserved env name", job(func(j *schema.Job) { j.Env = map[string]string{"BRIG_TOKEN": "x"} }), `env["BRIG_TOKEN"]`},
		{"an invalid env name", job(func(j *schema.Job) { j.Env = map[string]string{"A-B": "x"} }), `env["A-B"]: name must match`},
		{"args and a file args.json", job(func(j *schema.Job) {
			j.Args = json.RawMessage(`1`)
			j.Files = map[string]string{"args.json": ""}
		}), "clashes with args"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkJob(tt.job)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("checkJob: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestBuildJobExit: a command line brig run cannot make a job of exits 2
// with the reason; a job brig would reject is rejected before it is sent,
// exit 125, and --json prints its terminal rejected event.
func TestBuildJobExit(t *testing.T) {
	t.Parallel()
	code := writeFile(t, "main.py", "print(1)")
	big := writeFile(t, "big", strings.Repeat("x", schema.DefaultMaxJobBytes+1))
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr string
		wantEvent  string // part of the --json event's error message
	}{
		{"bad args", []string{"--args", "{", code}, exitUsage, "brig run: --args: not valid JSON", ""},
		{"too large a file", []string{"--file", big, code}, exitBrig, "", "invalid job: --file " + big + ", with the 8 bytes of the inputs before it, is over the 524288-byte (512 KiB) submission limit"},
		{"too large in all", []string{"--stdin", code, "--env", "A=" + strings.Repeat("y", 400<<10), "--args", `"` + strings.Repeat("z", 200<<10) + `"`, code},
			exitBrig, "", "invalid job: the submission is "},
		{"a path out of /work", []string{"--file", code + ":../x", code}, exitBrig, "", `invalid job: files["../x"]: path leaves /work`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, pos, err := parseRun(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			job := schema.Job{ID: "j1", Function: "python"}
			var stdout, stderr bytes.Buffer
			got, ok := buildJob(t.Context(), &job, in, pos[0], strings.NewReader(""), "acme", true, &stdout, &stderr)
			if ok || got != tt.want || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Fatalf("buildJob: %d, %t, stderr %q; want %d, false, %q", got, ok, stderr.String(), tt.want, tt.wantStderr)
			}
			if tt.wantEvent == "" {
				if stdout.Len() != 0 {
					t.Errorf("stdout %q, want nothing", stdout.String())
				}
				return
			}
			ev, err := schema.DecodeEvent(bytes.TrimSpace(stdout.Bytes()))
			if err != nil {
				t.Fatalf("stdout %q: %v", stdout.String(), err)
			}
			if ev.JobID != "acme.j1" || ev.Status != schema.StatusRejected || ev.Error == nil || ev.Error.Type != schema.ErrInvalidJob ||
				!strings.Contains(ev.Error.Message, tt.wantEvent) {
				t.Errorf("event %+v %+v, want acme.j1 rejected InvalidJob with %q", ev, ev.Error, tt.wantEvent)
			}
		})
	}
}
