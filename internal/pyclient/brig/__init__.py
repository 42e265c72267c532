"""brig: a job's client for the shared resources brig grants it.

A job reaches dicts, queues and other functions only through its gateway: a
unix socket (``$BRIG_GATEWAY``, default ``/run/brig/gateway.sock``) that
checks the job's credential (``$BRIG_TOKEN``) on every call::

    import brig

    cache = brig.Dict("cache")
    cache.put("answer", {"value": 42})
    cache.get("answer")            # {'value': 42}; None when missing
    cache.delete("answer")

    jobs = brig.Queue("jobs")
    jobs.put({"n": 1})
    jobs.get(timeout=5)            # {'n': 1}; None when nothing came in 5 s

    ev = brig.call("resize", args={"w": 10}, timeout=30)
    ev["status"], ev.get("output")

Values are anything ``json.dumps`` accepts (NaN and infinities excepted);
they come back as ``json.loads`` makes them. A stored JSON ``null`` and a
missing key both read as None.

Errors: every failure the gateway reports raises ``BrigError`` (``.type``
is ``"InvalidRequest"``, ``"Timeout"`` or ``"Infrastructure"``, and
``.message`` says why), or one of its subclasses (so ``except
brig.BrigError`` catches every gateway error):

- ``AuthError``: a denied call, with ``.resource`` (e.g. ``"dict:cache"``),
  ``.action`` (e.g. ``"write"``) and ``.message``; brig records every
  denial in the job's events.
- ``QuotaExceeded``: the call would go past one of the job's limits, named
  in ``.message``: a full dict or queue (a function's ``quotas``: dict_mb,
  dict_keys, queue_mb, queue_messages; 64 MiB and 100000 by default), more
  dicts and queues created than ``quotas.resources`` (8), more child calls
  than ``quotas.calls`` (64), or more than 16 connections to the gateway.
  Nothing was written; the job may go on (e.g. delete keys and retry).
- ``RateLimited``: the job sent more than 200 requests a second (after a
  burst of 400); the request was not performed and may be sent again
  after a pause.

A value that cannot be encoded as JSON raises TypeError or ValueError before
anything is sent.

The module keeps one connection to the gateway, opened at the first call and
reused (calls from several threads take turns). The token is read from the
environment at every call.

Only the standard library is used.
"""

import itertools
import json
import os
import socket
import threading

__all__ = ["AuthError", "BrigError", "Dict", "Queue", "QuotaExceeded", "RateLimited", "call"]

# The protocol's constants, as Go's internal/gatewayproto defines them
# (Socket, MaxLineBytes); a test holds them equal.
_DEFAULT_SOCKET = "/run/brig/gateway.sock"
# The gateway reads at most this many bytes per request line and closes the
# connection on a longer one; such a request is refused here instead.
_MAX_LINE_BYTES = 1 << 20


class BrigError(Exception):
    """A call the gateway could not perform.

    ``type`` is one of ``"InvalidRequest"`` (the request was wrong: bad name,
    key or value), ``"Timeout"`` (the call ran out of time),
    ``"Infrastructure"`` (brig could not perform it, or the gateway cannot be
    reached), ``"AuthError"``, ``"QuotaExceeded"`` or ``"RateLimited"`` (see
    the subclasses of those names); ``message`` says why.
    """

    def __init__(self, type, message):
        super().__init__(type, message)
        self.type = type
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.type, self.message)


class AuthError(BrigError):
    """The job's credential does not allow the call.

    ``resource`` is what was asked for (``"dict:<name>"``,
    ``"queue:<name>"`` or ``"function:<name>"``), ``action`` what was to be
    done with it (``read``, ``write``, ``put``, ``get`` or ``call``) and
    ``message`` why it was refused. A subclass of BrigError.
    """

    def __init__(self, resource, action, message):
        BrigError.__init__(self, "AuthError", message)
        self.args = (resource, action, message)
        self.resource = resource
        self.action = action

    def __str__(self):
        return "AuthError: %s %s: %s" % (self.resource, self.action, self.message)


class QuotaExceeded(BrigError):
    """The call would go past one of the job's limits; ``message`` names it.

    A full dict or queue, too many dicts and queues created, too many child
    calls, or too many connections to the gateway. Nothing was written. A
    subclass of BrigError with ``type`` ``"QuotaExceeded"``.
    """

    def __init__(self, message):
        BrigError.__init__(self, "QuotaExceeded", message)


class RateLimited(BrigError):
    """The job sent requests faster than the gateway takes them (200 a
    second, after a burst of 400). The request was not performed; send it
    again after a pause. A subclass of BrigError with ``type``
    ``"RateLimited"``.
    """

    def __init__(self, message):
        BrigError.__init__(self, "RateLimited", message)


def _error(err):
    """The exception for a response's error object."""
    typ = err.get("type") or "Infrastructure"
    message = err.get("message") or "the gateway refused the call"
    if typ == "AuthError":
        return AuthError(err.get("resource", ""), err.get("action", ""), message)
    if typ == "QuotaExceeded":
        return QuotaExceeded(message)
    if typ == "RateLimited":
        return RateLimited(message)
    return BrigError(typ, message)


class _Conn:
    """One connection to the gateway: requests go out one at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sock = None
        self._file = None
        self._pid = None
        self._ids = itertools.count(1)

    def _open(self):
        path = os.environ.get("BRIG_GATEWAY") or _DEFAULT_SOCKET
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except FileNotFoundError:
            sock.close()
            raise BrigError(
                "Infrastructure",
                "no brig gateway at %s (set BRIG_GATEWAY; brig provides it "
                "to every job)" % path,
            ) from None
        except OSError as e:
            sock.close()
            raise BrigError(
                "Infrastructure", "cannot connect to the brig gateway at %s: %s" % (path, e)
            ) from None
        self._sock = sock
        self._file = sock.makefile("rb")
        self._pid = os.getpid()

    def _forget(self):
        """In a forked child: leave the parent's connection to the parent."""
        self._lock = threading.Lock()
        self._sock = self._file = None

    def _drop(self):
        for c in (self._file, self._sock):
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass
        self._sock = self._file = None

    def _refusal(self):
        """The line a gateway that closed the connection left before it
        did (one past its connection limit is told why), or None."""
        try:
            self._sock.settimeout(1)
            data = self._file.readline()
        except OSError:
            return None
        return data if data.endswith(b"\n") else None

    def _round_trip(self, line, reused):
        """Send one request line and return the response line."""
        try:
            self._sock.sendall(line)
        except OSError as e:
            if not reused:
                data = self._refusal()
                if data is not None:
                    return data
                raise BrigError("Infrastructure", "gateway: send: %s" % e) from None
            # The gateway closed an idle connection: nothing was sent.
            self._drop()
            self._open()
            try:
                self._sock.sendall(line)
            except OSError as e:
                raise BrigError("Infrastructure", "gateway: send: %s" % e) from None
        try:
            data = self._file.readline()
        except OSError as e:
            raise BrigError("Infrastructure", "gateway: receive: %s" % e) from None
        if not data.endswith(b"\n"):
            raise BrigError("Infrastructure", "the gateway closed the connection")
        return data

    def request(self, req):
        """Send req (a dict without id and token) and return the Response."""
        with self._lock:
            if self._sock is not None and self._pid != os.getpid():
                # A forked child must not share its parent's connection.
                self._sock = self._file = None
            rid = next(self._ids)
            msg = {"id": rid, "token": os.environ.get("BRIG_TOKEN", "")}
            msg.update(req)
            line = (
                json.dumps(msg, separators=(",", ":"), allow_nan=False).encode("utf-8")
                + b"\n"
            )
            if len(line) > _MAX_LINE_BYTES:
                raise BrigError(
                    "InvalidRequest",
                    "request of %d bytes is longer than the gateway's limit of %d"
                    % (len(line), _MAX_LINE_BYTES),
                )
            reused = self._sock is not None
            if not reused:
                self._open()
            try:
                data = self._round_trip(line, reused)
            except BaseException:
                # Interrupted (an error, a signal): the connection may be
                # mid-request, so it is not used again.
                self._drop()
                raise
            try:
                resp = json.loads(data)
            except ValueError as e:
                self._drop()
                raise BrigError("Infrastructure", "gateway: bad response: %s" % e) from None
            if not isinstance(resp, dict):
                self._drop()
                raise BrigError("Infrastructure", "gateway: bad response")
            got = resp.get("id")
            if got != rid:
                # 0 answers a request the gateway could not read at all.
                self._drop()
                if got != 0 or resp.get("ok"):
                    raise BrigError(
                        "Infrastructure",
                        "gateway: response %r to request %d" % (got, rid),
                    )
            if not resp.get("ok"):
                raise _error(resp.get("error") or {})
            return resp


_conn = _Conn()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_conn._forget)


def _value(resp):
    """The decoded value of a response, or None when nothing was found."""
    if not resp.get("found") or "value" not in resp:
        return None
    return resp["value"]


def _timeout_ms(timeout):
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    return max(1, int(timeout * 1000)) if timeout > 0 else None


class Dict:
    """A shared key-value dict (scopes ``dict:<name>:read`` and
    ``dict:<name>:write``). Keys are letters, digits, ``- / _ =`` and
    inner dots."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "brig.Dict(%r)" % self.name

    def get(self, key):
        """The value stored under key, or None when there is none."""
        return _value(_conn.request({"op": "dict.get", "name": self.name, "key": key}))

    def put(self, key, value):
        """Store value (anything JSON can encode) under key."""
        _conn.request({"op": "dict.put", "name": self.name, "key": key, "value": value})

    def delete(self, key):
        """Remove key; removing a missing key is not an error."""
        _conn.request({"op": "dict.delete", "name": self.name, "key": key})


class Queue:
    """A shared work queue (scopes ``queue:<name>:put`` and
    ``queue:<name>:get``): every value put is got once."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "brig.Queue(%r)" % self.name

    def put(self, value):
        """Append value (anything JSON can encode)."""
        _conn.request({"op": "queue.put", "name": self.name, "value": value})

    def get(self, timeout=None):
        """Take the next value, waiting up to timeout seconds for one.

        Returns None when none came in time. Without a timeout the gateway
        only looks briefly (about a second).
        """
        req = {"op": "queue.get", "name": self.name}
        ms = _timeout_ms(timeout)
        if ms is not None:
            req["timeout_ms"] = ms
        return _value(_conn.request(req))


def call(function, code=None, args=None, timeout=None):
    """Run a job of another function and wait for it (scope
    ``function:<name>:call``).

    The child job is granted at most this job's scopes. Returns its terminal
    event as a dict (``status``, ``exit_code``, ``stdout``, ``output``,
    ``error``...) whatever its status; raises BrigError when it could not
    be run or waited for, e.g. ``Timeout`` after timeout seconds.
    """
    req = {"op": "function.call", "name": function}
    if code is not None:
        req["code"] = code
    if args is not None:
        req["args"] = args
    ms = _timeout_ms(timeout)
    if ms is not None:
        req["timeout_ms"] = ms
    return _conn.request(req).get("value")
