"""brig_client against a real brig: its HTTP API, dispatcher, worker and Docker.

Skipped unless BRIG_URL and BRIG_TOKEN are set (e2e/python_test.go sets
them to the e2e stack's HTTP address and the default tenant's token).
Every job has its own timeout, so no test waits for ever; waits are on
events and terminal states, never on sleeps.
"""

from __future__ import annotations

import os
import secrets
import unittest

import brig_client as bc

URL, TOKEN = os.environ.get("BRIG_URL", ""), os.environ.get("BRIG_TOKEN", "")
WAIT = 120.0  # the most a test waits for one job's end (seconds)


def rid(prefix: str) -> str:
    return "%s-%s" % (prefix, secrets.token_hex(4))


@unittest.skipUnless(URL and TOKEN, "BRIG_URL and BRIG_TOKEN name no brig to test against")
class E2ECase(unittest.TestCase):
    def setUp(self) -> None:
        self.c = bc.Client(URL, TOKEN)
        self.addCleanup(self.c.close)


class RunE2E(E2ECase):
    def test_run_gives_the_job_its_input(self) -> None:
        code = ("import json, os, sys\n"
                "print('stdin:', sys.stdin.read().strip())\n"
                "print('args:', json.dumps(json.load(open('/work/args.json')), sort_keys=True))\n"
                "print('file:', open('/work/in/data.txt').read().strip())\n"
                "print('env:', os.environ['GREETING'])\n"
                "json.dump({'ok': True}, open('/work/out/result.json', 'w'))\n")
        r = self.c.run(code, args={"n": 3, "tags": ["<a>", "&"]}, stdin="line one\n",
                       files={"in/data.txt": "café data\n"}, env={"GREETING": "hello, world"}, timeout=30)
        self.assertEqual(r.stdout, 'stdin: line one\nargs: {"n": 3, "tags": ["<a>", "&"]}\n'
                                   "file: café data\nenv: hello, world\n")
        self.assertEqual((r.status, r.exit_code, r.output, r.ok), ("succeeded", 0, {"ok": True}, True))
        self.assertTrue(r.job_id.endswith("." + r.id), r.job_id)
        self.assertEqual(r.event["type"], "result")

    def test_same_id_runs_once(self) -> None:
        id = rid("py-once")
        code = "import secrets; print(secrets.token_hex(8))"
        first = self.c.run(code, id=id)
        again = self.c.run(code, id=id)
        self.assertEqual(first.stdout, again.stdout, "the second POST ran the job again")

    def test_failed_with_exit_code(self) -> None:
        with self.assertRaises(bc.JobFailed) as cm:
            self.c.run("import sys\nprint('partial')\nsys.exit(3)")
        r = cm.exception.result
        self.assertEqual((r.status, r.exit_code, r.stdout, r.error_type), ("failed", 3, "partial\n", "NonZeroExit"))
        self.assertNotIsInstance(cm.exception, bc.AuthError)

    def test_job_timeout(self) -> None:
        with self.assertRaises(bc.JobTimeout) as cm:
            self.c.run("import time\nprint('waiting', flush=True)\ntime.sleep(60)", timeout=1)
        self.assertEqual(cm.exception.result.status, "timeout")
        self.assertEqual(cm.exception.result.error_type, "Timeout")

    def test_oom(self) -> None:
        code = ("chunks = []\nfor _ in range(300):\n"
                "    chunks.append(bytearray(b'x') * (1 << 20))\nprint('allocated')\n")
        with self.assertRaises(bc.OOM) as cm:
            self.c.run(code, limits={"memory_mb": 32}, timeout=60)
        self.assertNotIn("allocated", cm.exception.result.stdout)

    def test_rejected_unknown_function(self) -> None:
        name = rid("no-such-fn")
        with self.assertRaises(bc.Rejected) as cm:
            self.c.run("print(1)", function=name)
        self.assertEqual(cm.exception.error_type, "NotFound")
        self.assertIn(name, cm.exception.message)

    def test_invalid_job_refused_with_its_field(self) -> None:
        with self.assertRaises(bc.APIError) as cm:
            self.c.run("print(1)", files={"../etc/x": "x"})
        e = cm.exception
        self.assertEqual((e.status, e.error_type, e.field), (400, "InvalidJob", 'files["../etc/x"]'))

    def test_scopes_need_an_unrestricted_job(self) -> None:
        # python's default is restricted: brig rejects, naming restricted.
        with self.assertRaises(bc.Rejected) as cm:
            self.c.run("print(1)", scopes=["dict:d:read"])
        self.assertIn("restricted", str(cm.exception))
        name = rid("d")
        r = self.c.run("import brig\nbrig.Dict(%r).put('k', 1)\nprint(brig.Dict(%r).get('k'))" % (name, name),
                       scopes=["dict:%s:read" % name, "dict:%s:write" % name], restricted=False)
        self.assertEqual(r.stdout, "1\n")

    def test_auth_error(self) -> None:
        with self.assertRaises(bc.AuthError) as cm:
            self.c.run("import brig\nbrig.Dict('secrets').put('k', 1)")
        e = cm.exception
        self.assertIsInstance(e, bc.JobFailed)
        self.assertEqual((e.status, e.error_type), ("failed", "AuthError"))
        self.assertEqual([(d["resource"], d["action"]) for d in e.denied], [("dict:secrets", "write")])
        self.assertIn("brig.AuthError", e.result.stderr)


class JobE2E(E2ECase):
    def test_submit_events_result(self) -> None:
        job = self.c.submit("import sys\nprint('one', flush=True)\nprint('two', file=sys.stderr)\nprint('three')",
                            timeout=30)
        evs = list(job.events())
        types = [e.type for e in evs]
        self.assertEqual(types[0], "accepted")
        self.assertIn("started", types)
        self.assertEqual(types[-1], "result")
        self.assertEqual(sum(e.terminal for e in evs), 1)
        out = "".join(e.data for e in evs if e.type == "output" and e.stream == "stdout")
        self.assertEqual(out, "one\nthree\n")
        r = job.result(timeout=WAIT)
        self.assertEqual((r.status, r.stdout, r.stderr), ("succeeded", "one\nthree\n", "two\n"))
        self.assertEqual(evs[-1].raw["stdout"], r.stdout)
        # A second reader replays the same events.
        self.assertEqual([e.raw for e in self.c.job(job.id).events()], [e.raw for e in evs])

    def test_cancel_running_job(self) -> None:
        job = self.c.submit("import time\nprint('started', flush=True)\ntime.sleep(60)", timeout=50)
        for ev in job.events():
            if ev.type == "output" and "started" in ev.data:
                break
            self.assertFalse(ev.terminal, "ended before it printed: %r" % ev.raw)
        self.assertEqual(job.cancel(), "cancelled")
        with self.assertRaises(bc.Cancelled) as cm:
            job.result(timeout=WAIT)
        self.assertEqual(cm.exception.result.stdout, "started\n", "a cancelled job keeps its output")
        self.assertEqual(job.cancel(), "cancelled", "cancelling again reports how it ended")

    def test_result_wait_bound(self) -> None:
        job = self.c.submit("import time\ntime.sleep(60)", timeout=20)
        self.addCleanup(job.cancel)
        with self.assertRaises(bc.WaitTimeout):
            job.result(timeout=1)

    def test_unknown_job(self) -> None:
        with self.assertRaises(bc.NotFound):
            self.c.job(rid("never-submitted"))
        with self.assertRaises(bc.NotFound):
            bc.Job(self.c._t, {"id": rid("never"), "status": "queued"}).cancel()

    def test_bad_token(self) -> None:
        with bc.Client(URL, "brig_bm90LWEtY3JlZA") as c, self.assertRaises(bc.Unauthorized):
            c.status()

    def test_status(self) -> None:
        st = self.c.status()
        self.assertEqual(st["tenant"], "default")
        for k in ("max_running", "max_queued", "max_storage_mb", "queued", "running"):
            self.assertIsInstance(st[k], int, k)


class FunctionsE2E(E2ECase):
    def test_deploy_run_delete(self) -> None:
        name = rid("py-e2e")
        fns = self.c.functions
        info = fns.deploy({"name": name, "image": "brig/python:latest", "command": ["python3", "/work/main.py"],
                           "env": {"PATH": "/usr/bin:/bin", "WHO": "tenant"}, "timeout_ms": 20000})
        self.addCleanup(self._delete, name)
        self.assertEqual((info["name"], info["owner"], info["function"]["image"]), (name, "tenant", "brig/python:latest"))
        self.assertGreater(info["revision"], 0)
        self.assertEqual(fns.get(name)["revision"], info["revision"])
        self.assertIn(name, [f["name"] for f in fns.list()])
        self.assertEqual(self.c.run("import os; print(os.environ['WHO'])", function=name).stdout, "tenant\n")
        fns.delete(name)
        with self.assertRaises(bc.NotFound):
            fns.get(name)
        with self.assertRaises(bc.NotFound):
            fns.delete(name)

    def _delete(self, name: str) -> None:
        try:
            self.c.functions.delete(name)
        except bc.NotFound:
            pass

    def test_builtins_listed_and_kept(self) -> None:
        owners = {f["name"]: f["owner"] for f in self.c.functions.list()}
        self.assertEqual(owners.get("python"), "builtin")
        self.assertEqual(self.c.functions.get("python")["function"]["image"], "brig/python:latest")
        with self.assertRaises(bc.Forbidden):
            self.c.functions.delete("python")

    def test_admin_only_field_forbidden(self) -> None:
        name = rid("py-e2e-net")
        with self.assertRaises(bc.Forbidden) as cm:
            self.c.functions.deploy({"name": name, "image": "brig/python:latest",
                                     "command": ["python3", "/work/main.py"], "network": True})
        self.assertEqual(cm.exception.field, "network")
        with self.assertRaises(bc.NotFound):
            self.c.functions.get(name)

    def test_invalid_definition(self) -> None:
        with self.assertRaises(bc.APIError) as cm:
            self.c.functions.deploy({"name": rid("py-e2e-bad"), "image": "brig/python:latest", "command": []})
        self.assertEqual((cm.exception.status, cm.exception.error_type), (400, "InvalidFunction"))
        self.assertEqual(cm.exception.field, "command")


if __name__ == "__main__":
    unittest.main()
