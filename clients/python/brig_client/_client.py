"""Client and Functions: brig's HTTP API (docs/design.md §11) from Python."""

from __future__ import annotations

import os
import ssl
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ._build import build_job
from ._errors import BrigError
from ._http import MAX_RESPONSE_BYTES, Response, Transport
from ._job import LONG_POLL, Job, job_path, job_state, wait_param
from ._types import Result

DEFAULT_URL = "http://127.0.0.1:4280"  # brig dev's --http default

FunctionInfo = Dict[str, Any]
"""sdk.FunctionInfo JSON: name, owner (tenant, global, builtin), revision, updated, function."""

TenantStatus = Dict[str, Any]
"""sdk.TenantStatus JSON: tenant, max_running, max_queued, max_storage_mb, queued, running."""


def _env(name: str) -> Optional[str]:
    v = os.environ.get(name)
    return v if v else None


def _name_path(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError("function name: want a non-empty str, not %r" % (name,))
    return "/v1/functions/" + urllib.parse.quote(name, safe="")


def _object(resp: Response, what: str) -> Dict[str, Any]:
    body = resp.json()
    if not isinstance(body, dict):
        raise BrigError("brig's answer is not %s" % what)
    return body


class Client:
    """A client of one brig HTTP API, acting as the tenant of its token.

    url defaults to $BRIG_URL, else brig dev's http://127.0.0.1:4280; token
    to $BRIG_TOKEN (brig dev writes DATA/creds/default.token). timeout is
    how long one request may take, in seconds (a long poll adds its wait).
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 60.0, *,
                 max_response_bytes: int = MAX_RESPONSE_BYTES,
                 ssl_context: Optional[ssl.SSLContext] = None) -> None:
        url = url or _env("BRIG_URL") or DEFAULT_URL
        token = token if token is not None else _env("BRIG_TOKEN")
        self._t = Transport(url, token, timeout, max_response_bytes, ssl_context)
        self.functions = Functions(self._t)

    @property
    def url(self) -> str:
        return self._t.url

    def close(self) -> None:
        """Close the connections kept for reuse."""
        self._t.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run(self, code: Optional[str], function: str = "python", args: Any = None,
            stdin: Optional[str] = None, files: Optional[Mapping[str, str]] = None,
            env: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None,
            scopes: Optional[Sequence[str]] = None, *, restricted: Optional[bool] = None,
            id: Optional[str] = None, limits: Optional[Mapping[str, Any]] = None,
            network: Optional[bool] = None, single_use: Optional[bool] = None,
            runtime: Optional[str] = None, retries: Optional[int] = None,
            egress: Optional[Sequence[str]] = None) -> Result:
        """Run a job and wait for its end: its Result, or its JobError raised.

        timeout is the job's time limit in seconds (default: its
        function's); the wait itself ends when the job does.
        """
        body = build_job(code, function, args=args, stdin=stdin, files=files, env=env, timeout=timeout,
                         scopes=scopes, restricted=restricted, id=id, limits=limits, network=network,
                         single_use=single_use, runtime=runtime, retries=retries, egress=egress)
        return self._post(body, LONG_POLL).result()

    def submit(self, code: Optional[str], function: str = "python", args: Any = None,
               stdin: Optional[str] = None, files: Optional[Mapping[str, str]] = None,
               env: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None,
               scopes: Optional[Sequence[str]] = None, *, restricted: Optional[bool] = None,
               id: Optional[str] = None, limits: Optional[Mapping[str, Any]] = None,
               network: Optional[bool] = None, single_use: Optional[bool] = None,
               runtime: Optional[str] = None, retries: Optional[int] = None,
               egress: Optional[Sequence[str]] = None) -> Job:
        """Submit a job and return at once; follow it with the Job's events(), result(), cancel()."""
        body = build_job(code, function, args=args, stdin=stdin, files=files, env=env, timeout=timeout,
                         scopes=scopes, restricted=restricted, id=id, limits=limits, network=network,
                         single_use=single_use, runtime=runtime, retries=retries, egress=egress)
        return self._post(body, None)

    def _post(self, body: Dict[str, Any], wait: Optional[float]) -> Job:
        query, timeout = None, None
        if wait is not None:
            query, timeout = {"wait": wait_param(wait)}, wait + self._t.timeout
        # Idempotent: the body always carries an id, and brig answers a
        # second POST of it with that job's state.
        resp = self._t.request("POST", "/v1/jobs", query=query, body=body, idempotent=True, timeout=timeout)
        return Job(self._t, job_state(resp), submitted=True)

    def job(self, id: str) -> Job:
        """The job of an id (one this or another client submitted); NotFound when brig has none."""
        return Job(self._t, job_state(self._t.request("GET", job_path(id), idempotent=True)))

    def status(self) -> TenantStatus:
        """The tenant's quotas and its queued and running jobs."""
        return _object(self._t.request("GET", "/v1/status", idempotent=True), "a tenant status")


class Functions:
    """The functions the token's tenant sees; it deploys and deletes its own."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> List[FunctionInfo]:
        """Every function the tenant's jobs resolve, sorted by name."""
        body = _object(self._t.request("GET", "/v1/functions", idempotent=True), "{functions: [...]}")
        fns = body.get("functions")
        if not isinstance(fns, list) or not all(isinstance(f, dict) for f in fns):
            raise BrigError("brig's answer is not {functions: [...]}")
        return fns

    def get(self, name: str) -> FunctionInfo:
        """The function name resolves to for the tenant's jobs; NotFound when none."""
        return _object(self._t.request("GET", _name_path(name), idempotent=True), "a function")

    def deploy(self, definition: Mapping[str, Any]) -> FunctionInfo:
        """Create or replace the tenant's own function definition["name"]."""
        if not isinstance(definition, Mapping):
            raise TypeError("definition: want a mapping (schema.Function JSON)")
        path = _name_path(definition.get("name"))  # type: ignore[arg-type]
        return _object(self._t.request("PUT", path, body=dict(definition), idempotent=True), "a function")

    def delete(self, name: str) -> None:
        """Delete the tenant's own function name."""
        self._t.request("DELETE", _name_path(name), idempotent=True)
