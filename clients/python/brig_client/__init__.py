"""brig_client: run untrusted code on brig, over its HTTP API.

    from brig_client import Client, JobFailed

    client = Client()  # $BRIG_URL, $BRIG_TOKEN
    result = client.run('print("hello from brig")')
    print(result.stdout, end="")

Client.run waits for the job's end and returns its Result, or raises the
JobError its terminal event maps to (JobFailed, JobTimeout, OOM,
Cancelled, Rejected, Infrastructure; AuthError and QuotaExceeded besides,
by the event's error type). Client.submit returns a Job to follow with
events(), result() and cancel(). Requests brig refuses raise APIError
(Unauthorized, Forbidden, NotFound). Standard library only.
"""

from ._client import DEFAULT_URL, Client, FunctionInfo, Functions, TenantStatus
from ._errors import (
    APIError,
    AuthError,
    BrigError,
    Cancelled,
    Forbidden,
    Infrastructure,
    JobError,
    JobFailed,
    JobTimeout,
    NotFound,
    OOM,
    QuotaExceeded,
    Rejected,
    Unauthorized,
    WaitTimeout,
)
from ._job import Job
from ._types import Event, Result

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AuthError",
    "BrigError",
    "Cancelled",
    "Client",
    "DEFAULT_URL",
    "Event",
    "Forbidden",
    "FunctionInfo",
    "Functions",
    "Infrastructure",
    "Job",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "NotFound",
    "OOM",
    "QuotaExceeded",
    "Rejected",
    "Result",
    "TenantStatus",
    "Unauthorized",
    "WaitTimeout",
]
