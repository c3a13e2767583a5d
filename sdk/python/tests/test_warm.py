"""Warm mode (taskwire.warm) against a fake warm worker in this process, on
real sockets: several tries at once in one runtime, each on its own comm
connection with its own log stream; cancellation by half-close; retirement
when the worker stops taking connections. And async def tasks in cold mode."""

import asyncio
import io
import json
import socket
import threading
import time
import unittest

import os

from fakeworker import REPO_ROOT, TEST_SECRET, FakeWorker, read_auth
import taskwire
from taskwire import protocol as P
from taskwire.warm import log_mux_header, log_stream_header, mux_log_line, run_warm

CODEC = P.MSGPACK


def startup(ti_id, task, params=None):
    return P.message(
        "StartupDetails",
        ti={"id": ti_id, "dag_id": "etl", "task_id": task, "run_id": "run-1", "map_index": -1, "try_number": 1},
        ti_context={"max_tries": 2, "queue": "python", "entrypoint": task, "params": params or {}},
        next_method="", next_kwargs={}, start_date="2026-11-22T08:00:00Z")


class Try(object):
    """One try the fake worker gave a slot: its requests, answers and end."""

    def __init__(self, worker, conn, ti_id):
        self.worker = worker
        self.conn = conn
        self.ti_id = ti_id
        self.requests = []
        self.terminal = None
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            while True:
                req = self.conn.read_request(timeout=30)
                if req is None:
                    return
                m = req.msg
                self.requests.append(m)
                if m["type"] == "GetVariable":
                    self.conn.write_response(req.id, P.message("VariableResult", key=m["key"],
                                                               value="value-of-" + self.ti_id))
                    continue
                if m["type"] in ("SucceedTask", "TaskState", "RetryTask", "DeferTask"):
                    self.terminal = m
                self.conn.write_response(req.id, P.message("OKResponse"))
        except OSError:
            pass
        finally:
            self.closed.set()

    def cancel(self):
        """What the worker does to cancel a try: half-close its connection."""
        self.conn.sock.shutdown(socket.SHUT_WR)

    def wait(self, timeout=10):
        if not self.closed.wait(timeout):
            raise AssertionError("try %s: connection still open after %ss" % (self.ti_id, timeout))
        return self.terminal


class FakeWarmWorker(object):
    def __init__(self, test, app, slots):
        self.comm = socket.socket()
        self.comm.bind(("127.0.0.1", 0))
        self.comm.listen(64)
        self.logs = socket.socket()
        self.logs.bind(("127.0.0.1", 0))
        self.logs.listen(64)
        self.streams = {}  # ti_id -> [log records]
        self.ended = set()  # ti_ids whose lines all came
        self.muxed = False
        self.log_conns = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.log_thread = threading.Thread(target=self._serve_logs, daemon=True)
        self.log_thread.start()
        self.err = []

        def run():
            try:
                run_warm(app, "127.0.0.1:%d" % self.comm.getsockname()[1],
                         "127.0.0.1:%d" % self.logs.getsockname()[1], CODEC, slots)
            except BaseException as e:  # for the test to see
                self.err.append(e)

        self.runtime = threading.Thread(target=run, daemon=True)
        self.runtime.start()
        test.addCleanup(self.close)

    def start(self, ti_id, task, params=None):
        """Accept a slot's connection and start a try on it."""
        self.comm.settimeout(10)
        c, _ = self.comm.accept()
        c.settimeout(None)
        read_auth(c)
        conn = P.Conn(c, CODEC)
        conn.write_response(0, startup(ti_id, task, params))
        return Try(self, conn, ti_id)

    def _serve_logs(self):
        self.logs.settimeout(0.05)
        readers = []
        while not self.stop.is_set():
            try:
                c, _ = self.logs.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                self.log_conns += 1
            t = threading.Thread(target=self._read_stream, args=(c,), daemon=True)
            t.start()
            readers.append(t)
        for t in readers:
            t.join(5)

    def _read_stream(self, c):
        """Read a log connection: one try's stream (a ti_id header) or the
        process's multiplexed one ({"mux":true}, each line named by its try,
        an empty one ending the try's lines)."""
        c.settimeout(30)
        f = c.makefile("rb")
        try:
            hdr = json.loads(f.readline())
            assert hdr.get("secret") == TEST_SECRET, hdr
            if not hdr.get("mux"):
                recs = [json.loads(l) for l in f.read().decode("utf-8").splitlines() if l.strip()]
                with self.lock:
                    self.streams.setdefault(hdr["ti_id"], []).extend(recs)
                    self.ended.add(hdr["ti_id"])
                return
            with self.lock:
                self.muxed = True
            for raw in f:
                ti_id, try_number, line = raw.rstrip(b"\n").split(b"\t", 2)
                int(try_number)
                with self.lock:
                    recs = self.streams.setdefault(ti_id.decode("utf-8"), [])
                    if line:
                        recs.append(json.loads(line))
                    else:
                        self.ended.add(ti_id.decode("utf-8"))
        finally:
            f.close()
            c.close()

    def events(self, ti_id, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if ti_id in self.ended:
                    return [r["event"] for r in self.streams[ti_id]]
            time.sleep(0.01)
        raise AssertionError("no log stream for %s" % ti_id)

    def retire(self):
        """Stop taking connections, as the worker does to retire a process."""
        self.comm.close()

    def close(self):
        self.retire()
        self.runtime.join(10)
        self.stop.set()
        self.logs.close()
        self.log_thread.join(10)


_started = {}
_started_lock = threading.Lock()


def started(ti_id):
    """Set once the try ti_id's task runs."""
    with _started_lock:
        return _started.setdefault(ti_id, threading.Event())


def make_app():
    app = taskwire.App()
    gate = threading.Event()

    @app.task("async_api")
    async def async_api(ctx):
        v = await ctx.avariable("k")
        await asyncio.sleep(0.05)
        ctx.log.info("async %s read %s" % (ctx.ti.id, v))
        return {"v": v}

    @app.task("sync_api")
    def sync_api(ctx):
        v = ctx.variable("k")
        ctx.log.info("sync %s read %s" % (ctx.ti.id, v))
        return v

    @app.task("gated")
    async def gated(ctx):
        # Runs until both gated tries are in: proves they run at once.
        while not gate.is_set():
            if ctx.params.get("open"):
                gate.set()
            await asyncio.sleep(0.01)
        ctx.log.info("through " + ctx.ti.id)

    @app.task("block")
    async def block(ctx):
        ctx.log.info("started")
        started(ctx.ti.id).set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ctx.log.info("cancelled")
            raise

    @app.task("blocksync")
    def blocksync(ctx):
        ctx.log.info("started")
        started(ctx.ti.id).set()
        while not ctx.cancelled:
            time.sleep(0.01)
        ctx.log.info("cancelled")

    @app.task("blocking_call_on_loop")
    async def blocking_call_on_loop(ctx):
        ctx.variable("k")

    return app


class TestWarm(unittest.TestCase):
    def test_tries_at_once_each_with_its_own_connection_and_log_lines(self):
        w = FakeWarmWorker(self, make_app(), slots=4)
        tries = [w.start("ti-a1", "async_api"), w.start("ti-s1", "sync_api"),
                 w.start("ti-g1", "gated"), w.start("ti-g2", "gated", {"open": True})]
        for t in tries:
            self.assertEqual(t.wait()["type"], "SucceedTask", t.requests)
        a, s = tries[0], tries[1]
        self.assertEqual([m["type"] for m in a.requests], ["GetVariable", "SetXCom", "SucceedTask"])
        self.assertEqual(a.requests[1]["value"], {"v": "value-of-ti-a1"})
        self.assertEqual(s.requests[1]["value"], "value-of-ti-s1")
        self.assertIn("async ti-a1 read value-of-ti-a1", w.events("ti-a1"))
        self.assertEqual(w.events("ti-s1"), ["sync ti-s1 read value-of-ti-s1"])
        self.assertEqual(w.events("ti-g1"), ["through ti-g1"])
        self.assertEqual(w.events("ti-g2"), ["through ti-g2"])
        # The slots connect again for the next tries.
        self.assertEqual(w.start("ti-a2", "async_api").wait()["type"], "SucceedTask")
        self.assertIn("async ti-a2 read value-of-ti-a2", w.events("ti-a2"))
        # Every try's lines came on the process's one log connection.
        self.assertTrue(w.muxed)
        self.assertEqual(w.log_conns, 1)

    def test_cancel_one_among_several(self):
        w = FakeWarmWorker(self, make_app(), slots=3)
        b = w.start("ti-b", "block")
        bs = w.start("ti-bs", "blocksync")
        other = w.start("ti-o", "gated", {"open": True})
        self.assertEqual(other.wait()["type"], "SucceedTask")
        for ti in ("ti-b", "ti-bs"):
            self.assertTrue(started(ti).wait(10), ti + " not started")
        b.cancel()
        bs.cancel()
        b.wait()
        bs.wait()
        for ti in ("ti-b", "ti-bs"):
            self.assertEqual(w.events(ti), ["started", "cancelled", "try cancelled by the worker"])
        # The process goes on serving.
        self.assertEqual(w.start("ti-after", "sync_api").wait()["type"], "SucceedTask")

    def test_blocking_request_on_the_loop_is_refused(self):
        w = FakeWarmWorker(self, make_app(), slots=1)
        out = w.start("ti-x", "blocking_call_on_loop").wait()
        self.assertEqual(out["type"], "RetryTask")
        self.assertIn("await ctx.avariable", out["reason"])

    def test_retired_runtime_returns(self):
        w = FakeWarmWorker(self, make_app(), slots=2)
        self.assertEqual(w.start("ti-1", "sync_api").wait()["type"], "SucceedTask")
        w.retire()
        w.runtime.join(10)
        self.assertFalse(w.runtime.is_alive(), "run_warm still running after the worker closed its listener")
        self.assertEqual(w.err, [])


# GOLDEN_SECRET is the secret in the golden vectors (Go's goldenSecret).
GOLDEN_SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


class TestLogStreamHeader(unittest.TestCase):
    def test_cold_golden_vector(self):
        with open(os.path.join(REPO_ROOT, "protocol", "testdata", "log_stream_cold.jsonl"), "rb") as f:
            want = f.read()
        self.assertEqual(P.log_header(GOLDEN_SECRET), want)

    def test_auth_frame_golden_vector(self):
        with open(os.path.join(REPO_ROOT, "protocol", "testdata", "auth_frame.bin"), "rb") as f:
            want = f.read()
        self.assertEqual(P.auth_frame(GOLDEN_SECRET), want)
        body = P.read_frame(io.BytesIO(want), 256)
        self.assertEqual(json.loads(body), {"type": "Auth", "secret": GOLDEN_SECRET})

    def test_golden_vector(self):
        with open(os.path.join(REPO_ROOT, "protocol", "testdata", "log_stream_header.jsonl"), "rb") as f:
            want = f.read()
        self.assertEqual(log_stream_header("0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", 2, GOLDEN_SECRET), want)

    def test_mux_golden_vector(self):
        with open(os.path.join(REPO_ROOT, "protocol", "testdata", "log_stream_mux.txt"), "rb") as f:
            want = f.read()
        i = "0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a"
        got = (log_mux_header(GOLDEN_SECRET) + mux_log_line(i, 2, b'{"event":"hello","level":"info"}')
               + mux_log_line("other", 1, b'{"event":"tab\\tinside","level":"warning"}') + mux_log_line(i, 2, b""))
        self.assertEqual(got, want)


class TestColdAsync(unittest.TestCase):
    def test_async_def_task_in_cold_mode(self):
        app = taskwire.App()

        @app.task("extract")
        async def extract(ctx):
            v = await ctx.avariable("k")
            await asyncio.sleep(0)
            return {"v": v}

        w = FakeWorker(task="extract")
        self.addCleanup(w.close)
        w.variables["k"] = "x"
        try:
            out = app.run(w.comm_addr, w.logs_addr, w.codec)
        finally:
            w.wait()
        self.assertEqual(out["type"], "SucceedTask")
        self.assertEqual(w.xcoms[("extract", "return_value")], {"v": "x"})


if __name__ == "__main__":
    unittest.main()
