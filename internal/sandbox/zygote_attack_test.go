package sandbox_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// Attacks on the zygote (docs/design.md §5.1): jobs and function
// definitions that try to make the zygote path differ from a plain exec
// of python3 /work/main.py in a way that matters. Each case runs the same
// job both ways and compares what brig reports.

// attackSpec is what a tenant's function may change from the built-in
// python's: env added to its env, its preload list (nil: the built-in's)
// and memory.
type attackSpec struct {
	env      map[string]string
	preload  []string
	memoryMB int64
}

// attackRun runs c under s with the zygote on or off and returns the
// outcome and the kind of sandbox it ran in.
func (rg *rig) attackRun(t *testing.T, c zygoteCase, s attackSpec, zygote bool) (*sandbox.Outcome, schema.SandboxKind) {
	t.Helper()
	work := rg.work("zyatk-"+strings.ReplaceAll(c.name, " ", "-"), c.code)
	work.Job.Stdin, work.Job.Files, work.Job.Env = c.stdin, c.files, c.env
	env := maps.Clone(work.Spec.Env)
	maps.Copy(env, s.env)
	work.Spec.Env = env
	work.Spec.Zygote, work.Spec.Preload = zygote, schema.PythonPreload()
	if s.preload != nil {
		work.Spec.Preload = s.preload
	}
	if s.memoryMB > 0 {
		work.Spec.Limits.MemoryMB = s.memoryMB
	}
	work.Spec.Limits.OutputBytes = 64 << 10
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatal(res.err)
	}
	res.out.Release()
	return res.out, res.kind
}

// attackPair runs c by a zygote in a prewarmed sandbox (after a cold job
// that makes its template) and by a plain exec.
func (rg *rig) attackPair(t *testing.T, c zygoteCase, s attackSpec) (plain, zyg *sandbox.Outcome) {
	t.Helper()
	rg.attackRun(t, c, s, true) // cold: makes the template warm
	rg.waitPrewarmed(1)
	zyg, kind := rg.attackRun(t, c, s, true)
	if kind != schema.SandboxPrewarmed {
		t.Fatalf("zygote run in a %s sandbox, want a prewarmed one", kind)
	}
	plain, _ = rg.attackRun(t, c, s, false)
	return plain, zyg
}

// wantZygoteUsed fails the test unless zyg's job was handed to a zygote:
// an attack that fell back to a plain exec showed nothing of it.
func wantZygoteUsed(t *testing.T, zyg *sandbox.Outcome) {
	t.Helper()
	if zyg.Exit == nil || !zyg.Exit.Zygote {
		t.Errorf("the job was not handed to a zygote: %s", describe(zyg))
	}
}

func outText(c *sandbox.Capture) string {
	s, _ := c.Result()
	return s
}

func describe(o *sandbox.Outcome) string {
	if o.Exit == nil {
		return fmt.Sprintf("no exit report (timed out %v, oom %v, container exit %d); init log %q",
			o.TimedOut, o.OOM, o.ContainerExitCode, outText(o.InitLog))
	}
	e := o.Exit
	return fmt.Sprintf("exit %d signal %d zygote %v oom %v(%d) result %s\nstdout: %q\nstderr: %q\ninit log: %q",
		e.ExitCode, e.Signal, e.Zygote, o.OOM, e.OOMKills, e.Result, clipStr(outText(o.Stdout)), clipStr(outText(o.Stderr)), outText(o.InitLog))
}

func clipStr(s string) string {
	if len(s) > 1500 {
		return s[:1500] + "..."
	}
	return s
}

// sameOutcome reports how zyg differs from plain in what brig reports.
func sameOutcome(t *testing.T, plain, zyg *sandbox.Outcome) {
	t.Helper()
	t.Logf("plain exec: %s", describe(plain))
	t.Logf("zygote:     %s", describe(zyg))
	if plain.Exit == nil || zyg.Exit == nil {
		if (plain.Exit == nil) != (zyg.Exit == nil) {
			t.Errorf("one reported an exit, the other did not")
		}
		return
	}
	pe, ze := plain.Exit, zyg.Exit
	if pe.ExitCode != ze.ExitCode || pe.Signal != ze.Signal || string(pe.Result) != string(ze.Result) || plain.OOM != zyg.OOM {
		t.Errorf("zygote: exit %d signal %d result %s oom %v; plain exec: exit %d signal %d result %s oom %v",
			ze.ExitCode, ze.Signal, ze.Result, zyg.OOM, pe.ExitCode, pe.Signal, pe.Result, plain.OOM)
	}
	if a, b := outText(zyg.Stdout), outText(plain.Stdout); a != b {
		t.Errorf("stdout differs:\nzygote: %q\nplain:  %q", clipStr(a), clipStr(b))
	}
	if a, b := outText(zyg.Stderr), outText(plain.Stderr); a != b {
		t.Errorf("stderr differs:\nzygote: %q\nplain:  %q", clipStr(a), clipStr(b))
	}
}

func attackRig(t *testing.T) *rig {
	return newRig(t, func(c *sandbox.Config) { c.Prewarm, c.Slots, c.PrewarmMax = 1, 1, 1 })
}

// A job's sys.stdout replaced by an object without a `closed` attribute:
// CPython's flush_std_files treats it as open and flushes it at exit (a
// flush that raises makes the exit status 120); the driver's _brig_flush
// skips it (getattr(f, "closed", True)).
func TestZygoteAttackStdoutWithoutClosed(t *testing.T) {
	rg := attackRig(t)
	for _, c := range []zygoteCase{
		{name: "buffering stdout without closed", code: `
import sys
class Buffered:
    def __init__(self, f): self.f, self.buf = f, []
    def write(self, s): self.buf.append(s); return len(s)
    def flush(self):
        self.f.write("".join(self.buf)); self.buf = []; self.f.flush()
sys.stdout = Buffered(sys.__stdout__)
print("written at exit by the flush")`},
		{name: "stdout flush fails without closed", code: `
import sys
class Broken:
    def __repr__(self): return "Broken()"
    def write(self, s): return len(s)
    def flush(self): raise OSError(28, "No space left on device")
sys.stdout = Broken()
print("lost")`},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			plain, zyg := rg.attackPair(t, c, attackSpec{})
			wantZygoteUsed(t, zyg)
			sameOutcome(t, plain, zyg)
		})
	}
}

// A job whose main.py is a zip archive (a zipapp; all bytes ASCII, so it
// travels in JSON): python3 /work/main.py runs the archive's __main__.py,
// the driver compiles the file's bytes as source.
func TestZygoteAttackZipapp(t *testing.T) {
	rg := attackRig(t)
	code := asciiZip(t, "import sys\nprint('zipapp ran', sys.argv[0])\n")
	plain, zyg := rg.attackPair(t, zygoteCase{name: "zipapp", code: code}, attackSpec{})
	wantZygoteUsed(t, zyg)
	sameOutcome(t, plain, zyg)
}

// asciiZip is a stored zip archive holding __main__.py, every byte < 0x80
// (a nonce in a comment until its CRC and header fields are).
func asciiZip(t *testing.T, main string) string {
	for nonce := 0; nonce < 1_000_000; nonce++ {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "__main__.py", Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "%s# %d\n", main, nonce)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if !slices.ContainsFunc(b, func(c byte) bool { return c >= 0x80 }) && utf8.Valid(b) {
			return string(b)
		}
	}
	t.Fatal("no ASCII zip found")
	return ""
}

// Start-up variables a function may set in its env: the zygote starts with
// them too, but `python3 -c DRIVER` is not `python3 SCRIPT`.
func TestZygoteAttackStartupVars(t *testing.T) {
	rg := attackRig(t)
	for _, c := range []struct {
		zygoteCase
		env map[string]string
	}{
		{zygoteCase{name: "safe path", code: `
import sys
print(sys.flags.safe_path, sys.path)
try:
    import brig
    print("brig client importable")
except ImportError as e:
    print("no brig client:", e)`, files: map[string]string{"helper.py": "X = 1\n"}}, map[string]string{"PYTHONSAFEPATH": "1"}},
		{zygoteCase{name: "safe path job module", code: `
try:
    import helper
    print("imported a module of /work despite safe_path")
except ImportError as e:
    print("not importable:", e)`, files: map[string]string{"helper.py": "X = 1\n"}}, map[string]string{"PYTHONSAFEPATH": "1"}},
		{zygoteCase{name: "inspect", stdin: "print('from the repl')\n", code: "print('main')\nraise ValueError('x')"},
			map[string]string{"PYTHONINSPECT": "1"}},
		{zygoteCase{name: "inspect ok", stdin: "print('from the repl')\nimport sys; sys.exit(4)\n", code: "print('main')"},
			map[string]string{"PYTHONINSPECT": "1"}},
		{zygoteCase{name: "import time", code: "print('main')"}, map[string]string{"PYTHONPROFILEIMPORTTIME": "1"}},
		{zygoteCase{name: "tracemalloc", code: `
import tracemalloc
print(tracemalloc.is_tracing(), tracemalloc.get_traced_memory()[0] > 2_000_000)`}, map[string]string{"PYTHONTRACEMALLOC": "1"}},
		{zygoteCase{name: "warnings error", code: "import json\nprint('main')"}, map[string]string{"PYTHONWARNINGS": "error"}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			plain, zyg := rg.attackPair(t, c.zygoteCase, attackSpec{env: c.env})
			if _, refused := c.env["PYTHONPROFILEIMPORTTIME"]; refused {
				// Import times differ run to run: what matters is that such a
				// function gets no zygote (noZygoteEnv), so nothing of a preload shows.
				if zyg.Exit == nil || zyg.Exit.Zygote {
					t.Errorf("a function with PYTHONPROFILEIMPORTTIME got a zygote: %s", describe(zyg))
				}
				return
			}
			sameOutcome(t, plain, zyg)
		})
	}
}

// Variables outside the start-up list that a job sets itself, and that a
// preloaded module may have read at import.
func TestZygoteAttackJobEnv(t *testing.T) {
	rg := attackRig(t)
	c := zygoteCase{name: "job env", env: map[string]string{"TMPDIR": "/work", "COLUMNS": "33", "LOCPATH": "/nonexistent", "TZ": "EST5EDT"},
		code: `
import tempfile, shutil, time, datetime, locale, os
print(tempfile.gettempdir(), shutil.get_terminal_size(), time.tzname, locale.getlocale())
print(datetime.datetime(2020, 7, 1, 12).astimezone().tzname())
print(sorted(os.environb)[:3])`}
	plain, zyg := rg.attackPair(t, c, attackSpec{})
	wantZygoteUsed(t, zyg)
	sameOutcome(t, plain, zyg)
}

// The preload's memory is the job's: a job that fits its memory_mb by a
// plain exec may not in a zygote.
func TestZygoteAttackMemoryHeadroom(t *testing.T) {
	rg := attackRig(t)
	c := zygoteCase{name: "memory", code: `
b = bytearray(30 << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
print("allocated 30 MiB")`}
	plain, zyg := rg.attackPair(t, c, attackSpec{memoryMB: 40})
	wantZygoteUsed(t, zyg)
	sameOutcome(t, plain, zyg)
}

// A preload that is OOM-killed before the job (a tenant's long list at a
// small memory_mb) leaves Docker's OOMKilled set on the container: a job
// that then ends by a signal is reported as OOM although it used no
// memory.
func TestZygoteAttackPrewarmOOM(t *testing.T) {
	rg := attackRig(t)
	heavy := append(schema.PythonPreload(), "asyncio", "email.message", "http.client", "unittest", "pydoc",
		"xml.dom.minidom", "sqlite3", "ssl", "multiprocessing", "concurrent.futures", "http.server", "xmlrpc.client",
		"tarfile", "zipfile", "inspect", "ast", "difflib", "pprint", "pickle", "uuid", "socket", "selectors")
	c := zygoteCase{name: "prewarm oom", code: "import os, signal\nprint('tiny job', flush=True)\nos.kill(os.getpid(), signal.SIGTERM)"}
	plain, zyg := rg.attackPair(t, c, attackSpec{memoryMB: 16, preload: heavy})
	sameOutcome(t, plain, zyg)
}

// A job that sets the smallest memory_mb itself, on the built-in python:
// the built-in preload alone nearly fills it.
func TestZygoteAttackSmallMemoryJob(t *testing.T) {
	rg := attackRig(t)
	for _, c := range []zygoteCase{
		{name: "small print", code: "print('hi')"},
		{name: "small alloc", code: "b = bytearray(4 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('4 MiB')"},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			plain, zyg := rg.attackPair(t, c, attackSpec{memoryMB: schema.MinMemoryMB})
			wantZygoteUsed(t, zyg)
			sameOutcome(t, plain, zyg)
		})
	}
}

// A tenant's preload of modules with import-time side effects: what they
// print lands in the job's output.
func TestZygoteAttackPreloadSideEffects(t *testing.T) {
	rg := attackRig(t)
	c := zygoteCase{name: "noisy preload", code: "print('main')"}
	plain, zyg := rg.attackPair(t, c, attackSpec{preload: []string{"this", "__hello__", "imp", "antigravity", "__main__", "main"}})
	sameOutcome(t, plain, zyg)
}

// A job whose files land while the zygote still imports its preload: the
// driver's sys.path[0] is ” (cwd, /work), so a job file named like a
// later preload module is imported by the driver before the job's env,
// and one that fails to import escapes the shadow check. A plain exec
// never runs it (main.py does not import it).
func TestZygoteAttackPreloadRace(t *testing.T) {
	rg := attackRig(t)
	slow := append([]string{"asyncio", "email.message", "http.client", "unittest", "pydoc", "xml.dom.minidom",
		"sqlite3", "multiprocessing", "concurrent.futures", "http.server", "xmlrpc.client", "tarfile", "zipfile",
		"difflib", "pprint", "pickle", "uuid"}, schema.PythonPreload()...)
	slow = append(slow, "colorsys")
	c := zygoteCase{name: "race", files: map[string]string{"colorsys.py": `
import os
open("/work/out/result.json", "w").write('{"ran_before_job": "%s"}' % os.environ.get("BRIG_JOB_ID", "<no job env yet>"))
raise ImportError("skip me")
`}, code: "import os\nprint('result before main ran:', os.path.exists('/work/out/result.json'))"}
	s := attackSpec{preload: slow}
	rg.attackRun(t, c, s, true) // cold: makes the template warm
	// Take the prewarmed sandbox the moment it exists.
	deadline := time.Now().Add(time.Minute)
	for p, _ := rg.runner.Sizes(); p == 0; p, _ = rg.runner.Sizes() {
		if time.Now().After(deadline) {
			t.Fatal("no prewarmed sandbox")
		}
		time.Sleep(time.Millisecond)
	}
	zyg, kind := rg.attackRun(t, c, s, true)
	if kind != schema.SandboxPrewarmed {
		t.Fatalf("ran in a %s sandbox", kind)
	}
	plain, _ := rg.attackRun(t, c, s, false)
	sameOutcome(t, plain, zyg)
}

// A tenant's preload of a module that runs a program at import
// (venv.__main__ has no __main__ guard): it runs with the driver's argv
// (-c /work/main.py MODULE...) in /work before the job, and makes
// /work/main.py a directory, so the init cannot lay out the job's code.
func TestZygoteAttackPreloadVenv(t *testing.T) {
	rg := attackRig(t)
	c := zygoteCase{name: "venv preload", code: "print('main')"}
	plain, zyg := rg.attackPair(t, c, attackSpec{preload: []string{"venv.__main__"}})
	sameOutcome(t, plain, zyg)
}

// The same, the job arriving once the preload has run: the init finds
// /work/main.py taken.
func TestZygoteAttackPreloadVenvSettled(t *testing.T) {
	rg := attackRig(t)
	c := zygoteCase{name: "venv preload settled", code: "print('main')"}
	s := attackSpec{preload: []string{"venv.__main__"}}
	rg.attackRun(t, c, s, true)
	rg.waitPrewarmed(1)
	time.Sleep(3 * time.Second)
	zyg, kind := rg.attackRun(t, c, s, true)
	if kind != schema.SandboxPrewarmed {
		t.Fatalf("ran in a %s sandbox", kind)
	}
	plain, _ := rg.attackRun(t, c, s, false)
	sameOutcome(t, plain, zyg)
}
