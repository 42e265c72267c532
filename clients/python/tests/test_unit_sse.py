"""The event-stream parser (brig_client._sse) against the WHATWG rules."""

from __future__ import annotations

import unittest
from typing import List

from brig_client._sse import SSEError, SSEEvent, SSEParser


def parse(*chunks: bytes) -> List[SSEEvent]:
    p = SSEParser()
    out: List[SSEEvent] = []
    for c in chunks:
        out.extend(p.feed(c))
    return out


def bytewise(stream: bytes) -> List[SSEEvent]:
    return parse(*[stream[i:i + 1] for i in range(len(stream))])


class SSEParserTest(unittest.TestCase):
    def test_brig_event(self) -> None:
        evs = parse(b'id: 3\nevent: output\ndata: {"type":"output"}\n\n')
        self.assertEqual(evs, [SSEEvent("output", '{"type":"output"}', "3")])

    def test_multiline_data_joined_with_lf(self) -> None:
        evs = parse(b"data: a\ndata:b\ndata:  c\ndata\n\n")
        self.assertEqual([e.data for e in evs], ["a\nb\n c\n"])

    def test_default_type_is_message(self) -> None:
        self.assertEqual(parse(b"data: x\n\n")[0].event, "message")

    def test_comments_and_unknown_fields_ignored(self) -> None:
        evs = parse(b": keepalive\n\n: keepalive\nfoo: bar\ndata: x\n\n")
        self.assertEqual([(e.event, e.data) for e in evs], [("message", "x")])

    def test_line_endings(self) -> None:
        want = [SSEEvent("a", "1", "7"), SSEEvent("b", "2\n3", "8")]
        for name, nl in (("LF", b"\n"), ("CRLF", b"\r\n"), ("CR", b"\r")):
            with self.subTest(name):
                stream = nl.join([b"id: 7", b"event: a", b"data: 1", b"", b"id: 8", b"event: b",
                                  b"data: 2", b"data: 3", b"", b""])
                self.assertEqual(parse(stream), want)
                self.assertEqual(bytewise(stream), want, "fed byte by byte")

    def test_crlf_split_between_chunks(self) -> None:
        # The LF of a CRLF coming in the next chunk is not a blank line:
        # that would dispatch "a" alone.
        evs = parse(b"data: a\r", b"\ndata: b\r\n\r", b"\n")
        self.assertEqual([e.data for e in evs], ["a\nb"])

    def test_every_split_point(self) -> None:
        stream = "id: 1\r\nevent: output\r\ndata: héllo\r\n: c\r\ndata: wörld\r\n\r\nid: 2\ndata: z\n\n".encode()
        want = parse(stream)
        self.assertEqual(len(want), 2)
        for i in range(len(stream) + 1):
            self.assertEqual(parse(stream[:i], stream[i:]), want, "split at %d" % i)

    def test_event_without_data_is_dropped_but_its_id_kept(self) -> None:
        p = SSEParser()
        self.assertEqual(p.feed(b"id: 9\nevent: x\n\n"), [])
        self.assertEqual(p.last_event_id, "9")
        self.assertEqual(p.feed(b"data: y\n\n"), [SSEEvent("message", "y", "9")])

    def test_id_with_nul_ignored(self) -> None:
        p = SSEParser()
        p.feed(b"id: 4\n\nid: 5\x006\ndata: x\n\n")
        self.assertEqual(p.last_event_id, "4")

    def test_incomplete_event_not_dispatched(self) -> None:
        # The id of an event cut short is not committed: resuming from it
        # would skip the event.
        p = SSEParser()
        self.assertEqual(p.feed(b"id: 1\ndata: x\n\nid: 2\ndata: y\n"), [SSEEvent("message", "x", "1")])
        self.assertEqual(p.last_event_id, "1")
        r = p.resume()
        self.assertEqual((r.last_event_id, r.feed(b"data: z\n\n")), ("1", [SSEEvent("message", "z", "1")]))

    def test_bom_stripped_once(self) -> None:
        self.assertEqual(parse(b"\xef\xbb", b"\xbfdata: x\n\n")[0].data, "x")
        self.assertEqual(parse(b"\xef\xbb\xbfdata: x\n\n\xef\xbb\xbfdata: y\n\n")[1:], [])

    def test_retry(self) -> None:
        p = SSEParser()
        p.feed(b"retry: 1500\nretry: x\ndata: a\n\n")
        self.assertEqual(p.retry, 1500)

    def test_line_too_long(self) -> None:
        p = SSEParser(max_bytes=64)
        p.feed(b"data: " + b"x" * 50)
        with self.assertRaises(SSEError):
            p.feed(b"x" * 20)

    def test_event_too_long(self) -> None:
        p = SSEParser(max_bytes=64)
        with self.assertRaises(SSEError):
            p.feed(b"data: " + b"x" * 40 + b"\ndata: " + b"y" * 40 + b"\n")

    def test_invalid_utf8_replaced(self) -> None:
        self.assertEqual(parse(b"data: \xff\n\n")[0].data, "\ufffd")


if __name__ == "__main__":
    unittest.main()
