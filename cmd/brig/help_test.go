package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEveryCommandHelp: -h on every command (and subcommand) prints its
// usage on stdout and exits 0, brig help CMD prints the same, and an
// unknown flag exits 2 with the usage on stderr. Commands added to the
// table are covered without a change here.
func TestEveryCommandHelp(t *testing.T) {
	t.Parallel()
	var calls [][]string
	for name := range commands() {
		calls = append(calls, []string{name})
	}
	calls = append(calls, []string{"image", "build"}, []string{"tenant", "add"}, []string{"tenant", "ls"},
		[]string{"tenant", "rm"}, []string{"tenant", "creds"})
	slices.SortFunc(calls, func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
	for _, cmd := range calls {
		name := strings.Join(cmd, " ")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, h := range []string{"-h", "--help"} {
				code, stdout, stderr := runMain(append(slices.Clone(cmd), h)...)
				if code != 0 || stderr != "" || !isUsage(stdout, name) {
					t.Errorf("brig %s %s: exit %d, stdout %q, stderr %q; want 0 and its usage on stdout only", name, h, code, clip(stdout), stderr)
				}
				hcode, hstdout, _ := runMain(append([]string{"help"}, cmd...)...)
				if hcode != 0 || hstdout != stdout {
					t.Errorf("brig help %s: exit %d, stdout %q; want 0 and what %s prints", name, hcode, clip(hstdout), h)
				}
			}
			code, stdout, stderr := runMain(append(slices.Clone(cmd), "--no-such-flag")...)
			if code != exitUsage || stdout != "" || !isUsage(stderr, cmd[0]) {
				t.Errorf("brig %s --no-such-flag: exit %d, stdout %q, stderr %q; want %d and the usage on stderr", name, code, stdout, clip(stderr), exitUsage)
			}
		})
	}
}

// isUsage reports whether out is a usage text of brig's command name.
func isUsage(out, name string) bool {
	return strings.Contains(strings.ToLower(out), "usage:") && strings.Contains(out, "brig "+name)
}

// TestExitCodesDocumented: the exit codes are the same in the three
// places they are documented: the usage, the README's command line
// section and docs/design.md §7.
func TestExitCodesDocumented(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	design, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{
		"usage":                 usage,
		"README (Command line)": section(string(readme), "## Command line", "\n## "),
		"docs/design.md (§7)":   section(string(design), "## 7. Command line", "\n## "),
	}
	for where, text := range docs {
		if text == "" {
			t.Errorf("%s: section not found", where)
			continue
		}
		for _, code := range []int{0, 1, 2, exitTimeout, exitBrig, exitCancelled, exitOOM} {
			if !regexp.MustCompile(`(^|[^0-9])` + strconv.Itoa(code) + `([^0-9]|$)`).MatchString(text) {
				t.Errorf("%s does not document exit code %d", where, code)
			}
		}
		for _, s := range []string{"NotFound", "no brig at"} {
			if !strings.Contains(text, s) {
				t.Errorf("%s does not mention %q", where, s)
			}
		}
	}
}

// section is the text of s from the line start to the next end after it.
func section(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		s = s[:j]
	}
	return s
}

// runMain runs brig with args, as main does, with an empty stdin.
func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// clip shortens a long output for an error message.
func clip(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}
