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


def _brig_prepare(main0):
    import sys, os
    path, preload = sys.argv[1], sys.argv[2:]
    for name in preload:
        try:
            __import__(name)
        except Exception:
            pass
    data = b""
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        data += chunk
    os.close(3)
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
    if shadowed or not os.path.isfile(path):
        # A job file named like a loaded module would be imported in its
        # place by a fresh interpreter; a missing script is its error.
        os.execv(sys.executable, argv)
    sys.argv[:] = [path]
    sys.orig_argv[:] = argv
    sys.path[0] = work
    with open(path, "rb") as f:
        source = f.read()
    mod = type(sys)("__main__")
    d = mod.__dict__
    d.update(main0)
    d["__annotations__"] = {}
    d["__loader__"] = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path)
    d["__file__"] = path
    d["__cached__"] = None
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
except BaseException as _brig_e:
    _brig_hook(_brig_e)
    raise
