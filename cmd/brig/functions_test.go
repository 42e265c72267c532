package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/brig-dev/brig/internal/auth"
	"github.com/brig-dev/brig/internal/functions"
)

func runFunctions(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCmd(t, cmdFunctions, args...)
}

// functionsFixture deploys a global grader and python, and acme's own
// grader and tool, with brig deploy.
func functionsFixture(t *testing.T) (js jetstream.JetStream, conn []string) {
	t.Helper()
	_, _, js, conn = deployServer(t)
	global := "- {name: grader, image: brig/python:latest, command: [python3, /work/main.py], timeout_ms: 1000}\n" +
		"- {name: python, image: brig/python:latest, command: [python3, /work/main.py], timeout_ms: 2000}\n"
	own := "- {name: grader, image: acme/grader:1, command: [grade]}\n- {name: tool, image: acme/tool:2, command: [tool]}\n"
	for _, d := range []struct{ yaml, tenant string }{{global, ""}, {own, "acme"}} {
		args := append([]string{"-"}, conn...)
		if d.tenant != "" {
			args = append(args, "--tenant", d.tenant)
		}
		if code, _, stderr := runDeploy(t, d.yaml, args...); code != 0 {
			t.Fatalf("deploy: exit %d, stderr %s", code, stderr)
		}
	}
	return js, conn
}

// TestFunctionsLs: every function, deployed and built-in, with its owner,
// image, revision and time; with --tenant, what that tenant's jobs resolve.
func TestFunctionsLs(t *testing.T) {
	t.Parallel()
	_, conn := functionsFixture(t)
	code, stdout, stderr := runFunctions(t, append([]string{"ls"}, conn...)...)
	if code != 0 {
		t.Fatalf("ls: exit %d, stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := [][]string{
		{"NAME", "TENANT", "IMAGE", "REVISION", "UPDATED"},
		{"echo", "(built-in)", "-", "-", "-"},
		{"grader", "(global)", "brig/python:latest", "1"},
		{"python", "(global)", "brig/python:latest", "2"},
		{"python", "(built-in)", "brig/python:latest", "-", "-"},
		{"grader", "acme", "acme/grader:1", "3"},
		{"tool", "acme", "acme/tool:2", "4"},
	}
	if len(lines) != len(want) {
		t.Fatalf("ls printed\n%s\nwant %d lines", stdout, len(want))
	}
	for i, w := range want {
		f := strings.Fields(lines[i])
		if len(f) < len(w) || !reflect.DeepEqual(f[:len(w)], w) {
			t.Errorf("ls line %d = %q, want it to start %q", i, lines[i], w)
		}
		if len(w) == 4 {
			if ts, err := time.Parse(time.RFC3339, f[len(f)-1]); err != nil || time.Since(ts) > time.Minute {
				t.Errorf("ls line %d: updated %q, want a time of the last minute", i, f[len(f)-1])
			}
		}
	}

	code, stdout, stderr = runFunctions(t, append([]string{"ls", "--json", "--tenant", "acme"}, conn...)...)
	if code != 0 {
		t.Fatalf("ls --json --tenant acme: exit %d, stderr %s", code, stderr)
	}
	var rows []functionRow
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("ls --json: %v in %s", err, stdout)
	}
	type row struct {
		name, tenant string
		builtin      bool
		rev          uint64
	}
	var got []row
	for _, r := range rows {
		got = append(got, row{r.Name, r.Tenant, r.Builtin, r.Revision})
		if r.Builtin != r.Updated.IsZero() || r.Error != "" {
			t.Errorf("row %+v: updated or error wrong", r)
		}
	}
	wantRows := []row{{"echo", "", true, 0}, {"grader", "acme", false, 3}, {"python", "", false, 2}, {"tool", "acme", false, 4}}
	if !reflect.DeepEqual(got, wantRows) {
		t.Errorf("ls --tenant acme = %+v, want %+v", got, wantRows)
	}
	if !strings.Contains(stdout, `"name":"echo","builtin":true}`) {
		t.Errorf("ls --json: the built-in echo is not a bare {name, builtin}: %s", stdout)
	}
}

// TestFunctionsShow: show prints the definition that resolves, as brig
// deploy takes it: deploying it again changes nothing.
func TestFunctionsShow(t *testing.T) {
	t.Parallel()
	_, conn := functionsFixture(t)
	for _, tc := range []struct {
		args       []string
		want, note string
	}{
		{[]string{"grader"}, "image: brig/python:latest", ""},
		{[]string{"grader", "--tenant", "acme"}, "image: acme/grader:1", ""},
		{[]string{"python", "--tenant", "acme"}, "timeout_ms: 2000", "tenant acme has no python of its own; its jobs resolve this global one"},
		{[]string{"grader", "--json"}, `"image": "brig/python:latest"`, ""},
	} {
		code, stdout, stderr := runFunctions(t, append(append([]string{"show"}, tc.args...), conn...)...)
		if code != 0 || !strings.Contains(stdout, tc.want) || !strings.Contains(stderr, tc.note) || (tc.note == "" && stderr != "") {
			t.Errorf("show %v: exit %d, stdout %q, stderr %q; want %q and note %q", tc.args, code, stdout, stderr, tc.want, tc.note)
			continue
		}
		// What show prints, brig deploy takes back unchanged.
		deployArgs := append([]string{"-"}, conn...)
		tenant := ""
		if tc.args[len(tc.args)-1] == "acme" && tc.note == "" {
			deployArgs, tenant = append(deployArgs, "--tenant", "acme"), " for tenant acme"
		}
		code, out, stderr := runDeploy(t, stdout, deployArgs...)
		if want := fmt.Sprintf("unchanged %s%s (revision ", tc.args[0], tenant); code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("deploy of show %v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, stderr, want)
		}
	}

	// A built-in is shown, and said to be one.
	code, stdout, stderr := runFunctions(t, append([]string{"show", "python", "--tenant", "beta"}, conn...)...)
	if code != 0 || !strings.Contains(stdout, "timeout_ms: 2000") {
		t.Errorf("show python --tenant beta: exit %d, stdout %q; want the global python", code, stdout)
	}
	code, _, _ = runFunctions(t, append([]string{"rm", "python"}, conn...)...)
	if code != 0 {
		t.Fatalf("rm python: exit %d", code)
	}
	code, stdout, stderr = runFunctions(t, append([]string{"show", "python"}, conn...)...)
	if code != 0 || !strings.Contains(stdout, "scopes:\n- '*'\n") || !strings.Contains(stderr, "python is built in") {
		t.Errorf("show python: exit %d, stdout %q, stderr %q; want the built-in", code, stdout, stderr)
	}
	code, stdout, stderr = runFunctions(t, append([]string{"show", "echo"}, conn...)...)
	if code != exitNoFunction || stdout != "" || !strings.Contains(stderr, "echo is built in and runs no container") {
		t.Errorf("show echo: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, args := range [][]string{{"nope"}, {"tool"}, {"nope", "--tenant", "acme"}} {
		code, stdout, stderr := runFunctions(t, append(append([]string{"show"}, args...), conn...)...)
		if code != exitNoFunction || stdout != "" || !strings.Contains(stderr, "function not found") {
			t.Errorf("show %v: exit %d, stdout %q, stderr %q; want %d, NotFound", args, code, stdout, stderr, exitNoFunction)
		}
	}
}

// TestFunctionsRm: rm deletes a global definition or a tenant's own;
// unknown names and built-ins are refused with exit 1, and nothing
// changes.
func TestFunctionsRm(t *testing.T) {
	t.Parallel()
	js, conn := functionsFixture(t)
	keys := func() []string {
		t.Helper()
		kv, err := js.KeyValue(t.Context(), functions.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := kv.Keys(t.Context())
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			t.Fatal(err)
		}
		return ks
	}
	before := keys()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `function "nope": function not found`},
		{[]string{"echo"}, "echo is built in and cannot be removed"},
		{[]string{"echo", "--tenant", "acme"}, "tenant acme has no echo of its own, and the built-in echo cannot be removed"},
		{[]string{"tool"}, `function "tool": function not found`},
		{[]string{"python", "--tenant", "acme"}, "tenant acme has no python of its own"},
		{[]string{"nope", "--tenant", "acme"}, `function "acme.nope": function not found`},
		{[]string{"grader", "--tenant", "beta"}, "there is a global grader: brig functions rm grader without --tenant removes it"},
	} {
		code, stdout, stderr := runFunctions(t, append(append([]string{"rm"}, tc.args...), conn...)...)
		if code != exitNoFunction || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("rm %v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, stdout, stderr, exitNoFunction, tc.want)
		}
	}
	if after := keys(); !reflect.DeepEqual(after, before) {
		t.Fatalf("keys after refused rms = %v, want %v", after, before)
	}

	for _, tc := range []struct {
		args       []string
		want, note string
	}{
		{[]string{"grader", "--tenant", "acme"}, "removed grader for tenant acme\n", ""},
		{[]string{"grader"}, "removed grader\n", ""},
		{[]string{"python"}, "removed python\n", "the built-in python applies again"},
	} {
		code, stdout, stderr := runFunctions(t, append(append([]string{"rm"}, tc.args...), conn...)...)
		if code != 0 || stdout != tc.want || !strings.Contains(stderr, tc.note) {
			t.Errorf("rm %v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, stdout, stderr, tc.want)
		}
		if code, _, _ := runFunctions(t, append(append([]string{"rm"}, tc.args...), conn...)...); code != exitNoFunction {
			t.Errorf("second rm %v: exit %d, want %d", tc.args, code, exitNoFunction)
		}
	}
	if got := keys(); !reflect.DeepEqual(got, []string{"acme.tool"}) {
		t.Errorf("keys after rm = %v, want acme.tool only", got)
	}
	code, stdout, _ := runFunctions(t, append([]string{"ls", "--tenant", "acme"}, conn...)...)
	if code != 0 || strings.Contains(stdout, "grader") {
		t.Errorf("ls after rm: exit %d, stdout %q", code, stdout)
	}
}

// TestFunctionsNames: hostile names and tenants are usage errors (exit 2)
// that reach nothing: no key is read, written or deleted.
func TestFunctionsNames(t *testing.T) {
	t.Parallel()
	js, conn := functionsFixture(t)
	kv, err := js.KeyValue(t.Context(), functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	status := func() uint64 {
		st, err := kv.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st.Values()
	}
	before := status()
	hostile := []string{"", "*", ">", "a.b", "acme.grader", "grader.>", "../grader", "_x", "a b", "gräder", "a\nb", "a\x00b",
		strings.Repeat("a", 65), strings.Repeat("x", 10_000)}
	for _, name := range hostile {
		for _, sub := range []string{"show", "rm"} {
			code, stdout, stderr := runFunctions(t, append([]string{sub, name}, conn...)...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, "invalid function name") || len(stderr) > 400 {
				t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want 2 and a short message", sub, name, code, stdout, stderr)
			}
		}
	}
	for _, tenant := range []string{"Acme", "a.b", "*", ">", "acme.", "1acme", strings.Repeat("a", 21)} {
		for _, args := range [][]string{{"ls"}, {"show", "grader"}, {"rm", "grader"}} {
			code, _, stderr := runFunctions(t, append(append(args, "--tenant", tenant), conn...)...)
			if code != 2 || !strings.Contains(stderr, "invalid tenant name") {
				t.Errorf("%v --tenant %q: exit %d, stderr %q; want 2", args, tenant, code, stderr)
			}
		}
	}
	for _, args := range [][]string{{}, {"nope"}, {"ls", "x"}, {"show"}, {"rm"}, {"rm", "a", "b"}} {
		if code, _, _ := runFunctions(t, append(args, conn...)...); code != 2 {
			t.Errorf("brig functions %v: exit %d, want 2", args, code)
		}
	}
	if after := status(); after != before {
		t.Errorf("bucket values %d after hostile names, want %d", after, before)
	}
	for _, args := range [][]string{{"-h"}, {"ls", "-h"}, {"rm", "--help"}} {
		if code, _, _ := runFunctions(t, args...); code != 0 {
			t.Errorf("brig functions %v: exit %d, want 0", args, code)
		}
	}
}

// TestFunctionsNothingDeployed: before any deploy, ls lists the built-ins
// and looking creates no bucket.
func TestFunctionsNothingDeployed(t *testing.T) {
	t.Parallel()
	_, _, js, conn := deployServer(t)
	code, stdout, stderr := runFunctions(t, append([]string{"ls", "--json"}, conn...)...)
	if want := `[{"name":"echo","builtin":true},{"name":"python","builtin":true,"image":"brig/python:latest"}]` + "\n"; code != 0 || stdout != want {
		t.Errorf("ls --json: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
	}
	if code, stdout, _ := runFunctions(t, append([]string{"show", "python", "--tenant", "acme"}, conn...)...); code != 0 || !strings.Contains(stdout, "name: python") {
		t.Errorf("show python: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr := runFunctions(t, append([]string{"rm", "grader"}, conn...)...); code != exitNoFunction || !strings.Contains(stderr, "not found") {
		t.Errorf("rm grader: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runFunctions(t, append([]string{"rm", "python"}, conn...)...); code != exitNoFunction {
		t.Errorf("rm python: exit %d", code)
	}
	if _, err := js.KeyValue(t.Context(), functions.Bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("bucket after looking: %v, want none", err)
	}
}

// TestFunctionsInvalidStored: a value written around brig deploy is listed
// as invalid (exit 1, saying how to remove it), show refuses it, and rm
// removes it.
func TestFunctionsInvalidStored(t *testing.T) {
	t.Parallel()
	js, conn := functionsFixture(t)
	kv, err := js.KeyValue(t.Context(), functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "acme.broken", []byte(`{garbage}`)); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runFunctions(t, append([]string{"ls"}, conn...)...)
	if code != exitNoFunction || !strings.Contains(stdout, "broken") || !strings.Contains(stdout, "(invalid)") ||
		!strings.Contains(stderr, "brig functions rm broken --tenant acme") || !strings.Contains(stdout, "tool") {
		t.Errorf("ls: exit %d, stdout %q, stderr %q; want every function, broken marked, and how to remove it", code, stdout, stderr)
	}
	code, stdout, stderr = runFunctions(t, append([]string{"show", "broken", "--tenant", "acme"}, conn...)...)
	if code != exitNoFunction || stdout != "" || !strings.Contains(stderr, "is invalid") || !strings.Contains(stderr, "brig functions rm broken --tenant acme") {
		t.Errorf("show broken: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := runFunctions(t, append([]string{"rm", "broken", "--tenant", "acme"}, conn...)...); code != 0 {
		t.Errorf("rm broken: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runFunctions(t, append([]string{"ls"}, conn...)...); code != 0 {
		t.Errorf("ls after rm: exit %d, stderr %q", code, stderr)
	}
}

// TestFunctionsNeedsAdmin: a tenant's credential reads no bucket.
func TestFunctionsNeedsAdmin(t *testing.T) {
	t.Parallel()
	url, a := startAuthServer(t)
	client := mintCreds(t, a, auth.User{Role: auth.RoleClient, Tenant: auth.DefaultTenant})
	for _, args := range [][]string{{"ls"}, {"show", "python"}, {"rm", "grader"}} {
		code, stdout, stderr := runFunctions(t, append(args, "--server", url, "--creds", client)...)
		if code != exitBrig || stdout != "" || !strings.Contains(stderr, "needs an admin credential") {
			t.Errorf("%v with a client's credential: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// TestDeployUnchanged: deploying the same file again writes nothing: each
// definition says unchanged and keeps its revision.
func TestDeployUnchanged(t *testing.T) {
	t.Parallel()
	_, _, js, conn := deployServer(t)
	file := "../../examples/functions.yaml"
	if code, _, stderr := runDeploy(t, "", append(conn, file)...); code != 0 {
		t.Fatalf("deploy: exit %d, stderr %s", code, stderr)
	}
	code, stdout, stderr := runDeploy(t, "", append(conn, file)...)
	want := "unchanged grader (revision 1)\nunchanged cache-reader (revision 2)\nunchanged fast-grader (revision 3)\nunchanged agent-tool (revision 4)\n"
	if code != 0 || stdout != want {
		t.Errorf("second deploy: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
	}
	kv, err := js.KeyValue(t.Context(), functions.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(t.Context(), "grader"); err != nil || e.Revision() != 1 {
		t.Errorf("grader after an unchanged deploy: err %v; want revision 1", err)
		if err == nil {
			t.Errorf("revision %d", e.Revision())
		}
	}
	def := "name: fast-grader\nimage: brig/python:latest\ncommand: [python3, /work/main.py]\n"
	code, stdout, _ = runDeploy(t, def, append([]string{"-"}, conn...)...)
	if code != 0 || stdout != "deployed fast-grader (revision 5)\n" {
		t.Errorf("changed deploy: exit %d, stdout %q", code, stdout)
	}
	for i, want := range []string{"deployed fast-grader for tenant acme (revision 6)\n", "unchanged fast-grader for tenant acme (revision 6)\n"} {
		code, stdout, _ = runDeploy(t, def, append([]string{"-", "--tenant", "acme"}, conn...)...)
		if code != 0 || stdout != want {
			t.Errorf("tenant deploy %d: exit %d, stdout %q, want %q", i, code, stdout, want)
		}
	}
}
