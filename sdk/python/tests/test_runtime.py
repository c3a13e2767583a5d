"""The runtime against a fake worker in this process, on real sockets, in
both codecs and over TCP and unix sockets."""

import contextlib
import io
import logging
import socket
import threading
import unittest

from fakeworker import FakeWorker, read_auth
import taskwire
from taskwire import protocol as P

CODECS = ("msgpack", "json")


def run(app, w, codec=None):
    """Run the try w starts with app and wait for the worker's side."""
    try:
        out = app.run(w.comm_addr, w.logs_addr, codec or w.codec)
    finally:
        w.wait()
    return out


class RuntimeTest(unittest.TestCase):
    def worker(self, **kw):
        w = FakeWorker(**kw)
        self.addCleanup(w.close)
        return w

    def for_each(self, fn, unix_too=False):
        for codec in CODECS:
            for unix in ((False, True) if unix_too else (False,)):
                with self.subTest(codec=codec, unix=unix):
                    fn(codec, unix)


class TestOutcomes(RuntimeTest):
    def test_success_pushes_return_value(self):
        def check(codec, unix):
            app = taskwire.App()
            seen = {}

            @app.task("extract")
            def extract(ctx):
                seen["ti"] = ctx.ti
                seen["params"] = ctx.params
                seen["next_method"] = ctx.next_method
                seen["event"] = ctx.event
                return {"rows": 3, "b": [1, 2.5, None, True], "a": "x"}

            w = self.worker(codec=codec, unix=unix, task="extract", params={"day": "2026-11-22", "n": 5})
            out = run(app, w)
            self.assertEqual(out["type"], "SucceedTask")
            self.assertTrue(out["end_date"].endswith("Z"))
            self.assertEqual(w.terminal, out)
            self.assertEqual(w.xcoms[("extract", "return_value")], {"a": "x", "b": [1, 2.5, None, True], "rows": 3})
            sx = w.requests_of("SetXCom")[0]
            self.assertEqual((sx["dag_id"], sx["run_id"], sx["task_id"], sx["map_index"]), ("etl", "run-1", "extract", -1))
            self.assertEqual([m["type"] for m in w.requests], ["SetXCom", "SucceedTask"])
            self.assertEqual(seen["ti"], taskwire.TaskInstance("ti-1", "etl", "extract", "run-1", -1, 1))
            self.assertEqual(seen["params"], {"day": "2026-11-22", "n": 5})
            self.assertEqual(seen["next_method"], "")
            self.assertIsNone(seen["event"])
        self.for_each(check, unix_too=True)

    def test_none_pushes_nothing(self):
        app = taskwire.App()
        app.register("noop", lambda ctx: None)
        w = self.worker(task="noop")
        self.assertEqual(run(app, w)["type"], "SucceedTask")
        self.assertEqual([m["type"] for m in w.requests], ["SucceedTask"])

    def test_entrypoint_or_task_id(self):
        app = taskwire.App()
        app.register("ep", lambda ctx: "ep")
        app.register("tid", lambda ctx: "tid")
        w = self.worker(task="tid", entrypoint="ep")
        run(app, w)
        self.assertEqual(w.xcoms[("tid", "return_value")], "ep")
        w = self.worker(task="tid", entrypoint="")
        run(app, w)
        self.assertEqual(w.xcoms[("tid", "return_value")], "tid")

    def test_exception_retries_with_traceback(self):
        def check(codec, unix):
            app = taskwire.App()

            @app.task("fail")
            def fail(ctx):
                ctx.log.info("about to fail")
                raise ValueError("failing on purpose")

            w = self.worker(codec=codec, unix=unix, task="fail")
            out = run(app, w)
            self.assertEqual(out["type"], "RetryTask")
            self.assertTrue(out["reason"].startswith("Traceback (most recent call last):"), out["reason"])
            self.assertTrue(out["reason"].endswith("ValueError: failing on purpose"), out["reason"])
            self.assertIn("in fail", out["reason"])
            rec = w.find_log(lambda r: r["level"] == "error" and r["logger"] == "taskwire.sdk")
            self.assertIsNotNone(rec, w.log_lines)
            self.assertIn("ValueError: failing on purpose", rec["event"])
            self.assertIn("Traceback (most recent call last):", rec["exception"])
            self.assertIn("ValueError: failing on purpose", rec["exception"])
            self.assertEqual(rec["task_id"], "fail")
            self.assertIsNotNone(w.find_log(lambda r: r["event"] == "about to fail" and r["logger"] == "task"))
        self.for_each(check, unix_too=True)

    def test_long_traceback_is_truncated_keeping_the_error(self):
        app = taskwire.App()

        @app.task("t")
        def t(ctx):
            raise RuntimeError("x" * 40000 + " the end")

        w = self.worker(task="t")
        out = run(app, w)
        self.assertLessEqual(len(out["reason"]), taskwire.runtime.MAX_REASON_LEN + 20)
        self.assertTrue(out["reason"].startswith("[truncated]\n"))
        self.assertTrue(out["reason"].endswith("the end"))

    def test_fail_and_skip(self):
        def check(codec, unix):
            app = taskwire.App()

            @app.task("f")
            def f(ctx):
                raise taskwire.Fail("bad input")

            @app.task("s")
            def s(ctx):
                raise taskwire.Skip("nothing new")

            @app.task("fe")
            def fe(ctx):
                raise taskwire.Fail(KeyError("k"))

            w = self.worker(codec=codec, task="f")
            out = run(app, w)
            self.assertEqual((out["type"], out["state"], out["reason"]), ("TaskState", "failed", "bad input"))
            w = self.worker(codec=codec, task="s")
            out = run(app, w)
            self.assertEqual((out["type"], out["state"], out["reason"]), ("TaskState", "skipped", "nothing new"))
            w = self.worker(codec=codec, task="fe")
            self.assertEqual(run(app, w)["reason"], "'k'")
        self.for_each(check)

    def test_unknown_task_fails(self):
        app = taskwire.App()
        w = self.worker(task="missing")
        out = run(app, w)
        self.assertEqual((out["type"], out["state"]), ("TaskState", "failed"))
        self.assertIn("no task 'missing'", out["reason"])
        self.assertIsNotNone(w.find_log(lambda r: r["event"] == "no code to run" and r["level"] == "error"))

    def test_unserializable_return_value_retries(self):
        app = taskwire.App()
        app.register("t", lambda ctx: object())
        w = self.worker(task="t")
        out = run(app, w)
        self.assertEqual(out["type"], "RetryTask")
        self.assertIn("cannot encode object", out["reason"])


class TestRequests(RuntimeTest):
    def test_variable_connection_and_xcoms(self):
        def check(codec, unix):
            app = taskwire.App()
            got = {}

            @app.task("t")
            def t(ctx):
                got["greeting"] = ctx.variable("greeting")
                got["default"] = ctx.variable("missing", default="dflt")
                try:
                    ctx.variable("missing")
                except taskwire.NotFound as e:
                    got["not_found"] = (e.error, e.detail.get("message"), isinstance(e, taskwire.APIError))
                ctx.set_variable("out", "v1", description="written")
                got["conn"] = ctx.connection("db")
                try:
                    ctx.connection("nope")
                except taskwire.APIError as e:
                    got["conn_err"] = e.code
                ctx.xcom_push("k", {"z": 1, "a": [1, 2]})
                got["own"] = ctx.xcom_pull(key="k")
                got["other"] = ctx.xcom_pull(task_id="up", key="value")
                got["rv"] = ctx.xcom_pull(task_id="up")
                got["missing"] = ctx.xcom_pull(task_id="up", key="nope")
                got["missing_default"] = ctx.xcom_pull(task_id="up", key="nope", default=7)
                ctx.xcom_delete("k")
                got["deleted"] = ctx.xcom_pull(key="k")
                ctx.mask_secret("hunter2")

            w = self.worker(codec=codec, unix=unix, task="t")
            w.variables["greeting"] = "hello"
            w.connections["db"] = {"conn_type": "postgres", "host": "db.internal", "port": 5432, "login": "u",
                                   "password": "pw", "schema": "s", "extra": {"sslmode": "require"}}
            w.xcoms[("up", "value")] = 42
            w.xcoms[("up", "return_value")] = [1.5, "x"]
            out = run(app, w)
            self.assertEqual(out["type"], "SucceedTask")
            self.assertEqual(got["greeting"], "hello")
            self.assertEqual(got["default"], "dflt")
            self.assertEqual(got["not_found"], ("not_found", "variable missing not found", True))
            self.assertEqual(w.variables["out"], "v1")
            self.assertEqual(w.requests_of("PutVariable")[0]["description"], "written")
            c = got["conn"]
            self.assertEqual((c.conn_id, c.conn_type, c.host, c.port, c.login, c.password, c.schema, c.extra),
                             ("db", "postgres", "db.internal", 5432, "u", "pw", "s", {"sslmode": "require"}))
            self.assertEqual(c["host"], "db.internal")
            self.assertNotIn("pw", repr(c))
            self.assertEqual(got["conn_err"], "not_found")
            self.assertEqual(got["own"], {"a": [1, 2], "z": 1})
            self.assertEqual(got["other"], 42)
            self.assertEqual(got["rv"], [1.5, "x"])
            self.assertIsNone(got["missing"])
            self.assertEqual(got["missing_default"], 7)
            self.assertIsNone(got["deleted"])
            gx = w.requests_of("GetXCom")[1]
            self.assertEqual((gx["dag_id"], gx["run_id"], gx["task_id"], gx["key"]), ("etl", "run-1", "up", "value"))
            self.assertIsNone(gx["map_index"])
            raw = [m for _, m in w.raw_requests]
            self.assertEqual([m["type"] for m in raw], [m["type"] for m in w.requests])
            self.assertEqual(list(raw[w.requests.index(gx)]), ["type", "key", "dag_id", "run_id", "task_id"])
            self.assertIn({"type": "MaskSecret", "value": "hunter2"}, raw)
            self.assertEqual([i for i, _ in w.raw_requests], list(range(1, len(raw) + 1)))
            self.assertEqual(w.requests_of("DeleteXCom")[0]["map_index"], -1)
        self.for_each(check, unix_too=True)

    def test_stale_and_wrong_id_answers_are_skipped(self):
        def answer(conn, req):
            if req.msg["type"] == "GetVariable":
                conn.write_response(req.id + 100, P.message("VariableResult", key="x", value="stale"))
                conn.write_response(req.id, P.message("VariableResult", key="k", value="fresh"))
                return True
            return False

        app = taskwire.App()
        got = []
        app.register("t", lambda ctx: got.append(ctx.variable("k")))
        w = self.worker(task="t", answer=answer)
        run(app, w)
        self.assertEqual(got, ["fresh"])

    def test_undecodable_answer_raises_in_the_task(self):
        def answer(conn, req):
            if req.msg["type"] == "GetVariable":
                conn.write_body(conn.codec.encode([req.id, {"type": "Bogus"}, None]))
                return True
            return False

        app = taskwire.App()
        got = []

        @app.task("t")
        def t(ctx):
            try:
                ctx.variable("k")
            except taskwire.ProtocolError as e:
                got.append(str(e))

        w = self.worker(task="t", answer=answer)
        self.assertEqual(run(app, w)["type"], "SucceedTask")
        self.assertIn("unknown message type 'Bogus'", got[0])

    def test_request_timeout(self):
        def answer(conn, req):
            return req.msg["type"] == "GetVariable"  # never answered

        app = taskwire.App(request_timeout=0.2)
        got = []

        @app.task("t")
        def t(ctx):
            try:
                ctx.variable("k")
            except TimeoutError as e:
                got.append(str(e))

        w = self.worker(task="t", answer=answer)
        self.assertEqual(run(app, w)["type"], "SucceedTask")
        self.assertIn("no answer from the worker to GetVariable", got[0])

    def test_requests_from_threads(self):
        app = taskwire.App()
        results = []

        @app.task("t")
        def t(ctx):
            def work(i):
                ctx.xcom_push("k%d" % i, i)
                results.append(ctx.xcom_pull(key="k%d" % i))
            ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for th in ts:
                th.start()
            for th in ts:
                th.join()

        w = self.worker(task="t")
        run(app, w)
        self.assertEqual(sorted(results), list(range(8)))
        ids_ok = len(w.requests) == 17
        self.assertTrue(ids_ok, len(w.requests))


class TestTooLarge(RuntimeTest):
    def test_too_large_raises_naming_the_limit(self):
        app = taskwire.App()
        got = {}

        @app.task("t")
        def t(ctx):
            ctx.xcom_push("small", "ok")
            try:
                ctx.xcom_push("big", "x" * 5000)
            except taskwire.TooLarge as e:
                got["err"] = e

        w = self.worker(task="t")
        w.xcom_limit = 1024
        out = run(app, w)
        self.assertEqual(out["type"], "SucceedTask")
        e = got["err"]
        self.assertIsInstance(e, taskwire.APIError)
        self.assertEqual((e.code, e.limit), ("too_large", 1024))
        self.assertIn("1024 bytes", str(e))
        self.assertEqual(w.xcoms[("t", "small")], "ok")
        self.assertNotIn(("t", "big"), w.xcoms)

    def test_too_large_without_a_limit_says_so(self):
        e = taskwire.APIError.from_response({"error": "too_large", "detail": {"message": "too big"}})
        self.assertIsInstance(e, taskwire.TooLarge)
        self.assertIsNone(e.limit)
        self.assertIn("did not name the limit", str(e))
        e = taskwire.APIError.from_response({"error": "too_large", "detail": {"message": "big", "limit": 2048}})
        self.assertEqual((e.limit, str(e)), (2048, "too_large: big (the limit is 2048 bytes)"))


class TestLogging(RuntimeTest):
    def test_log_lines(self):
        def check(codec, unix):
            app = taskwire.App(log_level=logging.DEBUG)

            @app.task("t")
            def t(ctx):
                ctx.log.debug("debugging", extra={"n": 1})
                ctx.log.info("hello %s", "world", extra={"rows": 3, "event": "shadow", "when": ctx.start_date})
                ctx.log.warning("careful")
                logging.getLogger("mylib.sub").info("from a library")
                logging.getLogger("mylib.sub").debug("library debug is below INFO")
                try:
                    {}["nope"]
                except KeyError:
                    ctx.log.exception("caught")

            w = self.worker(codec=codec, unix=unix, task="t")
            run(app, w)
            lines = w.log_lines
            for r in lines:
                self.assertRegex(r["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
                self.assertIn(r["level"], ("debug", "info", "warning", "error"))
            self.assertEqual(list(lines[0])[:4], ["timestamp", "level", "event", "logger"])
            d = w.find_log(lambda r: r["event"] == "debugging")
            self.assertEqual((d["level"], d["logger"], d["n"]), ("debug", "task", 1))
            h = w.find_log(lambda r: r["event"] == "hello world")
            self.assertEqual((h["level"], h["rows"], h["event_"], h["when"]), ("info", 3, "shadow", "2026-11-22T08:00:00Z"))
            self.assertEqual(w.find_log(lambda r: r["event"] == "careful")["level"], "warning")
            lib = w.find_log(lambda r: r["event"] == "from a library")
            self.assertEqual(lib["logger"], "mylib.sub")
            self.assertIsNone(w.find_log(lambda r: r["event"] == "library debug is below INFO"))
            e = w.find_log(lambda r: r["event"] == "caught")
            self.assertEqual(e["level"], "error")
            self.assertIn("KeyError: 'nope'", e["exception"])
        self.for_each(check, unix_too=True)

    def test_task_log_level(self):
        app = taskwire.App()  # INFO

        @app.task("t")
        def t(ctx):
            ctx.log.debug("hidden")
            ctx.log.info("shown")

        w = self.worker(task="t")
        run(app, w)
        self.assertIsNone(w.find_log(lambda r: r["event"] == "hidden"))
        self.assertIsNotNone(w.find_log(lambda r: r["event"] == "shown"))

    def test_handler_removed_after_run(self):
        root = logging.getLogger()
        before = list(root.handlers), root.level
        app = taskwire.App()
        app.register("t", lambda ctx: None)
        run(app, self.worker(task="t"))
        self.assertEqual((list(root.handlers), root.level), before)

    def test_logs_unreachable_falls_back_to_stderr(self):
        app = taskwire.App()

        @app.task("t")
        def t(ctx):
            ctx.log.info("to stderr", extra={"k": "v"})

        w = self.worker(task="t")
        # A port nothing listens on.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = "127.0.0.1:%d" % s.getsockname()[1]
        s.close()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                out = app.run(w.comm_addr, dead, "msgpack")
            finally:
                w.wait()
        self.assertEqual(out["type"], "SucceedTask")
        self.assertIn("logs to stderr", err.getvalue())
        self.assertIn('"event":"to stderr"', err.getvalue())
        self.assertIn('"k":"v"', err.getvalue())
        self.assertEqual(w.log_lines, [])


class TestDeferral(RuntimeTest):
    def test_defer_sends_defer_task(self):
        def check(codec, unix):
            app = taskwire.App()
            after = []

            @app.task("wait")
            def wait(ctx):
                try:
                    ctx.defer(trigger="timedelta", kwargs={"delta": 1}, method="resume",
                              next_kwargs={"round": 1, "a": "b"}, timeout=90)
                except Exception:
                    after.append("caught by except Exception")
                after.append("not reached")

            w = self.worker(codec=codec, unix=unix, task="wait")
            out = run(app, w)
            self.assertEqual(after, [])
            self.assertEqual(out, {"type": "DeferTask", "classpath": "timedelta", "trigger_kwargs": {"delta": 1},
                                   "trigger_timeout": "1m30s", "next_method": "resume",
                                   "next_kwargs": {"a": "b", "round": 1}})
            self.assertEqual(w.terminal, out)
            self.assertEqual([m["type"] for m in w.requests], ["DeferTask"])
        self.for_each(check, unix_too=True)

    def test_defer_timeouts(self):
        import datetime as dt
        from taskwire.context import _timeout
        self.assertEqual(_timeout(None), "")
        self.assertEqual(_timeout(0), "")
        self.assertEqual(_timeout(1.5), "1.5s")
        self.assertEqual(_timeout(3600), "1h0m0s")
        self.assertEqual(_timeout(dt.timedelta(minutes=2, milliseconds=5)), "2m0.005s")
        self.assertEqual(_timeout("90s"), "90s")
        self.assertEqual(_timeout(0.0005), "500\u00b5s")
        self.assertEqual(taskwire.go_duration(1), "1ns")
        self.assertEqual(taskwire.go_duration(1500000), "1.5ms")
        self.assertEqual(taskwire.go_duration(-90 * 10 ** 9), "-1m30s")
        with self.assertRaises(ValueError):
            _timeout("soon")
        with self.assertRaises(ValueError):
            _timeout(-1)

    def test_defer_returned_value_ignored_and_bad_args(self):
        app = taskwire.App()
        errors = []

        @app.task("t")
        def t(ctx):
            for kw in ({"method": ""}, {"method": "__fail__"}):
                try:
                    ctx.defer("timedelta", {"delta": 1}, **kw)
                except ValueError as e:
                    errors.append(str(e))
            try:
                ctx.defer("timedelta", {"delta": 1}, "resume")
            except taskwire.TaskDeferred:
                pass
            return "ignored"

        w = self.worker(task="t")
        out = run(app, w)
        self.assertEqual(out["type"], "DeferTask")
        self.assertEqual(len(errors), 2)
        self.assertEqual([m["type"] for m in w.requests], ["DeferTask"])  # no return_value push
        self.assertIsNotNone(w.find_log(lambda r: "deferred, then" in r["event"] and r["level"] == "warning"))

    def test_defer_refused_by_worker_retries(self):
        def answer(conn, req):
            if req.msg["type"] == "DeferTask":
                conn.write_response(req.id, None, {"error": "bad_request", "detail": {"message": "bad trigger"}})
                return True
            return False

        app = taskwire.App()
        app.register("t", lambda ctx: ctx.defer("nope", {}, "resume"))
        w = self.worker(task="t", answer=answer)
        out = run(app, w)
        self.assertEqual(out["type"], "RetryTask")
        self.assertIn("APIError: bad_request: bad trigger", out["reason"])

    def test_resume_into_method_with_event(self):
        def check(codec, unix):
            app = taskwire.App()
            seen = {}

            @app.task("wait")
            def wait(ctx):
                seen["main"] = True

            @app.method("wait", "resume")
            def resume(ctx):
                seen["method"] = ctx.next_method
                seen["kwargs"] = ctx.next_kwargs
                ctx.log.info("resumed", extra={"trigger_event": ctx.event})
                return ctx.event

            w = self.worker(codec=codec, unix=unix, task="wait", next_method="resume",
                            next_kwargs={"round": 1, "event": {"status": "done", "moment": "2026-11-22T08:00:01Z"}})
            out = run(app, w)
            self.assertEqual(out["type"], "SucceedTask")
            self.assertNotIn("main", seen)
            self.assertEqual(seen["method"], "resume")
            self.assertEqual(seen["kwargs"]["round"], 1)
            self.assertEqual(w.xcoms[("wait", "return_value")], {"moment": "2026-11-22T08:00:01Z", "status": "done"})
            r = w.find_log(lambda r: r["event"] == "resumed")
            self.assertEqual(r["trigger_event"]["status"], "done")
        self.for_each(check, unix_too=True)

    def test_resume_without_method_runs_main(self):
        app = taskwire.App()
        seen = []
        app.register("t", lambda ctx: seen.append((ctx.next_method, ctx.event)))
        w = self.worker(task="t", next_method="later", next_kwargs={"event": 5})
        self.assertEqual(run(app, w)["type"], "SucceedTask")
        self.assertEqual(seen, [("later", 5)])

    def test_resume_with_unknown_task_fails(self):
        app = taskwire.App()
        w = self.worker(task="gone", next_method="resume")
        out = run(app, w)
        self.assertEqual((out["type"], out["state"]), ("TaskState", "failed"))
        self.assertIn("no method 'resume' for task 'gone'", out["reason"])

    def test_fail_method_retries_without_user_code(self):
        def check(codec, unix):
            app = taskwire.App()
            ran = []
            app.register("wait", lambda ctx: ran.append("main"))
            app.register_method("wait", "resume", lambda ctx: ran.append("resume"))
            w = self.worker(codec=codec, task="wait", next_method="__fail__",
                            next_kwargs={"error": "trigger timed out after 1h"})
            out = run(app, w)
            self.assertEqual(ran, [])
            self.assertEqual((out["type"], out["reason"]), ("RetryTask", "trigger timed out after 1h"))
            self.assertIsNotNone(w.find_log(lambda r: r["level"] == "error" and "trigger failed" in r["event"]))
            w = self.worker(codec=codec, task="wait", next_method="__fail__")
            self.assertEqual(run(app, w)["reason"], "trigger failed")
        self.for_each(check)

    def test_fail_method_is_reserved(self):
        app = taskwire.App()
        with self.assertRaises(ValueError):
            app.register_method("t", "__fail__", lambda ctx: None)
        app.register("t", lambda ctx: None)
        with self.assertRaises(ValueError):
            app.register("t", lambda ctx: None)


class TestConnection(RuntimeTest):
    def serve_raw(self, serve):
        ln = socket.socket()
        ln.bind(("127.0.0.1", 0))
        ln.listen(1)
        self.addCleanup(ln.close)
        t = threading.Thread(target=lambda: serve(ln.accept()[0]))
        t.start()
        self.addCleanup(t.join, 5)
        return "127.0.0.1:%d" % ln.getsockname()[1]

    def test_worker_hangs_up_before_startup(self):
        addr = self.serve_raw(lambda c: (read_auth(c), c.close()))
        with self.assertRaisesRegex(ConnectionError, "before StartupDetails"):
            taskwire.App().run(addr, "", "msgpack")

    def test_worker_refuses_the_secret(self):
        # A worker that does not take the secret closes the connection
        # unread: the runtime fails, it does not hang.
        addr = self.serve_raw(lambda c: c.close())
        with self.assertRaises(ConnectionError):
            taskwire.App().run(addr, "", "msgpack")

    def test_first_frame_must_be_startup(self):
        def serve(c):
            conn = P.Conn(c)
            conn.write_response(1, P.message("OKResponse"))
            conn.read_body(timeout=5)
            c.close()

        addr = self.serve_raw(serve)
        with self.assertRaisesRegex(P.ProtocolError, "want StartupDetails with id 0"):
            taskwire.App().run(addr, "", "msgpack")

    def test_worker_gone_mid_task(self):
        def answer(conn, req):
            conn.close()
            return "stop"

        app = taskwire.App()
        seen = []

        @app.task("t")
        def t(ctx):
            try:
                ctx.variable("k")
            except taskwire.WorkerGone as e:
                seen.append(str(e))
                raise

        w = self.worker(task="t", answer=answer)
        with self.assertRaises(taskwire.WorkerGone):
            run(app, w)
        self.assertEqual(len(seen), 1)

    def test_dial_addresses(self):
        with self.assertRaises(ValueError):
            taskwire.dial("no-port")
        with self.assertRaises(OSError):
            taskwire.dial("/nonexistent/dir/sock", timeout=1)


if __name__ == "__main__":
    unittest.main()
