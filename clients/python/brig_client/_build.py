"""Building a job's JSON body (schema.Job, docs/design.md §2.2) from Python values.

The client sends what the caller gives and nothing more, with two
exceptions: a fresh random id when none is given (so that a retried POST
is idempotent), and the one refusal every brig client makes before it
sends: scopes on a job that says restricted=True (docs/design.md §4.1).
Everything else is brig's to validate; its answer names the field.
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any, Dict, List, Mapping, Optional, Sequence

# The id brig dedups submissions on: "py-" and 20 random hex digits, well
# inside the schema's 1–64 of [A-Za-z0-9_-].
ID_PREFIX = "py-"


# SCOPES_NEED_UNRESTRICTED is schema.ScopesNeedUnrestricted, the message
# every brig client gives a restricted job that asks for scopes.
SCOPES_NEED_UNRESTRICTED = ("must be false when scopes are asked for; "
                            "a restricted job (the default) is granted no scopes")


def new_id() -> str:
    """A fresh random job id."""
    return ID_PREFIX + secrets.token_hex(10)


def timeout_ms(seconds: float) -> int:
    """A job timeout in seconds as the wire's whole milliseconds, rounded up
    (as Go's Job.SetTimeout: a positive timeout never becomes 0, the default)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("timeout: want a positive number of seconds, not %r" % (seconds,))
    return max(1, math.ceil(seconds * 1000 - 1e-6))


def _str_map(name: str, m: Mapping[str, str]) -> Dict[str, str]:
    if not isinstance(m, Mapping):
        raise TypeError("%s: want a mapping of str to str, not %s" % (name, type(m).__name__))
    out: Dict[str, str] = {}
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("%s[%r]: want str keys and str values" % (name, k))
        out[k] = v
    return out


def _str_list(name: str, v: Sequence[str]) -> List[str]:
    # A lone str is a sequence of str too: refuse it rather than send its letters.
    if isinstance(v, (str, bytes)):
        raise TypeError("%s: want a list of str" % name)
    out = list(v)
    if not all(isinstance(s, str) for s in out):
        raise TypeError("%s: want a list of str" % name)
    return out


def _text(name: str, v: Any) -> str:
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError("%s: not UTF-8 text: %s" % (name, e)) from e
    if not isinstance(v, str):
        raise TypeError("%s: want str, not %s" % (name, type(v).__name__))
    return v


def _optional(body: Dict[str, Any], name: str, v: Any, kind: type) -> None:
    if v is None:
        return
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise TypeError("%s: want %s, not %s" % (name, kind.__name__, type(v).__name__))
    body[name] = v


def build_job(code: Optional[str], function: str, *, args: Any = None, stdin: Optional[str] = None,
              files: Optional[Mapping[str, str]] = None, env: Optional[Mapping[str, str]] = None,
              timeout: Optional[float] = None, scopes: Optional[Sequence[str]] = None,
              restricted: Optional[bool] = None, id: Optional[str] = None,
              limits: Optional[Mapping[str, Any]] = None, network: Optional[bool] = None,
              single_use: Optional[bool] = None, runtime: Optional[str] = None,
              retries: Optional[int] = None, egress: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The job's JSON body; raises ValueError or TypeError before anything is sent."""
    if scopes and restricted is True:
        raise ValueError("restricted: " + SCOPES_NEED_UNRESTRICTED)
    body: Dict[str, Any] = {"id": new_id() if id is None else _text("id", id),
                            "function": _text("function", function)}
    if code is not None:
        body["code"] = _text("code", code)
    if args is not None:
        try:
            body["args"] = json.loads(json.dumps(args, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ValueError("args: not a JSON value: %s" % e) from e
    if stdin is not None:
        body["stdin"] = _text("stdin", stdin)
    if files is not None:
        body["files"] = _str_map("files", files)
    if env is not None:
        body["env"] = _str_map("env", env)
    if timeout is not None:
        body["timeout"] = timeout_ms(timeout)
    if scopes is not None:
        body["scopes"] = _str_list("scopes", scopes)
    if egress is not None:
        body["egress"] = _str_list("egress", egress)
    if limits is not None:
        body["limits"] = dict(limits)
    for name, v, kind in (("restricted", restricted, bool), ("network", network, bool),
                          ("single_use", single_use, bool), ("runtime", runtime, str),
                          ("retries", retries, int)):
        _optional(body, name, v, kind)
    return body
