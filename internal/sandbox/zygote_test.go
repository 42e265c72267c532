package sandbox_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/brig-dev/brig/internal/initproto"
	"github.com/brig-dev/brig/internal/sandbox"
	"github.com/brig-dev/brig/schema"
)

// zygoteCase is one job of the semantics suite (docs/design.md §5.1): run
// by a plain exec of python3 /work/main.py and by a zygote, it must give
// the same stdout, stderr, exit code, signal and result.
type zygoteCase struct {
	name, code, stdin string
	files, env        map[string]string
	args              string
	// plain: the zygote must hand this job to a plain exec (a start-up
	// variable or a shadowed module), which the suite checks too.
	plain bool
}

var zygoteCases = []zygoteCase{
	{name: "main module", code: `
import sys, __main__
print(__name__, __file__, __cached__, __spec__, __package__, __doc__)
print(list(globals()), type(__builtins__).__name__, __annotations__)
print(type(__loader__).__name__, __loader__.name, __loader__.path)
print(__main__ is sys.modules[__name__], __main__.__dict__ is globals())
x: int = 1
print(__annotations__)`},
	{name: "argv path cwd", code: `
import sys, os
print(sys.argv, sys.orig_argv, sys.executable, os.getcwd(), os.getppid())
print(sys.path)
print(sys.flags)
print(sorted(os.listdir("/proc/self/fd")))`},
	{name: "stdin", stdin: "hello\nwörld", code: `
import sys
print(repr(sys.stdin.read()), sys.stdin.isatty(), sys.stdin.encoding)
print(sys.stdout.encoding, sys.stdout.line_buffering, sys.stdout.write_through, sys.stderr.errors)
print(repr(input.__doc__[:10]))`},
	{name: "files and args", args: `{"a": [1, 2]}`, files: map[string]string{"data/x.txt": "xx", "helper.py": "def f():\n    return 1 / 0\n"},
		code: `
import os, json
print(json.load(open("/work/args.json")), sorted(os.listdir("/work")), open("data/x.txt").read())
import helper
print(helper.__file__)
json.dump({"ok": True}, open("/work/out/result.json", "w"))
helper.f()`},
	{name: "env", env: map[string]string{"FOO": "bar", "TZ": "Asia/Tokyo", "EMPTY": ""}, code: `
import os, subprocess, sys, time
print(sorted((k, v) for k, v in os.environ.items() if k != "BRIG_TOKEN"))
print(time.tzname, os.environ.get("FOO"), os.getenv("EMPTY"))
sys.stdout.flush()
subprocess.run("env | grep -v BRIG_TOKEN | sort", shell=True, check=True)
subprocess.run([sys.executable, "-c", "import os; print(os.environ['FOO'], os.environ['TZ'])"], check=True)`},
	{name: "exit code", code: "import sys\nprint('bye')\nsys.exit(3)"},
	{name: "exit message", code: "import sys\nsys.exit('it went wrong')"},
	{name: "exit none", code: "raise SystemExit"},
	{name: "exit big", code: "raise SystemExit(300)"},
	{name: "exit builtin", code: "exit(4)"},
	{name: "os exit", code: "import os, sys\nsys.stdout.write('lost?')\nos._exit(5)"},
	{name: "uncaught", code: `
def inner():
    raise ValueError("bad value")

def outer():
    try:
        inner()
    except ValueError as e:
        raise RuntimeError("wrapped") from e

print("before", flush=True)
outer()`},
	{name: "uncaught in exec", code: "exec(compile('1/0', 'dyn', 'exec'))"},
	{name: "exception notes and context", code: `
try:
    {}["k"]
except KeyError as e:
    e.add_note("a note")
    raise`},
	{name: "syntax error", code: "print('x')\nx = (\n"},
	{name: "indentation error", code: "if True:\nprint(1)\n"},
	{name: "excepthook", code: `
import sys, traceback
def hook(t, v, tb):
    print("hook", t.__name__, v, [f.name for f in traceback.extract_tb(tb)], v.__traceback__ is tb)
    print(sys.last_value is v, sys.last_traceback is tb)
sys.excepthook = hook
def f():
    raise OSError(2, "nope")
f()`},
	{name: "keyboard interrupt", code: "print('x', flush=True)\nraise KeyboardInterrupt"},
	{name: "sigint", code: "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)"},
	{name: "sigterm", code: "import os, signal, time\nprint('a', flush=True)\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(5)"},
	{name: "sigterm handled", code: `
import os, signal, sys
signal.signal(signal.SIGTERM, lambda s, f: sys.exit(7))
os.kill(os.getpid(), signal.SIGTERM)`},
	{name: "atexit", code: `
import atexit, sys
atexit.register(print, "first registered")
atexit.register(lambda: print("second registered", file=sys.stderr))
print("main done")
sys.exit(2)`},
	{name: "atexit after exception", code: "import atexit\natexit.register(print, 'cleanup')\nraise TypeError('t')"},
	{name: "buffered output", code: "import sys\nsys.stdout.write('no newline')\nsys.stderr.write('err no newline')\nprint('x' * 20000, end='')"},
	{name: "threads", code: `
import threading, time
def late():
    time.sleep(0.2)
    print("non-daemon done", flush=True)
def forever():
    while True:
        time.sleep(1)
threading.Thread(target=late).start()
threading.Thread(target=forever, daemon=True).start()
threading.Thread(target=lambda: 1 / 0).start()
print("main done", flush=True)`},
	{name: "subprocesses", code: `
import os, subprocess, sys
print(subprocess.run([sys.executable, "-c", "import sys; print(sys.argv, sys.path[0])"], capture_output=True, text=True).stdout, end="")
sys.stdout.flush()
os.system("echo from the shell; ls /proc/self/fd | wc -l")
print(subprocess.run(["cat"], input="piped", capture_output=True, text=True).stdout)`},
	{name: "pickle main", code: `
import pickle, __main__
class Point:
    def __init__(self, x): self.x = x
p = pickle.loads(pickle.dumps(Point(3)))
print(type(p), p.x, __main__.Point is Point, pickle.dumps(Point(1), protocol=4)[:40])`},
	{name: "warnings", code: `
import warnings
warnings.warn("careful")
def old():
    warnings.warn("old is deprecated", DeprecationWarning, stacklevel=2)
old()
warnings.warn("again", RuntimeWarning)`},
	{name: "inspect source", code: `
import inspect
def f():
    return 42
print(inspect.getsource(f), inspect.getfile(f))`},
	{name: "exit huge", code: "import sys\nsys.exit(2 ** 64)"},
	{name: "exit wraps", code: "import sys\nsys.exit(2 ** 32 + 3)"},
	{name: "exit negative", code: "import sys\nsys.exit(-2)"},
	{name: "exit bool", code: "import sys\nsys.exit(True)"},
	{name: "exit tuple", code: "import sys\nsys.exit(1, 2)"},
	{name: "unclosed files at exit", code: `
f = open("/work/out/result.json", "w")
f.write('{"unclosed": true}')
log = open("/work/log.txt", "w")
log.write("buffered")
print("main done")`},
	{name: "del at exit", code: `
class Loud:
    def __del__(self):
        print("main object finalised", flush=True)
obj = Loud()
print("main done")`},
	{name: "private del at exit", code: `
import sys
class Loud:
    def __del__(self):
        sys.stdout.write("private object finalised\n")
_obj = Loud()`},
	{name: "generator at exit", code: `
def gen():
    try:
        yield 1
    finally:
        print("generator closed")
g = gen()
next(g)`},
	{name: "weakref finalize at exit", code: `
import weakref
class Thing: pass
t = Thing()
weakref.finalize(t, print, "finalize callback")`},
	{name: "module object at exit", files: map[string]string{"mod.py": `
class Bye:
    def __del__(self):
        print("module object finalised")
keep = Bye()
`}, code: "import mod\nprint('main done')"},
	{name: "finalised after exception", code: `
class Loud:
    def __del__(self):
        print("finalised")
x = Loud()
f = open("/work/out/result.json", "w")
f.write("[1, 2]")
raise RuntimeError("boom")`},
	{name: "stdout replaced", code: `
import sys, io
sys.stdout.write("to the real stdout, unflushed")
sys.stdout = io.StringIO()
print("lost")`},
	{name: "stdout closed", code: "import sys\nprint('x')\nsys.stdout.close()"},
	{name: "exit in atexit", code: "import atexit, sys\natexit.register(sys.exit, 9)\natexit.register(print, 'last')\nprint('main')"},
	{name: "atexit raises", code: `
import atexit
class Failing:
    def __call__(self): 1 / 0
    def __repr__(self): return "Failing()"
atexit.register(Failing())
print('main')`},
	{name: "atexit cleared", code: `
import atexit
class Loud:
    def __del__(self):
        print("finalised by the interpreter")
atexit._clear()
x = Loud()
print("main")`},
	{name: "keyboard interrupt with atexit", code: "import atexit\natexit.register(print, 'ran')\nraise KeyboardInterrupt"},
	{name: "gc state", code: `
import gc
print(gc.isenabled(), gc.get_threshold())
class Node:
    def __init__(self): self.me = self
    def __del__(self): print("cycle collected")
Node()
print(gc.collect() >= 1)`},
	{name: "junk in sys modules", code: `
import sys
class Raising:
    @property
    def __dict__(self):
        raise RuntimeError("no dict for you")
    def __del__(self):
        print("junk finalised")
sys.modules["junk"] = Raising()
sys.modules["none"] = None
sys.modules["number"] = 42
print("main")`},
	{name: "sys modules replaced", code: `
import sys
class Loud:
    def __del__(self):
        print("finalised")
x = Loud()
sys.modules = {}
print("main")`},
	{name: "thread prints through exit", code: `
import threading, time, sys
def chatter():
    time.sleep(0.05)
    for i in range(3):
        print("tick", i, flush=True)
        time.sleep(0.01)
t = threading.Thread(target=chatter)
t.start()
print("main done", flush=True)`},
	{name: "big output at exit", code: `
class Loud:
    def __del__(self):
        print("y" * 100000)
x = Loud()
print("x" * 100000, end="")`},
	{name: "background process left", code: `
import subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print("started a sleeper")`},
	{name: "init memory and environ", code: `
for path in ("/proc/1/environ", "/proc/1/mem", "/proc/1/cmdline"):
    try:
        open(path, "rb").read(64)
        print(path, "readable")
    except OSError as e:
        print(path, type(e).__name__)`},
	{name: "hash seed set", env: map[string]string{"PYTHONHASHSEED": "7"}, plain: true, code: `
import sys
print(hash("abc"), sys.flags.hash_randomization, "decimal" in sys.modules)`},
	{name: "pythonpath set", env: map[string]string{"PYTHONPATH": "/work/lib"}, plain: true, code: `
import sys
print(sys.path, "decimal" in sys.modules)`},
	{name: "shadowed module", files: map[string]string{"json.py": "NAME = 'mine'\n"}, plain: true, code: `
import sys, json
print(json.NAME, "decimal" in sys.modules)`},
	{name: "no script", files: map[string]string{"other.py": ""}, plain: true},
}

// TestZygoteSemantics runs every case both ways: a plain exec (zygote:
// false) and a prewarmed sandbox's zygote.
func TestZygoteSemantics(t *testing.T) {
	// One slot: each template's depth stays at 1 however close its jobs
	// come (it grows above Prewarm only into free slots).
	rg := newRig(t, func(c *sandbox.Config) { c.Prewarm, c.Slots, c.PrewarmMax = 1, 1, 2 })
	// Each template's first job starts cold, and leaves a prewarmed one.
	rg.zygoteRun(t, zygoteCases[0], false, false)
	rg.zygoteRun(t, zygoteCases[0], true, false)
	for _, c := range zygoteCases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			rg.waitPrewarmed(2)
			plain := rg.zygoteRun(t, c, false, true)
			zyg := rg.zygoteRun(t, c, true, true)
			if !c.plain && !zyg.Exit.Zygote {
				t.Fatalf("the job was not handed to a zygote: %+v", zyg.Exit)
			}
			if plain.Exit.Zygote {
				t.Fatalf("zygote: false, yet the job ran in one")
			}
			pe, ze := plain.Exit, zyg.Exit
			if pe.ExitCode != ze.ExitCode || pe.Signal != ze.Signal || string(pe.Result) != string(ze.Result) {
				t.Errorf("exit %d signal %d result %s, plain exec: exit %d signal %d result %s",
					ze.ExitCode, ze.Signal, ze.Result, pe.ExitCode, pe.Signal, pe.Result)
			}
			for _, s := range []struct {
				name      string
				got, want *sandbox.Capture
			}{{"stdout", zyg.Stdout, plain.Stdout}, {"stderr", zyg.Stderr, plain.Stderr}} {
				got, _ := s.got.Result()
				want, _ := s.want.Result()
				if got != want {
					t.Errorf("%s:\n%s\nplain exec:\n%s", s.name, got, want)
				}
				if testing.Verbose() {
					t.Logf("%s:\n%s", s.name, got)
				}
			}
		})
	}
}

// zygoteRun runs case c with the zygote on or off, in a prewarmed sandbox
// when warm.
func (rg *rig) zygoteRun(t *testing.T, c zygoteCase, zygote, warm bool) *sandbox.Outcome {
	t.Helper()
	work := rg.work("zygote-"+strings.ReplaceAll(c.name, " ", "-"), c.code)
	work.Job.Stdin, work.Job.Files, work.Job.Env = c.stdin, c.files, c.env
	if c.args != "" {
		work.Job.Args = json.RawMessage(c.args)
	}
	work.Spec.Zygote, work.Spec.Preload = zygote, schema.PythonPreload()
	work.Spec.Limits.OutputBytes = 64 << 10
	res := rg.run(t.Context(), work)
	if res.err != nil {
		t.Fatal(res.err)
	}
	res.out.Release()
	if res.out.Exit == nil {
		log, _ := res.out.InitLog.Result()
		t.Fatalf("no exit report; init log %q", log)
	}
	if warm && res.kind != schema.SandboxPrewarmed {
		t.Fatalf("ran in a %s sandbox, want a prewarmed one", res.kind)
	}
	return res.out
}

// wantZygote checks a prewarmed container's init command line: a zygote
// of spec's command and preload list, with start-up variables only, none
// of brig's (the token and the job's id come with the job).
func (rg *rig) wantZygote(entrypoint []string, spec schema.RunSpec) {
	rg.t.Helper()
	if len(entrypoint) != 4 || entrypoint[0] != sandbox.InitPath || entrypoint[1] != "sandbox-init" {
		rg.t.Fatalf("entrypoint %q; want brig's init and its zygote", entrypoint)
	}
	z, err := initproto.DecodeZygote(entrypoint[3])
	if err != nil {
		rg.t.Fatal(err)
	}
	if !spec.Zygote || !slices.Equal(z.Command, spec.Command) || !slices.Equal(z.Preload, spec.Preload) {
		rg.t.Errorf("zygote %+v for spec zygote %v command %q", z, spec.Zygote, spec.Command)
	}
	if strings.Contains(entrypoint[3], "BRIG_") {
		rg.t.Errorf("zygote %s holds brig's variables", entrypoint[3])
	}
}
