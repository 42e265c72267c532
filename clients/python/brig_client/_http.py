"""Request plumbing: one brig HTTP API endpoint, a bearer token, JSON.

Connections are kept and reused (at most MAX_IDLE idle ones). A request
marked idempotent is sent again, on a fresh connection, when the
connection fails before an answer arrives, and when brig answers 503 Busy
(after its Retry-After, at most MAX_RETRY_AFTER seconds): at most
ATTEMPTS times in all. Every answer is read to at most max_response_bytes;
a bigger one is an error, never held whole. Error answers become APIError
subclasses (application/problem+json, RFC 9457).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple, Union

from ._errors import APIError, BrigError, api_error_class

ATTEMPTS = 4  # one request and at most three retries
BACKOFF = (0.1, 0.5, 2.0)  # seconds before each retry after a connection failure
MAX_RETRY_AFTER = 10.0  # the most a 503's Retry-After makes a retry wait
MAX_IDLE = 4  # idle connections kept for reuse
MAX_RESPONSE_BYTES = 32 << 20  # default bound of one answer's body
MAX_DETAIL = 4096  # characters of a non-JSON error body kept as the detail

USER_AGENT = "brig-client-python/0.1"

Conn = Union[http.client.HTTPConnection, http.client.HTTPSConnection]

# What a dropped or refused connection raises; a retry may get through.
# (OSError covers refused, reset and timed-out sockets; HTTPException an
# answer cut short.)
CONNECTION_ERRORS: Tuple[type, ...] = (OSError, http.client.HTTPException)


class Response:
    """A complete answer: status, headers (lower-case names), body bytes."""

    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise BrigError("brig answered %d with a body that is not JSON: %s" % (self.status, e)) from e


class Transport:
    """The HTTP side of a Client: base URL, token, timeouts, connection pool."""

    def __init__(self, url: str, token: Optional[str], timeout: float,
                 max_response_bytes: int = MAX_RESPONSE_BYTES,
                 ssl_context: Optional[ssl.SSLContext] = None) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("brig URL %r: want http://HOST[:PORT] or https://HOST[:PORT]" % url)
        if token is not None and (not token or any(c in token for c in "\r\n\0 ")):
            raise ValueError("token: empty, or holds a space or a line break")
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds, not %r" % (timeout,))
        self.url = url.rstrip("/")
        self._scheme, self._host, self._port = u.scheme, u.hostname, u.port
        self._prefix = u.path.rstrip("/")
        self.token = token
        self.timeout = float(timeout)
        self.max_response_bytes = max_response_bytes
        self._ssl = ssl_context
        self._idle: List[Conn] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

    def connect(self, timeout: float) -> Conn:
        """A fresh connection (not from the pool)."""
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _take(self, timeout: float) -> Conn:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            return self.connect(timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _give_back(self, conn: Conn) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def target(self, path: str, query: Optional[Dict[str, str]] = None) -> str:
        t = self._prefix + path
        if query:
            t += "?" + urllib.parse.urlencode(query)
        return t

    def headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        h = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token is not None:
            h["Authorization"] = "Bearer " + self.token
        if extra:
            h.update(extra)
        return h

    def request(self, method: str, path: str, *, query: Optional[Dict[str, str]] = None,
                body: Any = None, idempotent: bool, timeout: Optional[float] = None) -> Response:
        """Send one request (with retries when idempotent); raise APIError on an error answer."""
        data = None
        extra: Dict[str, str] = {}
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            extra["Content-Type"] = "application/json"
        target, headers = self.target(path, query), self.headers(extra)
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= (ATTEMPTS if idempotent else 1)
            try:
                resp = self._once(method, target, headers, data, timeout or self.timeout)
            except CONNECTION_ERRORS as e:
                if last:
                    raise BrigError("%s %s: %s: %s" % (method, self.url + target, type(e).__name__, e)) from e
                time.sleep(BACKOFF[min(attempt, len(BACKOFF)) - 1])
                continue
            if resp.status < 400:
                return resp
            err = problem(resp)
            if last or resp.status != 503:
                raise err
            pause = BACKOFF[min(attempt, len(BACKOFF)) - 1] if err.retry_after is None else err.retry_after
            time.sleep(min(pause, MAX_RETRY_AFTER))

    def _once(self, method: str, target: str, headers: Dict[str, str], data: Optional[bytes],
              timeout: float) -> Response:
        conn = self._take(timeout)
        try:
            conn.request(method, target, body=data, headers=headers)
            r = conn.getresponse()
            body = read_bounded(r, self.max_response_bytes)
        except BaseException:
            conn.close()
            raise
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if r.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return Response(r.status, hdrs, body)


def read_bounded(r: http.client.HTTPResponse, limit: int) -> bytes:
    """The whole body of r, refused when over limit bytes."""
    length = r.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BrigError("brig's answer is %s bytes, over this client's %d-byte bound" % (length, limit))
    body = r.read(limit + 1)
    if len(body) > limit:
        raise BrigError("brig's answer is over this client's %d-byte bound" % limit)
    return body


def problem(resp: Response) -> APIError:
    """The APIError of an error answer (problem+json, else its text)."""
    cls = api_error_class(resp.status)
    retry_after = _retry_after(resp.headers.get("retry-after"))
    try:
        p = json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        p = None
    if not isinstance(p, dict):
        text = resp.body.decode("utf-8", errors="replace").strip()[:MAX_DETAIL]
        return cls(resp.status, "", text, retry_after=retry_after, title=http_reason(resp.status))

    def s(key: str) -> str:
        v = p.get(key)
        return v if isinstance(v, str) else ""

    etype = s("error_type") or s("type").rpartition(":")[2]
    return cls(resp.status, etype, s("detail"), field=s("field"), title=s("title"), problem=p,
               retry_after=retry_after)


def http_reason(status: int) -> str:
    try:
        return http.client.responses[status]
    except KeyError:
        return ""


def _retry_after(v: Optional[str]) -> Optional[float]:
    if v is None or not v.strip().isdigit():
        return None
    return float(v.strip())
