"""Terminal events and problem answers → exceptions (brig_client._errors, _http.problem)."""

from __future__ import annotations

import json
import unittest
from typing import Any, Dict

import brig_client as bc
from brig_client._errors import job_error
from brig_client._http import Response, problem
from brig_client._types import Result

STATUS_CLASSES = [bc.JobFailed, bc.JobTimeout, bc.OOM, bc.Cancelled, bc.Rejected, bc.Infrastructure]


def result(status: str, error_type: str = "", **fields: Any) -> Result:
    ev: Dict[str, Any] = {"job_id": "default.j1", "type": "result", "seq": 4, "status": status,
                          "exit_code": fields.pop("exit_code", 1)}
    if error_type:
        ev["error"] = {"type": error_type, "message": "why"}
    ev.update(fields)
    return Result.from_event("j1", ev)


class JobErrorTest(unittest.TestCase):
    def test_succeeded_raises_nothing(self) -> None:
        self.assertIsNone(job_error(result("succeeded", exit_code=0)))

    def test_each_status_one_class(self) -> None:
        # sdk/errors.go JobError.Is: one sentinel per status.
        cases = [("failed", "NonZeroExit", bc.JobFailed), ("timeout", "Timeout", bc.JobTimeout),
                 ("oom", "OOM", bc.OOM), ("cancelled", "Cancelled", bc.Cancelled),
                 ("rejected", "InvalidJob", bc.Rejected), ("rejected", "NotFound", bc.Rejected),
                 ("error", "NotFound", bc.Infrastructure), ("error", "Infrastructure", bc.Infrastructure)]
        for status, etype, cls in cases:
            with self.subTest(status=status, error_type=etype):
                err = job_error(result(status, etype))
                self.assertIsInstance(err, cls)
                self.assertIsInstance(err, bc.JobError)
                self.assertIsInstance(err, bc.BrigError)
                others = [c for c in STATUS_CLASSES if c is not cls]
                self.assertFalse(any(isinstance(err, c) for c in others), type(err).__mro__)
                self.assertNotIsInstance(err, bc.AuthError)
                self.assertNotIsInstance(err, bc.QuotaExceeded)
                self.assertEqual((err.status, err.error_type, err.message), (status, etype, "why"))

    def test_auth_error_is_also_failed(self) -> None:
        # Go: errors.As(*AuthError) and errors.Is(ErrFailed) both hold.
        denied = [{"resource": "dict:secrets", "action": "write", "message": "not granted"}]
        err = job_error(result("failed", "AuthError", auth_errors=denied, auth_error_count=1))
        self.assertIsInstance(err, bc.AuthError)
        self.assertIsInstance(err, bc.JobFailed)
        self.assertNotIsInstance(err, bc.QuotaExceeded)
        assert isinstance(err, bc.AuthError)
        self.assertEqual(err.denied, denied)
        self.assertEqual(err.result.event["auth_error_count"], 1)
        self.assertEqual(str(err), "job default.j1 failed: AuthError: why")

    def test_auth_error_follows_error_type_not_status(self) -> None:
        # As in Go's JobError.As: the error type decides, whatever the status.
        err = job_error(result("timeout", "AuthError"))
        self.assertIsInstance(err, bc.AuthError)
        self.assertIsInstance(err, bc.JobTimeout)
        self.assertNotIsInstance(err, bc.JobFailed)

    def test_nonzero_exit_is_not_auth_error(self) -> None:
        err = job_error(result("failed", "NonZeroExit", auth_errors=[{"resource": "x", "action": "y", "message": "z"}]))
        self.assertNotIsInstance(err, bc.AuthError)

    def test_quota_exceeded(self) -> None:
        for status, cls in (("failed", bc.JobFailed), ("rejected", bc.Rejected)):
            with self.subTest(status):
                err = job_error(result(status, "QuotaExceeded"))
                self.assertIsInstance(err, bc.QuotaExceeded)
                self.assertIsInstance(err, cls)
                self.assertNotIsInstance(err, bc.AuthError)

    def test_unknown_status_is_a_plain_job_error(self) -> None:
        err = job_error(result("exploded", "Mystery"))
        self.assertIs(type(err), bc.JobError)

    def test_result_kept(self) -> None:
        err = job_error(result("cancelled", "Cancelled", stdout="so far\n", stdout_truncated=True, exit_code=-1))
        assert err is not None
        self.assertEqual((err.result.stdout, err.result.stdout_truncated, err.result.exit_code), ("so far\n", True, -1))

    def test_result_fields(self) -> None:
        r = Result.from_event("j1", {"job_id": "default.j1", "status": "succeeded", "exit_code": 0,
                                     "stdout": "o", "stderr": "e", "output": {"a": [1]}, "duration_ms": 12,
                                     "output_error": ""})
        self.assertEqual((r.ok, r.stdout, r.stderr, r.output, r.duration_ms, r.error_type),
                         (True, "o", "e", {"a": [1]}, 12, ""))

    def test_wait_timeout_is_a_timeout_error(self) -> None:
        self.assertTrue(issubclass(bc.WaitTimeout, TimeoutError))
        self.assertTrue(issubclass(bc.WaitTimeout, bc.BrigError))
        self.assertFalse(issubclass(bc.WaitTimeout, bc.JobError))


def answer(status: int, body: Any, **headers: str) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, {k.lower().replace("_", "-"): v for k, v in headers.items()}, raw)


class ProblemTest(unittest.TestCase):
    def test_classes_by_status(self) -> None:
        cases = [(400, "InvalidJob", bc.APIError), (401, "Unauthorized", bc.Unauthorized),
                 (403, "Forbidden", bc.Forbidden), (404, "NotFound", bc.NotFound),
                 (405, "MethodNotAllowed", bc.APIError), (413, "TooLarge", bc.APIError),
                 (429, "QuotaExceeded", bc.APIError), (502, "Infrastructure", bc.APIError)]
        for status, etype, cls in cases:
            with self.subTest(status):
                err = problem(answer(status, {"type": "urn:brig:error:" + etype, "title": "t", "status": status,
                                              "detail": "d", "error_type": etype}))
                self.assertIs(type(err), cls)
                self.assertEqual((err.status, err.error_type, err.detail, err.title), (status, etype, "d", "t"))
                self.assertNotIsInstance(err, bc.JobError)

    def test_field_named(self) -> None:
        err = problem(answer(400, {"type": "urn:brig:error:InvalidJob", "status": 400, "error_type": "InvalidJob",
                                   "detail": "path leaves /work", "field": 'files["../x"]'}))
        self.assertEqual(err.field, 'files["../x"]')
        self.assertEqual(str(err), '400 InvalidJob: path leaves /work (field files["../x"])')

    def test_error_type_from_urn_when_absent(self) -> None:
        err = problem(answer(503, {"type": "urn:brig:error:Busy", "status": 503}, retry_after="2"))
        self.assertEqual((err.error_type, err.retry_after), ("Busy", 2.0))

    def test_not_json(self) -> None:
        err = problem(answer(502, b"<html>bad gateway</html>"))
        self.assertIs(type(err), bc.APIError)
        self.assertEqual((err.error_type, err.detail, err.title), ("", "<html>bad gateway</html>", "Bad Gateway"))

    def test_huge_text_detail_clipped(self) -> None:
        err = problem(answer(500, b"x" * 100000))
        self.assertEqual(len(err.detail), 4096)


if __name__ == "__main__":
    unittest.main()
