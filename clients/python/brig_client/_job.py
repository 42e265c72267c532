"""Job: a submitted job, followed over the HTTP API.

result() long-polls GET /v1/jobs/{id}?wait=... (LONG_POLL at a time)
until the terminal event, or until the caller's own wait bound; events()
reads the job's event stream and, when the connection drops, resumes it
with Last-Event-ID (at most MAX_RESUMES times in a row without an event).

brig answers NotFound for a job it has no event of, and a job just
submitted has none until a dispatcher accepts it. So a Job this client
submitted asks again on NotFound, for at most NOT_YET_WAIT, until brig
has heard of it (as the Go SDK's Handle.Cancel does, sdk.CancelWait).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, TypeVar

from ._errors import BrigError, NotFound, WaitTimeout, job_error
from ._http import BACKOFF, CONNECTION_ERRORS, Conn, Response, Transport, problem, read_bounded
from ._sse import SSEParser
from ._types import Event, Result

LONG_POLL = 60.0  # seconds one GET ?wait= asks brig to hold the answer
MAX_RESUMES = 5  # event-stream connections in a row that may bring no event
NOT_YET_WAIT = 30.0  # how long a submitted job may stay unknown to brig (sdk.CancelWait)
KEEPALIVE_READ = 45.0  # the least read timeout of a stream (brig sends ": keepalive" every 15 s)
READ_CHUNK = 64 << 10


def wait_param(seconds: float) -> str:
    """A wait bound as the query's Go duration: whole seconds, or ms below 1 s."""
    if seconds >= 1:
        return "%ds" % int(seconds)
    return "%dms" % max(1, int(seconds * 1000))


T = TypeVar("T")


def job_path(id: str, suffix: str = "") -> str:
    return "/v1/jobs/" + urllib.parse.quote(id, safe="") + suffix


def job_state(resp: Response) -> Dict[str, Any]:
    """A JobState answer, checked to be one."""
    st = resp.json()
    if not isinstance(st, dict) or not isinstance(st.get("id"), str) or not isinstance(st.get("status"), str):
        raise BrigError("brig answered %d with a body that is not a job state" % resp.status)
    return st


def terminal_of(state: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    t = state.get("terminal")
    return t if isinstance(t, dict) else None


class Job:
    """A job brig has accepted for submission (Client.submit, Client.job)."""

    def __init__(self, transport: Transport, state: Dict[str, Any], submitted: bool = False) -> None:
        self._t = transport
        self._state = state
        # Until brig has shown it knows the job, NotFound may mean "not
        # accepted yet" (submitted), not "never submitted".
        self._unknown_until = time.monotonic() + NOT_YET_WAIT if submitted else 0.0
        self.id: str = state["id"]
        self.job_id: str = state.get("job_id") or ""

    def __repr__(self) -> str:
        return "Job(id=%r, status=%r)" % (self.id, self._state.get("status"))

    @property
    def status(self) -> str:
        """The status last heard: queued, running, or the terminal one."""
        return self._state["status"]

    def refresh(self, wait: Optional[float] = None) -> Dict[str, Any]:
        """GET the job's state (holding up to wait seconds for its end); returns it."""
        query = None
        timeout = None
        if wait is not None and wait > 0:
            query, timeout = {"wait": wait_param(wait)}, wait + self._t.timeout
        self._state = job_state(self._known(lambda: self._t.request(
            "GET", job_path(self.id), query=query, idempotent=True, timeout=timeout)))
        return self._state

    def _known(self, call: Callable[[], T]) -> T:
        """call(), asked again on NotFound while a submitted job may not be accepted yet."""
        pause = 0
        while True:
            try:
                out = call()
            except NotFound:
                if time.monotonic() >= self._unknown_until:
                    raise
                time.sleep(BACKOFF[pause])
                pause = min(pause + 1, len(BACKOFF) - 1)
                continue
            self._unknown_until = 0.0
            return out

    def result(self, timeout: Optional[float] = None) -> Result:
        """Wait for the job's end; return its Result or raise its JobError.

        timeout bounds this wait, in seconds (None: until the job ends, which
        its own timeout guarantees); past it WaitTimeout is raised and the
        job goes on.
        """
        if timeout is not None and not timeout >= 0:
            raise ValueError("timeout: want seconds >= 0 or None, not %r" % (timeout,))
        deadline = None if timeout is None else time.monotonic() + timeout
        while terminal_of(self._state) is None:
            left = LONG_POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout("job %s did not end within %.3gs; it is %s" % (self.id, timeout, self.status))
            self.refresh(min(left, LONG_POLL))
        return self._outcome()

    def _outcome(self) -> Result:
        r = Result.from_event(self.id, terminal_of(self._state) or {})
        err = job_error(r)
        if err is not None:
            raise err
        return r

    def cancel(self) -> str:
        """Cancel the job; returns its terminal status (cancelled, or how it had ended)."""
        resp = self._known(lambda: self._t.request("POST", job_path(self.id, "/cancel"), idempotent=True))
        body = resp.json()
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise BrigError("brig's answer to cancel is not {id, job_id, status}")
        return body["status"]

    def events(self) -> Iterator[Event]:
        """Every event of the job, from the first, ending with the terminal one.

        A dropped stream is resumed from the last event received
        (Last-Event-ID), so no event is missed or repeated.
        """
        parser = SSEParser()
        failures = 0
        while True:
            got = 0
            try:
                for ev in self._known(lambda: self._stream(parser)):
                    got += 1
                    yield ev
                    if ev.terminal:
                        return
            except CONNECTION_ERRORS as e:
                err: BaseException = e
            else:
                err = BrigError("the event stream ended before the job's terminal event")
            failures = 0 if got else failures + 1
            if failures >= MAX_RESUMES:
                raise BrigError("events of job %s: %d connections in a row brought no event: %s"
                                % (self.id, failures, err)) from err
            if failures:
                time.sleep(BACKOFF[min(failures, len(BACKOFF)) - 1])
            parser = parser.resume()

    def _stream(self, parser: SSEParser) -> Iterator[Event]:
        conn, r = self._open(parser.last_event_id)
        return _read(conn, r, parser)

    def _open(self, last_event_id: str) -> Tuple[Conn, http.client.HTTPResponse]:
        """The event stream's answer, its status and type checked; raises before any event."""
        headers = self._t.headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        conn = self._t.connect(max(self._t.timeout, KEEPALIVE_READ))
        try:
            conn.request("GET", self._t.target(job_path(self.id, "/events")), headers=headers)
            r = conn.getresponse()
            if r.status >= 400:
                body = read_bounded(r, self._t.max_response_bytes)
                raise problem(Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body))
            ctype = (r.getheader("Content-Type") or "").split(";")[0].strip()
            if r.status != 200 or ctype != "text/event-stream":
                raise BrigError("events of job %s: brig answered %d %s, not an event stream"
                                % (self.id, r.status, ctype))
        except BaseException:
            conn.close()
            raise
        return conn, r


def _read(conn: Conn, r: http.client.HTTPResponse, parser: SSEParser) -> Iterator[Event]:
    """The events of an open stream until it ends; closes the connection."""
    try:
        while True:
            chunk = r.read1(READ_CHUNK)
            if not chunk:
                return
            for sse in parser.feed(chunk):
                yield _event(sse.event, sse.data)
    finally:
        conn.close()


def _event(name: str, data: str) -> Event:
    try:
        raw = json.loads(data)
    except ValueError as e:
        raise BrigError("an event of type %s whose data is not JSON: %s" % (name, e)) from e
    if not isinstance(raw, dict):
        raise BrigError("an event of type %s whose data is not a JSON object" % name)
    ev = Event.from_json(raw)
    if not ev.type:
        ev = Event(type=name, seq=ev.seq, data=ev.data, stream=ev.stream, raw=raw)
    return ev

