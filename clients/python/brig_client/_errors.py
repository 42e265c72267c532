"""The exceptions of brig_client, mirroring the Go SDK's (sdk/errors.go).

Two families under BrigError:

- APIError: the HTTP API refused or failed a request (an
  application/problem+json answer); Unauthorized, Forbidden and NotFound
  are the ones callers branch on.
- JobError: a job ended in any status but succeeded. Its class says how,
  exactly as the Go SDK's JobError.Is and As do: the status picks one of
  JobFailed, JobTimeout, OOM, Cancelled, Rejected, Infrastructure (Go's
  ErrFailed ... ErrInfrastructure), and the terminal event's error.type
  adds AuthError (Go's errors.As(*AuthError), whatever the status) or
  QuotaExceeded. One terminal event raises exactly one exception, an
  instance of each class that applies: a job that failed after a denied
  call is both AuthError and JobFailed, as in Go it is both *AuthError and
  ErrFailed.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Type

from ._types import Result


class BrigError(Exception):
    """Every error this client raises on its own account."""


class WaitTimeout(BrigError, TimeoutError):
    """Job.result(timeout=...) gave up waiting; the job goes on."""


class APIError(BrigError):
    """An error answer of the HTTP API (RFC 9457 problem+json)."""

    def __init__(self, status: int, error_type: str, detail: str, field: str = "",
                 title: str = "", problem: Optional[Dict[str, Any]] = None,
                 retry_after: Optional[float] = None) -> None:
        self.status = status
        self.error_type = error_type
        self.detail = detail
        self.field = field
        self.title = title
        self.problem: Dict[str, Any] = problem if problem is not None else {}
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        msg = "%d %s" % (self.status, self.error_type or self.title or "error")
        if self.detail:
            msg += ": " + self.detail
        if self.field:
            msg += " (field %s)" % self.field
        return msg


class Unauthorized(APIError):
    """401: no token, a malformed one, or one brig's NATS refused."""


class Forbidden(APIError):
    """403: the token's credential may not do this."""


class NotFound(APIError):
    """404: no such job or function in the token's tenant."""


_API_BY_STATUS: Dict[int, Type[APIError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound}


def api_error_class(status: int) -> Type[APIError]:
    """The APIError subclass of an HTTP status."""
    return _API_BY_STATUS.get(status, APIError)


class JobError(BrigError):
    """A job that ended in any status but succeeded; result is its terminal event."""

    def __init__(self, result: Result) -> None:
        self.result = result
        super().__init__(self._message())

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def error_type(self) -> str:
        return self.result.error_type

    @property
    def message(self) -> str:
        return self.result.error_message

    def _message(self) -> str:
        r = self.result
        msg = r.status
        if r.error_type:
            msg = "%s: %s" % (r.error_type, r.error_message)
        return "job %s %s: %s" % (r.job_id or r.id, r.status, msg)


class JobFailed(JobError):
    """Status failed: the job's code exited non-zero (exit_code on result)."""


class JobTimeout(JobError):
    """Status timeout: the job ran past its timeout and was killed."""


class OOM(JobError):
    """Status oom: the job ran out of memory and was killed."""


class Cancelled(JobError):
    """Status cancelled: the job was cancelled; its output so far is kept."""


class Rejected(JobError):
    """Status rejected: brig refused the job (invalid, unknown function...)."""


class Infrastructure(JobError):
    """Status error: brig itself failed to run the job."""


class AuthError(JobError):
    """error.type AuthError: the job touched a resource outside its scope.

    denied lists the denied calls ({resource, action, message}), the first
    ten; result.event["auth_error_count"] counts them all.
    """

    @property
    def denied(self) -> List[Dict[str, Any]]:
        return self.result.auth_errors


class QuotaExceeded(JobError):
    """error.type QuotaExceeded: a job or tenant bound was reached."""


_BY_STATUS: Dict[str, Type[JobError]] = {
    "failed": JobFailed,
    "timeout": JobTimeout,
    "oom": OOM,
    "cancelled": Cancelled,
    "rejected": Rejected,
    "error": Infrastructure,
}

_BY_ERROR_TYPE: Dict[str, Type[JobError]] = {"AuthError": AuthError, "QuotaExceeded": QuotaExceeded}


# The combinations brig emits (docs/design.md §2.4), named so that a
# traceback says what happened.
class FailedAuthError(AuthError, JobFailed):
    """A job that exited non-zero after a denied call."""


class FailedQuotaExceeded(QuotaExceeded, JobFailed):
    """A job that exited non-zero after a refused quota or rate."""


class RejectedQuotaExceeded(QuotaExceeded, Rejected):
    """A job refused because its tenant had its max-queued jobs."""


_COMBINED: Dict[Tuple[Type[JobError], Type[JobError]], Type[JobError]] = {
    (AuthError, JobFailed): FailedAuthError,
    (QuotaExceeded, JobFailed): FailedQuotaExceeded,
    (QuotaExceeded, Rejected): RejectedQuotaExceeded,
}


def job_error_class(status: str, error_type: str) -> Optional[Type[JobError]]:
    """The exception class of a terminal status and error type; None for succeeded."""
    if status == "succeeded":
        return None
    by_status = _BY_STATUS.get(status)
    by_type = _BY_ERROR_TYPE.get(error_type)
    if by_type is None:
        return by_status or JobError
    if by_status is None:
        return by_type
    combined = _COMBINED.get((by_type, by_status))
    if combined is None:
        # Not a pair brig emits; still an instance of both, as in Go.
        combined = type(by_type.__name__ + "_" + by_status.__name__, (by_type, by_status), {})
    return combined


def job_error(result: Result) -> Optional[JobError]:
    """The exception a terminal event raises, or None when it succeeded."""
    cls = job_error_class(result.status, result.error_type)
    return None if cls is None else cls(result)
