"""Client, Job and Functions against a scripted local HTTP server (tests/fakebrig.py).

What is checked: what the client sends (method, path, query, headers, JSON
body), and what it makes of each answer (results, exceptions, retries,
resumed streams, bounds).
"""

from __future__ import annotations

import os
import time
import unittest
from typing import Any, Dict, List
from unittest import mock

import brig_client as bc
from brig_client import _build, _http, _job
from fakebrig import FakeBrig, Reply, Request, problem, sse, state, terminal

TOKEN = "brig_dGVzdA"


class ClientCase(unittest.TestCase):
    def serve(self, handle: Any) -> FakeBrig:
        fake = FakeBrig(handle)
        self.addCleanup(fake.close)
        return fake

    def client(self, fake: FakeBrig, **kw: Any) -> bc.Client:
        c = bc.Client(fake.url, TOKEN, **kw)
        self.addCleanup(c.close)
        return c


class RunTest(ClientCase):
    def test_request_and_result(self) -> None:
        def handle(req: Request) -> Reply:
            body = req.json()
            return Reply(200, state(body["id"], "succeeded", terminal(body["id"], "succeeded", stdout="hi\n",
                                                                       output={"n": 1}, duration_ms=7)))
        fake = self.serve(handle)
        r = self.client(fake).run('print("hi")', args={"a": [1, "é"]}, stdin="in", files={"d/x.txt": "x"},
                                  env={"K": "V"}, timeout=1.5, limits={"memory_mb": 64})
        self.assertEqual((r.status, r.stdout, r.output, r.duration_ms, r.exit_code), ("succeeded", "hi\n", {"n": 1}, 7, 0))
        [req] = fake.requests
        self.assertEqual((req.method, req.path, req.query), ("POST", "/v1/jobs", {"wait": "60s"}))
        self.assertEqual(req.headers["authorization"], "Bearer " + TOKEN)
        self.assertEqual(req.headers["content-type"], "application/json")
        body = req.json()
        self.assertRegex(body.pop("id"), r"^py-[0-9a-f]{20}$")
        self.assertEqual(body, {"function": "python", "code": 'print("hi")', "args": {"a": [1, "é"]}, "stdin": "in",
                                "files": {"d/x.txt": "x"}, "env": {"K": "V"}, "timeout": 1500,
                                "limits": {"memory_mb": 64}})
        self.assertIn("é".encode(), req.body, "UTF-8 on the wire, not \\u escapes")

    def test_long_polls_until_terminal(self) -> None:
        polls: List[Dict[str, str]] = []

        def handle(req: Request) -> Reply:
            if req.method == "POST":
                return Reply(202, state(req.json()["id"], "queued"), {"Location": "/v1/jobs/j"})
            polls.append(req.query)
            if len(polls) < 3:
                return Reply(200, state("j", "running"))
            return Reply(200, state("j", "failed", terminal("j", "failed", exit_code=3, stderr="boom",
                                                             error={"type": "NonZeroExit", "message": "exit 3"})))
        fake = self.serve(handle)
        with self.assertRaises(bc.JobFailed) as cm:
            self.client(fake).run("raise SystemExit(3)", id="j")
        self.assertEqual((cm.exception.result.exit_code, cm.exception.result.stderr), (3, "boom"))
        self.assertEqual(polls, [{"wait": "60s"}] * 3)
        self.assertEqual([r.path for r in fake.requests], ["/v1/jobs"] + ["/v1/jobs/j"] * 3)

    def test_sends_only_what_is_given(self) -> None:
        fake = self.serve(lambda req: Reply(202, state(req.json()["id"], "queued")))
        c = self.client(fake)
        c.submit(None, function="echo", id="e1")
        c.submit("x", scopes=["dict:d:read"])
        c.submit("x", restricted=False, network=False, single_use=False, runtime="runsc", retries=0)
        c.submit("x", egress=("api.example.com", "*.example.org:8443"))
        bodies = [r.json() for r in fake.requests]
        self.assertEqual(bodies[0], {"id": "e1", "function": "echo"})
        self.assertNotIn("restricted", bodies[1], "the client never sets restricted by itself")
        self.assertEqual(bodies[1]["scopes"], ["dict:d:read"])
        self.assertEqual({k: bodies[2][k] for k in ("restricted", "network", "single_use", "runtime", "retries")},
                         {"restricted": False, "network": False, "single_use": False, "runtime": "runsc", "retries": 0})
        self.assertNotIn("egress", bodies[2], "the client never sets egress by itself")
        self.assertEqual(bodies[3]["egress"], ["api.example.com", "*.example.org:8443"])

    def test_refused_before_sending(self) -> None:
        fake = self.serve(lambda req: Reply(500))
        c = self.client(fake)
        with self.assertRaisesRegex(ValueError, "^restricted: must be false when scopes are asked for"):
            c.run("x", scopes=["dict:d:read"], restricted=True)
        for kw in ({"timeout": 0}, {"timeout": -1}, {"timeout": float("nan")}, {"timeout": float("inf")},
                   {"args": {"x": object()}}, {"args": float("nan")}, {"stdin": b"\xff"}):
            with self.subTest(kw=kw), self.assertRaises(ValueError):
                c.submit("x", **kw)
        for kw in ({"env": {"K": 1}}, {"files": ["a"]}, {"scopes": "dict:d:read"}, {"retries": True},
                   {"network": "yes"}, {"egress": "api.example.com"}, {"egress": [b"api.example.com"]}):
            with self.subTest(kw=kw), self.assertRaises(TypeError):
                c.submit("x", **kw)
        self.assertEqual(fake.requests, [])

    def test_timeout_rounds_up_to_whole_ms(self) -> None:
        for seconds, ms in ((1.5, 1500), (0.0001, 1), (2, 2000), (0.0015, 2), (3600, 3600000)):
            with self.subTest(seconds):
                self.assertEqual(_build.timeout_ms(seconds), ms)

    def test_wait_param(self) -> None:
        for seconds, want in ((60, "60s"), (59.9, "59s"), (1, "1s"), (0.25, "250ms"), (0.0001, "1ms")):
            self.assertEqual(_job.wait_param(seconds), want)


class RetryTest(ClientCase):
    def test_dropped_post_sent_again_with_the_same_id(self) -> None:
        def handle(req: Request) -> Reply:
            if len(fake.requests) == 1:
                return Reply(drop=True)
            return Reply(202, state(req.json()["id"], "queued"))
        fake = self.serve(handle)
        job = self.client(fake).submit("x")
        ids = [r.json()["id"] for r in fake.requests]
        self.assertEqual(len(ids), 2)
        self.assertEqual(ids[0], ids[1])
        self.assertEqual(job.id, ids[0])

    def test_busy_retried_after_retry_after(self) -> None:
        def handle(req: Request) -> Reply:
            if len(fake.requests) < 3:
                r = problem(503, "Busy", "too many requests in hand")
                r.headers["Retry-After"] = "0"
                return r
            return Reply(200, {"tenant": "default", "queued": 0})
        fake = self.serve(handle)
        self.assertEqual(self.client(fake).status()["tenant"], "default")
        self.assertEqual(len(fake.requests), 3)

    def test_gives_up(self) -> None:
        fake = self.serve(lambda req: Reply(drop=True))
        with mock.patch.object(_http, "BACKOFF", (0.0,)), self.assertRaisesRegex(bc.BrigError, "GET .*/v1/status"):
            self.client(fake).status()
        self.assertEqual(len(fake.requests), _http.ATTEMPTS)

    def test_client_errors_not_retried(self) -> None:
        fake = self.serve(lambda req: problem(401, "Unauthorized", "token refused"))
        with self.assertRaises(bc.Unauthorized) as cm:
            self.client(fake).status()
        self.assertEqual((cm.exception.status, cm.exception.detail), (401, "token refused"))
        self.assertEqual(len(fake.requests), 1)

    def test_invalid_job_names_field(self) -> None:
        fake = self.serve(lambda req: problem(400, "InvalidJob", "path leaves /work", field='files["../x"]'))
        with self.assertRaises(bc.APIError) as cm:
            self.client(fake).run("x", files={"../x": ""})
        self.assertEqual((cm.exception.error_type, cm.exception.field), ("InvalidJob", 'files["../x"]'))


class TransportTest(ClientCase):
    def test_connection_reused(self) -> None:
        fake = self.serve(lambda req: Reply(200, {"tenant": "default"}))
        c = self.client(fake)
        for _ in range(3):
            c.status()
        self.assertEqual(len({r.client_port for r in fake.requests}), 1)

    def test_answer_over_bound(self) -> None:
        fake = self.serve(lambda req: Reply(200, {"tenant": "x" * 2000}))
        with self.assertRaisesRegex(bc.BrigError, "over this client's 1000-byte bound"):
            self.client(fake, max_response_bytes=1000).status()

    def test_answer_not_json(self) -> None:
        fake = self.serve(lambda req: Reply(200, b"<html>", {"Content-Type": "text/html"}))
        with self.assertRaisesRegex(bc.BrigError, "not JSON"):
            self.client(fake).status()

    def test_env_defaults(self) -> None:
        fake = self.serve(lambda req: Reply(200, {"tenant": "default"}))
        with mock.patch.dict(os.environ, {"BRIG_URL": fake.url + "/", "BRIG_TOKEN": "brig_ZW52"}):
            c = bc.Client()
        self.addCleanup(c.close)
        c.status()
        self.assertEqual(fake.requests[0].headers["authorization"], "Bearer brig_ZW52")
        with mock.patch.dict(os.environ, {"BRIG_URL": "", "BRIG_TOKEN": ""}):
            self.assertEqual(bc.Client().url, bc.DEFAULT_URL)

    def test_bad_arguments(self) -> None:
        for kw in ({"url": "ftp://x"}, {"url": "http://"}, {"token": "brig_x\r\nX-Evil: 1"}, {"token": ""},
                   {"timeout": 0}):
            with self.subTest(kw=kw), self.assertRaises(ValueError):
                bc.Client(**{"url": "http://127.0.0.1:1", "token": "t", **kw})

    def test_path_segments_quoted(self) -> None:
        fake = self.serve(lambda req: problem(404, "NotFound", "no such job"))
        with self.assertRaises(bc.NotFound):
            self.client(fake).job("a/../b?c")
        self.assertEqual(fake.requests[0].path, "/v1/jobs/a%2F..%2Fb%3Fc")


class JobTest(ClientCase):
    def test_result_wait_bound(self) -> None:
        def handle(req: Request) -> Reply:
            if req.method == "POST":
                return Reply(202, state("j", "queued"))
            ms = int(req.query["wait"].rstrip("ms")) if req.query["wait"].endswith("ms") else 1000
            time.sleep(min(ms, 1000) / 1000)  # brig holds a long poll up to its wait
            return Reply(200, state("j", "running"))
        fake = self.serve(handle)
        job = self.client(fake).submit("x", id="j")
        with self.assertRaises(bc.WaitTimeout):
            job.result(timeout=0.2)
        self.assertEqual(job.status, "running")
        self.assertTrue(all(r.query["wait"].endswith("ms") for r in fake.requests[1:]), fake.requests)

    def test_cancel(self) -> None:
        fake = self.serve(lambda req: Reply(200, {"id": "j", "job_id": "default.j", "status": "cancelled"}
                                            if req.path.endswith("/cancel") else state("j", "running")))
        job = self.client(fake).job("j")
        self.assertEqual(job.cancel(), "cancelled")
        self.assertEqual((fake.requests[1].method, fake.requests[1].path), ("POST", "/v1/jobs/j/cancel"))


def job_events(id: str) -> List[Dict[str, Any]]:
    return [{"job_id": "default." + id, "type": "accepted", "seq": 1},
            {"job_id": "default." + id, "type": "started", "seq": 2},
            {"job_id": "default." + id, "type": "output", "seq": 3, "stream": "stdout", "data": "a\n"},
            {"job_id": "default." + id, "type": "output", "seq": 4, "stream": "stderr", "data": "b\n"},
            terminal(id, "succeeded", seq=5)]


class EventsTest(ClientCase):
    def test_every_event_in_order(self) -> None:
        evs = job_events("j")
        stream = sse([(e["seq"], e) for e in evs])
        chunks = [b": keepalive\n\n"] + [stream[i:i + 7] for i in range(0, len(stream), 7)]

        def handle(req: Request) -> Reply:
            if req.path.endswith("/events"):
                return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=chunks)
            return Reply(200, state("j", "running"))
        fake = self.serve(handle)
        got = list(self.client(fake).job("j").events())
        self.assertEqual([(e.type, e.seq, e.stream, e.data) for e in got],
                         [("accepted", 1, "", ""), ("started", 2, "", ""), ("output", 3, "stdout", "a\n"),
                          ("output", 4, "stderr", "b\n"), ("result", 5, "", "")])
        self.assertTrue(got[-1].terminal)
        self.assertEqual(got[-1].raw["status"], "succeeded")
        self.assertEqual(fake.requests[1].headers["accept"], "text/event-stream")
        self.assertNotIn("last-event-id", fake.requests[1].headers)

    def test_resumes_after_a_drop(self) -> None:
        evs = job_events("j")

        def handle(req: Request) -> Reply:
            if not req.path.endswith("/events"):
                return Reply(200, state("j", "running"))
            after = int(req.headers.get("last-event-id", "0"))
            rest = [(e["seq"], e) for e in evs if e["seq"] > after]
            stream = sse(rest[:2])
            if len(rest) > 2:
                stream += b"id: 99\ndata: {\"half\": "  # cut mid-event
            return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=[stream])
        fake = self.serve(handle)
        with mock.patch.object(_http, "BACKOFF", (0.0,)), mock.patch.object(_job, "BACKOFF", (0.0,)):
            got = list(self.client(fake).job("j").events())
        self.assertEqual([e.seq for e in got], [1, 2, 3, 4, 5])
        self.assertEqual([r.headers.get("last-event-id") for r in fake.requests[1:]], [None, "2", "4"])

    def test_gives_up_without_progress(self) -> None:
        def handle(req: Request) -> Reply:
            if not req.path.endswith("/events"):
                return Reply(200, state("j", "running"))
            return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=[b": keepalive\n\n"])
        fake = self.serve(handle)
        with mock.patch.object(_job, "BACKOFF", (0.0,)), \
                self.assertRaisesRegex(bc.BrigError, "5 connections in a row brought no event"):
            list(self.client(fake).job("j").events())
        self.assertEqual(len(fake.requests), 1 + _job.MAX_RESUMES)

    def test_submitted_job_not_accepted_yet(self) -> None:
        # brig answers NotFound until a dispatcher accepts the job: a job
        # this client submitted asks again; any other job does not.
        evs = job_events("j")

        def handle(req: Request) -> Reply:
            if req.method == "POST" and req.path == "/v1/jobs":
                return Reply(202, state(req.json()["id"], "queued"))
            if sum(r.path == req.path for r in fake.requests) <= 2:
                return problem(404, "NotFound", "brig has no event of job j")
            if req.path.endswith("/cancel"):
                return Reply(200, {"id": "j", "job_id": "default.j", "status": "cancelled"})
            return Reply(200, headers={"Content-Type": "text/event-stream"},
                         chunks=[sse([(e["seq"], e) for e in evs])])
        fake = self.serve(handle)
        c = self.client(fake)
        with mock.patch.object(_job, "BACKOFF", (0.0,)):
            self.assertEqual([e.seq for e in c.submit("x", id="j").events()], [1, 2, 3, 4, 5])
            self.assertEqual(c.submit("x", id="j").cancel(), "cancelled")
            with mock.patch.object(_job, "NOT_YET_WAIT", 0.0), self.assertRaises(bc.NotFound):
                c.submit("x", id="k").cancel()
        self.assertEqual([r.path for r in fake.requests if r.path != "/v1/jobs"],
                         ["/v1/jobs/j/events"] * 3 + ["/v1/jobs/j/cancel"] * 3 + ["/v1/jobs/k/cancel"])

    def test_unknown_job(self) -> None:
        fake = self.serve(lambda req: problem(404, "NotFound", "no job x"))
        job = bc.Job(self.client(fake)._t, state("x", "queued"))
        with self.assertRaises(bc.NotFound):
            next(job.events())

    def test_not_an_event_stream(self) -> None:
        fake = self.serve(lambda req: Reply(200, state("j", "running")))
        with self.assertRaisesRegex(bc.BrigError, "not an event stream"):
            next(self.client(fake).job("j").events())


class FunctionsTest(ClientCase):
    def test_calls(self) -> None:
        info = {"name": "grader", "owner": "tenant", "revision": 3, "function": {"name": "grader"}}

        def handle(req: Request) -> Reply:
            if req.method == "DELETE":
                return Reply(204)
            if req.path == "/v1/functions":
                return Reply(200, {"functions": [info]})
            return Reply(200, info)
        fake = self.serve(handle)
        fns = self.client(fake).functions
        definition = {"name": "grader", "image": "brig/python:latest", "command": ["python3", "/work/main.py"]}
        self.assertEqual(fns.list(), [info])
        self.assertEqual(fns.get("grader"), info)
        self.assertEqual(fns.deploy(definition), info)
        self.assertIsNone(fns.delete("grader"))
        self.assertEqual([(r.method, r.path) for r in fake.requests],
                         [("GET", "/v1/functions"), ("GET", "/v1/functions/grader"),
                          ("PUT", "/v1/functions/grader"), ("DELETE", "/v1/functions/grader")])
        self.assertEqual(fake.requests[2].json(), definition)

    def test_refusals(self) -> None:
        fake = self.serve(lambda req: problem(403, "Forbidden", "network is an admin-only field", field="network"))
        fns = self.client(fake).functions
        with self.assertRaises(ValueError):
            fns.deploy({"image": "x"})
        with self.assertRaises(ValueError):
            fns.get("")
        self.assertEqual(fake.requests, [])
        with self.assertRaises(bc.Forbidden) as cm:
            fns.deploy({"name": "f", "network": True})
        self.assertEqual(cm.exception.field, "network")

    def test_answer_shape_checked(self) -> None:
        fake = self.serve(lambda req: Reply(200, {"functions": "nope"}))
        with self.assertRaises(bc.BrigError):
            self.client(fake).functions.list()


if __name__ == "__main__":
    unittest.main()
