"""TaskwireExecutor against a small HTTP server standing in for taskwire's
public API (real HTTP on 127.0.0.1; Airflow's real workload models)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_spec import make_workload

from airflow.utils.state import TaskInstanceState
from taskwire_airflow.client import Client
from taskwire_airflow.executor import TaskwireExecutor
from taskwire_airflow.spec import Settings


class FakeTaskwire(ThreadingHTTPServer):
    """Answers submits once `hold` of them are in flight at once (or after
    5 s), records the most in flight; a watch answers a finished record."""

    daemon_threads = True

    def __init__(self, hold: int):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hold = hold
        self.cond = threading.Condition()
        self.in_flight = self.most = self.n = 0


class Handler(BaseHTTPRequestHandler):
    server: FakeTaskwire

    def log_message(self, *args):
        pass

    def _json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        s = self.server
        spec = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with s.cond:
            s.in_flight += 1
            s.n += 1
            s.most = max(s.most, s.in_flight)
            s.cond.notify_all()
            s.cond.wait_for(lambda: s.in_flight >= s.hold, timeout=5)
            s.in_flight -= 1
        self._json({"id": "tw-" + spec["params"]["airflow"]["ti_id"], "state": "queued"})

    def do_GET(self):
        self._json({"state": "success"})


@pytest.mark.parametrize("parallelism,want_most", [(8, 3), (1, 1)])
def test_heartbeat_submits_in_parallel(parallelism, want_most):
    srv = FakeTaskwire(hold=want_most)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    ex = TaskwireExecutor()
    ex.settings = Settings(api_url=f"http://127.0.0.1:{srv.server_address[1]}", submit_parallelism=parallelism)
    ex.client = Client(ex.settings.api_url)
    try:
        ws = [make_workload(queue="default", map_index=i) for i in range(3)]
        ex._process_workloads(ws)
        assert srv.n == 3
        assert srv.most == want_most
        for w in ws:
            assert w.key in ex.running
            assert ex.event_buffer[w.key] == (TaskInstanceState.QUEUED, f"tw-{w.ti.id}")
    finally:
        ex.terminate()
        srv.shutdown()
        srv.server_close()
