# brig's zygote driver (docs/design.md §5.1), run by the init as
#   python3 -c DRIVER SCRIPT MODULE...
# in a prewarmed single-use container before its job exists. It imports the
# preload modules, waits for the job's env on fd 3 (the init writes it once
# the job's files are in place, then closes the pipe), and runs SCRIPT as
# `python3 SCRIPT` would: a fresh __main__, the job's argv, path and env,
# and tracebacks without this driver's frames. It holds nothing secret: the
# job gets all it reads. The init reaps this process and reports its real
# exit status.
_brig_main0 = dict(globals())
_brig_status = None  # how the job ended: an exit status, or "sigint"
_brig_before = ()  # the modules loaded before the job
_brig_modules = {}  # the interpreter's own sys.modules, whatever the job rebinds


def _brig_flush(sys):
    # CPython's flush_std_files: sys.stdout, then sys.stderr, each unless
    # it is None or its `closed` is true (a missing or failing `closed`
    # counts as open). False when a flush raises.
    for f in (getattr(sys, "stdout", None), getattr(sys, "stderr", None)):
        if f is None:
            continue
        try:
            closed = bool(f.closed)
        except BaseException:
            closed = False
        if closed:
            continue
        try:
            f.flush()
        except BaseException:
            return False
    return True


def _brig_exit(gc=__import__("gc"), _signal=__import__("_signal")):
    # Registered before anything else, so it runs last of the atexit
    # functions, after the interpreter joined the job's threads, printed its
    # traceback and ran the job's own atexit functions. It finishes the job
    # as CPython's Py_FinalizeEx would for what the job made (flush the
    # standard streams; finalise the objects its modules hold: __del__,
    # unclosed files flushed, generators closed), then exits with the
    # status the interpreter would have used, skipping the teardown of the
    # preloaded modules (docs/design.md §5.1). A flush that fails returns
    # to CPython's own finalisation, which reports it.
    import sys, os, builtins
    status = _brig_status
    if status is None or not _brig_before or not _brig_flush(sys):
        return
    try:
        _brig_finalise(sys, builtins, gc)
    except BaseException:
        return  # a job that broke sys or its modules: CPython's own end
    if not _brig_flush(sys):
        return
    if status == "sigint":
        # As CPython ends after an unhandled KeyboardInterrupt.
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGINT)
        status = 128 + _signal.SIGINT
    os._exit(status)


def _brig_finalise(sys, builtins, gc):
    # finalize_modules_delete_special.
    builtins._ = None
    for name in ("path", "argv", "ps1", "ps2", "last_type", "last_value", "last_traceback",
                 "path_hooks", "path_importer_cache", "meta_path", "__interactive_hook__"):
        setattr(sys, name, None)
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
    # The modules the job loaded, newest first, are cleared as
    # _PyModule_ClearDict does (single-underscore names first, then all but
    # __builtins__), so that what they hold is finalised by reference
    # count in that order; then one collection for the cycles.
    modules = _brig_modules
    for name in reversed([name for name in modules if name not in _brig_before]):
        d = getattr(modules[name], "__dict__", None)
        if type(d) is not dict:
            continue
        for k in [k for k in d if type(k) is str and k[:1] == "_" and k[1:2] != "_"]:
            d[k] = None
        for k in [k for k in d if type(k) is not str or k != "__builtins__"]:
            d[k] = None
    d = None
    gc.collect()


def _brig_exit_status(code):
    # The status CPython's handle_system_exit gives SystemExit(code).
    if code is None:
        return 0
    if isinstance(code, int):
        return (code if -(1 << 63) <= code < 1 << 63 else -1) & 0xFF
    return 1


__import__("atexit").register(_brig_exit)


def _brig_prepare(main0):
    import sys, os
    path, preload = sys.argv[1], sys.argv[2:]
    # The preload runs before any job and must touch nothing of one: no
    # argv of the driver's (a module that runs a program at import), no
    # /work on the path (''), stdio on /dev/null (what it prints, or reads
    # of the job's stdin), and nothing it raises, SystemExit included.
    del sys.argv[1:]
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    for name in preload:
        try:
            __import__(name)
        except BaseException:
            pass
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            pass
    for fd, dup in zip((0, 1, 2), saved):
        os.dup2(dup, fd)
        os.close(dup)
    # What the preload made is never garbage the job's collections need
    # to scan again, as in a fork server: gc.freeze (docs/design.md §5.1).
    __import__("gc").freeze()
    os.write(4, b"r")  # ready: the init may hand it a job now
    os.close(4)
    data = b""
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        data += chunk
    os.close(3)
    global _brig_before, _brig_modules
    env = [kv.partition(b"=") for kv in data.split(b"\0") if kv]
    os.environ.clear()
    for k, _, v in env:
        os.environ[os.fsdecode(k)] = os.fsdecode(v)
    if "time" in sys.modules:
        sys.modules["time"].tzset()
    argv = [sys.orig_argv[0], path]
    work = os.path.dirname(path)
    loaded = {m.partition(".")[0] for m in sys.modules}
    shadowed = any(e.partition(".")[0] in loaded for e in os.listdir(work))
    try:
        sys.modules["zipimport"].zipimporter(path)
        archive = True
    except Exception:
        archive = False
    if shadowed or archive or not os.path.isfile(path):
        # A job file named like a loaded module would be imported in its
        # place by a fresh interpreter; a zip archive runs its __main__.py;
        # a missing script is its error.
        os.execv(sys.executable, argv)
    sys.argv[:] = [path]
    sys.orig_argv[:] = argv
    if not getattr(sys.flags, "safe_path", False):
        sys.path.insert(0, work)
    with open(path, "rb") as f:
        source = f.read()
    mod = type(sys)("__main__")
    d = mod.__dict__
    d.update(main0)
    d["__annotations__"] = {}
    d["__loader__"] = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path)
    d["__file__"] = path
    d["__cached__"] = None
    _brig_before, _brig_modules = set(sys.modules) - {"__main__"}, sys.modules
    sys.modules["__main__"] = mod
    return compile(source, path, "exec", dont_inherit=True), d


def _brig_hook(e, g=globals()):
    # The traceback printed must start at the script: drop this driver's
    # frames, for whatever sys.excepthook the job left.
    import sys
    if isinstance(e, SystemExit):
        return  # exits as from the script: no traceback
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_globals is g:
        tb = tb.tb_next
    hook = sys.excepthook

    def once(t, v, _tb):
        sys.excepthook = hook
        if v is e:
            v.__traceback__ = tb
            sys.last_traceback = tb
        hook(t, v, tb)

    sys.excepthook = once


try:
    exec(*_brig_prepare(_brig_main0))
    _brig_status = 0
except BaseException as _brig_e:
    if isinstance(_brig_e, SystemExit):
        _brig_status = _brig_exit_status(_brig_e.code)
    else:
        _brig_status = "sigint" if isinstance(_brig_e, KeyboardInterrupt) else 1
    _brig_hook(_brig_e)
    raise
