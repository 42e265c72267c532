"""A scripted HTTP server on 127.0.0.1 for the client's unit tests.

It is not brig: each test says how it answers (a function of the request),
and the tests check what the client sent and what it made of the answer.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    client_port: int

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: Dict[str, str] = field(default_factory=dict)
    chunks: Optional[List[bytes]] = None  # streamed, then the connection closes
    drop: bool = False  # close the connection without an answer


Handler = Callable[[Request], Reply]


class FakeBrig:
    """Starts on a free port; handle is the test's answer function."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle
        self.requests: List[Request] = []
        self._lock = threading.Lock()
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up: what the drop tests do

        self.server = Server(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeBrig":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _serve(self, h: http.server.BaseHTTPRequestHandler) -> None:
        u = urllib.parse.urlsplit(h.path)
        n = int(h.headers.get("Content-Length") or 0)
        req = Request(h.command, u.path, dict(urllib.parse.parse_qsl(u.query)),
                      {k.lower(): v for k, v in h.headers.items()}, h.rfile.read(n), h.client_address[1])
        with self._lock:
            self.requests.append(req)
        reply = self.handle(req)
        if reply.drop:
            h.close_connection = True
            return
        h.send_response(reply.status)
        for k, v in reply.headers.items():
            h.send_header(k, v)
        if reply.chunks is not None:
            h.send_header("Connection", "close")
            h.end_headers()
            for c in reply.chunks:
                h.wfile.write(c)
                h.wfile.flush()
            h.close_connection = True
            return
        body = reply.body if isinstance(reply.body, bytes) else \
            b"" if reply.body is None else json.dumps(reply.body).encode()
        if "Content-Type" not in reply.headers and reply.body is not None and not isinstance(reply.body, bytes):
            h.send_header("Content-Type", "application/problem+json" if reply.status >= 400 else "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def state(id: str, status: str, terminal: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A JobState of the default tenant."""
    s: Dict[str, Any] = {"id": id, "job_id": "default." + id, "status": status}
    if terminal is not None:
        s["terminal"] = terminal
    return s


def terminal(id: str, status: str, **fields: Any) -> Dict[str, Any]:
    """A terminal event of status (its type from the status, as schema.TerminalType)."""
    types = {"succeeded": "result", "failed": "result", "oom": "result", "timeout": "timeout",
             "cancelled": "cancelled"}
    ev: Dict[str, Any] = {"job_id": "default." + id, "type": types.get(status, "error"), "seq": 5,
                          "time": "2025-01-01T00:00:00Z", "attempt": 1, "status": status, "exit_code": 0}
    ev.update(fields)
    return ev


def problem(status: int, error_type: str, detail: str, **extra: Any) -> Reply:
    body = {"type": "urn:brig:error:" + error_type, "title": error_type, "status": status,
            "detail": detail, "error_type": error_type}
    body.update(extra)
    return Reply(status, body)


def sse(events: List[Tuple[int, Dict[str, Any]]]) -> bytes:
    """Events as brig's stream writes them."""
    return b"".join(("id: %d\nevent: %s\ndata: %s\n\n" % (seq, ev["type"], json.dumps(ev))).encode()
                    for seq, ev in events)
