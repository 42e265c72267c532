"""Result and Event: a job's terminal event and its events as Python values.

The wire format is brig's schema.Event JSON (docs/design.md §2.3); the raw
dict is kept on both, so a field this client does not name is still there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

# Terminal event types (schema.IsTerminal): exactly one ends every job.
TERMINAL_TYPES = frozenset({"result", "timeout", "error", "cancelled"})

# Terminal statuses (schema.Status).
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
OOM_STATUS = "oom"
CANCELLED = "cancelled"
REJECTED = "rejected"
ERROR = "error"


def _str(raw: Dict[str, Any], key: str) -> str:
    v = raw.get(key)
    return v if isinstance(v, str) else ""


def _int(raw: Dict[str, Any], key: str, default: int = 0) -> int:
    v = raw.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else default


@dataclass(frozen=True)
class Event:
    """One event of a job, as GET /v1/jobs/{id}/events delivers it.

    type is the event type (accepted, started, output, auth_error, result,
    timeout, error, cancelled); data and stream are an output event's;
    raw is the whole event JSON.
    """

    type: str
    seq: int
    data: str = ""
    stream: str = ""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        """Whether this event ends its job."""
        return self.type in TERMINAL_TYPES

    @classmethod
    def from_json(cls, raw: Dict[str, Any]) -> "Event":
        return cls(type=_str(raw, "type"), seq=_int(raw, "seq"), data=_str(raw, "data"),
                   stream=_str(raw, "stream"), raw=raw)


@dataclass(frozen=True)
class Result:
    """How a job ended: its terminal event.

    output is the job's /work/out/result.json (any JSON value) or None;
    output_error says why brig did not carry one the job wrote. error_type
    and error_message are the event's error (empty when it succeeded).
    event is the raw terminal event.
    """

    id: str
    job_id: str
    status: str
    exit_code: int
    stdout: str
    stderr: str
    output: Any
    duration_ms: int
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    output_error: str = ""
    error_type: str = ""
    error_message: str = ""
    auth_errors: List[Dict[str, Any]] = field(default_factory=list)
    event: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the job succeeded."""
        return self.status == SUCCEEDED

    @classmethod
    def from_event(cls, id: str, ev: Dict[str, Any]) -> "Result":
        err = ev.get("error")
        err = err if isinstance(err, dict) else {}
        denied = ev.get("auth_errors")
        return cls(
            id=id,
            job_id=_str(ev, "job_id"),
            status=_str(ev, "status"),
            exit_code=_int(ev, "exit_code", -1),
            stdout=_str(ev, "stdout"),
            stderr=_str(ev, "stderr"),
            output=ev.get("output"),
            duration_ms=_int(ev, "duration_ms"),
            stdout_truncated=ev.get("stdout_truncated") is True,
            stderr_truncated=ev.get("stderr_truncated") is True,
            output_error=_str(ev, "output_error"),
            error_type=_str(err, "type"),
            error_message=_str(err, "message"),
            auth_errors=[d for d in denied if isinstance(d, dict)] if isinstance(denied, list) else [],
            event=ev,
        )
