"""A server-sent events parser (WHATWG HTML, "Parsing an event stream").

Bytes go in as they arrive, in chunks cut anywhere (inside a line, between
the CR and LF of a CRLF); whole events come out. Lines end in CRLF, LF or
CR; a line starting with ':' is a comment; "data" lines accumulate, joined
with LF; "id" sets the last event id, which a blank line commits (kept
across events, as a resuming client needs it: an id of an event cut short
is not committed); a blank line dispatches the event, and one with no data
is dropped. A line or an event past MAX_EVENT_BYTES is an error: the
server is not allowed to make this client hold unbounded text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

# MAX_EVENT_BYTES bounds one line and one event's data (brig's largest
# event, a terminal one, fits NATS max_payload: 1 MiB by default, 64 MiB
# at most; its JSON on one line may be longer only by escaping).
MAX_EVENT_BYTES = 16 << 20


class SSEError(ValueError):
    """The event stream broke a bound (a line or an event too long)."""


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its type ("message" when none), data and id."""

    event: str
    data: str
    id: str
    retry: Optional[int] = None


class SSEParser:
    """Incremental event-stream parser; feed() returns the events completed."""

    def __init__(self, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.last_event_id = ""
        self._id_buf = ""
        self.retry: Optional[int] = None
        self._buf = b""
        self._started = False
        self._skip_lf = False
        self._reset()

    def _reset(self) -> None:
        self._event = ""
        self._data: List[str] = []
        self._data_len = 0

    def feed(self, chunk: bytes) -> List[SSEEvent]:
        out: List[SSEEvent] = []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if chunk:
            self._skip_lf = False
        self._buf += chunk
        if not self._started and len(self._buf) >= 3 or b"\n" in self._buf or b"\r" in self._buf:
            self._strip_bom()
        while True:
            line = self._next_line()
            if line is None:
                break
            ev = self._line(line.decode("utf-8", errors="replace"))
            if ev is not None:
                out.append(ev)
        if len(self._buf) > self.max_bytes:
            raise SSEError("event stream line longer than %d bytes" % self.max_bytes)
        return out

    def _strip_bom(self) -> None:
        if not self._started:
            self._started = True
            if self._buf.startswith(b"\xef\xbb\xbf"):
                self._buf = self._buf[3:]

    def _next_line(self) -> Optional[bytes]:
        buf = self._buf
        cr, lf = buf.find(b"\r"), buf.find(b"\n")
        if cr < 0 and lf < 0:
            return None
        if lf >= 0 and (cr < 0 or lf < cr):
            self._buf = buf[lf + 1:]
            return buf[:lf]
        # A CR: the line ends here; an LF right after it belongs to it,
        # and may come in the next chunk.
        if cr + 1 < len(buf):
            self._buf = buf[cr + 2:] if buf[cr + 1:cr + 2] == b"\n" else buf[cr + 1:]
        else:
            self._buf = b""
            self._skip_lf = True
        return buf[:cr]

    def _line(self, line: str) -> Optional[SSEEvent]:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_len += len(value) + 1
            if self._data_len > self.max_bytes:
                raise SSEError("event data longer than %d bytes" % self.max_bytes)
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buf = value
        elif name == "retry":
            if value.isdigit() and value.isascii():
                self.retry = int(value)
        return None

    def resume(self) -> "SSEParser":
        """A fresh parser for a new connection, starting from this one's last event id."""
        p = SSEParser(self.max_bytes)
        p.last_event_id = p._id_buf = self.last_event_id
        return p

    def _dispatch(self) -> Optional[SSEEvent]:
        self.last_event_id = self._id_buf
        if not self._data:
            self._reset()
            return None
        ev = SSEEvent(event=self._event or "message", data="\n".join(self._data),
                      id=self.last_event_id, retry=self.retry)
        self._reset()
        return ev
