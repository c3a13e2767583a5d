"""A fake worker for the tests: the worker's side of the task protocol on
real sockets (TCP or unix), in threads of the test process. It sends
StartupDetails, answers requests from in-memory stores and records what the
task sent and logged."""

import json
import os
import shutil
import socket
import tempfile
import threading

from taskwire import protocol

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

TERMINALS = ("SucceedTask", "TaskState", "RetryTask", "DeferTask")

# TEST_SECRET is the runtime's secret in these tests (TASKWIRE_COMM_SECRET,
# set for this process and the runtimes it starts): the fake workers check
# that every connection presents it first, as the worker does.
TEST_SECRET = "0123456789abcdef0123456789abcdef"
os.environ[protocol.ENV_COMM_SECRET] = TEST_SECRET


def read_auth(c):
    """Read the auth frame a runtime sends first on a comm connection and
    check its secret; raise AssertionError when it is not there."""
    body = protocol.read_frame(c.makefile("rb", buffering=0), 256)
    if body is None:
        raise AssertionError("comm connection closed before its auth frame")
    auth = json.loads(body)
    if auth != {"type": "Auth", "secret": TEST_SECRET}:
        raise AssertionError("auth frame %r" % auth)


def not_found(what):
    return {"type": "ErrorResponse", "error": "not_found", "detail": {"message": what + " not found"}}


class FakeWorker(object):
    def __init__(self, codec="msgpack", task="noop", params=None, next_method="", next_kwargs=None,
                 unix=False, entrypoint=None, dag_id="etl", run_id="run-1", map_index=-1, try_number=1,
                 startup=None, answer=None, accept_timeout=10.0):
        self.codec = protocol.parse_codec(codec)
        if startup is None:
            startup = protocol.message(
                "StartupDetails",
                ti={"id": "ti-1", "dag_id": dag_id, "task_id": task, "run_id": run_id,
                    "map_index": map_index, "try_number": try_number},
                ti_context={"max_tries": 2, "queue": "python", "entrypoint": task if entrypoint is None else entrypoint,
                            "params": params or {}},
                next_method=next_method, next_kwargs=next_kwargs or {},
                start_date="2026-11-22T08:00:00Z")
        self.startup = startup
        # answer, when set, is fn(conn, request) -> True when it answered the
        # request itself, "stop" to stop serving, else False.
        self.answer = answer
        self.variables = {}
        self.connections = {}
        self.xcoms = {}  # (task_id, key) -> value
        # xcom_limit, when set, refuses a SetXCom whose JSON is longer, as
        # the worker relays the executor's 413 (with the limit).
        self.xcom_limit = None
        self.requests = []  # decoded messages, filled in
        self.raw_requests = []  # bodies [id, msg] as sent
        self.terminals = []
        self.log_lines = []
        self.raw_log = []
        self.errors = []
        self._tmp = None
        self.comm, self.comm_addr = self._listen(unix, "comm")
        self.logs, self.logs_addr = self._listen(unix, "logs")
        self.accept_timeout = accept_timeout
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve_comm, daemon=True),
                         threading.Thread(target=self._serve_logs, daemon=True)]
        for t in self._threads:
            t.start()

    def _listen(self, unix, name):
        if unix:
            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="twpy")
            path = os.path.join(self._tmp, name + ".sock")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(1)
            return s, path
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return s, "127.0.0.1:%d" % s.getsockname()[1]

    @property
    def terminal(self):
        return self.terminals[0] if self.terminals else None

    def _accept(self, listener):
        """Accept one connection; None once stopped or after accept_timeout."""
        listener.settimeout(0.05)
        waited = 0.0
        while waited < self.accept_timeout:
            try:
                return listener.accept()[0]
            except socket.timeout:
                waited += 0.05
            except OSError:
                return None
            if self._stop.is_set():
                return None
        return None

    def _serve_comm(self):
        c = self._accept(self.comm)
        if c is None:
            return
        c.settimeout(None)
        conn = protocol.Conn(c, self.codec)
        try:
            read_auth(c)
            conn.write_response(0, self.startup)
            while True:
                body = conn.read_body(timeout=30)
                if body is None:
                    return
                self.raw_requests.append(self.codec.decode(body))  # as on the wire
                req = self.codec.decode_request(body)
                self.requests.append(req.msg)
                if self.answer is not None:
                    done = self.answer(conn, req)
                    if done == "stop":
                        return
                    if done:
                        continue
                msg, err = self._answer(req.msg)
                conn.write_response(req.id, msg, err)
        except Exception as e:  # recorded for the test to see
            self.errors.append(e)
        finally:
            conn.close()

    def _answer(self, m):
        t = m["type"]
        ok = protocol.message("OKResponse")
        if t in TERMINALS:
            if self.terminals:
                return None, {"error": "bad_request", "detail": {"message": "the task already sent its final message"}}
            self.terminals.append(m)
            return ok, None
        if t == "GetVariable":
            if m["key"] not in self.variables:
                return None, not_found("variable " + m["key"])
            return protocol.message("VariableResult", key=m["key"], value=self.variables[m["key"]]), None
        if t == "PutVariable":
            self.variables[m["key"]] = m["value"]
            return ok, None
        if t == "GetConnection":
            c = self.connections.get(m["conn_id"])
            if c is None:
                return None, not_found("connection " + m["conn_id"])
            return protocol.message("ConnectionResult", conn_id=m["conn_id"], **c), None
        if t == "SetXCom":
            size = len(json.dumps(m["value"]))
            if self.xcom_limit is not None and size > self.xcom_limit:
                return None, {"error": "too_large", "detail": {
                    "message": "set xcom %s: 413 too_large: request body exceeds the limit of %d bytes"
                               % (m["key"], self.xcom_limit),
                    "limit": self.xcom_limit}}
            self.xcoms[(m["task_id"], m["key"])] = m["value"]
            return ok, None
        if t == "GetXCom":
            v = self.xcoms.get((m["task_id"], m["key"]))
            return protocol.message("XComResult", key=m["key"], value=v), None
        if t == "DeleteXCom":
            self.xcoms.pop((m["task_id"], m["key"]), None)
            return ok, None
        if t == "MaskSecret":
            return ok, None
        return None, {"error": "bad_request", "detail": {"message": "unexpected " + t}}

    def _serve_logs(self):
        c = self._accept(self.logs)
        if c is None:
            return
        c.settimeout(30)
        buf = b""
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except OSError as e:
            self.errors.append(e)
        finally:
            c.close()
        lines = buf.decode("utf-8").splitlines()
        if lines:
            header = json.loads(lines.pop(0))
            if header != {"secret": TEST_SECRET}:
                self.errors.append(AssertionError("log header %r" % header))
        for line in lines:
            self.raw_log.append(line)
            if line.strip():
                self.log_lines.append(json.loads(line))

    def wait(self, timeout=15):
        """Wait for the task to hang up (both connections closed)."""
        self._threads[0].join(timeout)
        self._stop.set()
        self._threads[1].join(timeout)
        alive = [t for t in self._threads if t.is_alive()]
        self.close()
        if alive:
            raise AssertionError("fake worker still serving after %ss" % timeout)
        if self.errors:
            raise AssertionError("fake worker errors: %r" % self.errors)

    def close(self):
        for s in (self.comm, self.logs):
            try:
                s.close()
            except OSError:
                pass
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def find_log(self, pred):
        for r in self.log_lines:
            if pred(r):
                return r
        return None

    def requests_of(self, type):
        return [m for m in self.requests if m["type"] == type]
