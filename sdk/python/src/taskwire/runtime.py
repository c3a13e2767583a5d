"""The runtime: registered tasks, the connection to the worker, and the run
of one task try."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import socket
import sys
import threading
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

from . import protocol
from .client import Client
from .context import FAIL_METHOD, Context
from .errors import Fail, Skip, TaskDeferred
from .log import JSONLineHandler, LogWriter
from .warm import ENV_WARM_TASKS, run_warm

TaskFunc = Callable[[Context], Any]
"""A task's code: called with the try's Context; what it returns is pushed
as XCom "return_value"."""

_F = TypeVar("_F", bound=TaskFunc)

__all__ = ["App", "serve_one", "dial", "ENV_COMM_ADDR", "ENV_LOGS_ADDR", "ENV_CODEC", "DIAL_TIMEOUT_DEFAULT",
           "MAX_REASON_LEN"]

# Environment variables main() reads when the flags are not given.
ENV_COMM_ADDR = "TASKWIRE_COMM_ADDR"
ENV_LOGS_ADDR = "TASKWIRE_LOGS_ADDR"
ENV_CODEC = "TASKWIRE_CODEC"

# DIAL_TIMEOUT_DEFAULT bounds connecting to the worker, in seconds.
DIAL_TIMEOUT_DEFAULT = 10.0

# MAX_REASON_LEN bounds the reason sent with a terminal message.
MAX_REASON_LEN = 16 << 10

_TRIGGER_FAILED_DEFAULT = "trigger failed"

sdk_log = logging.getLogger("taskwire.sdk")


def dial(addr: str, timeout: Optional[float] = DIAL_TIMEOUT_DEFAULT) -> socket.socket:
    """Connect to a worker address: an absolute path is a unix socket, else
    HOST:PORT over TCP ("127.0.0.1:41234", "[::1]:41234")."""
    if os.path.isabs(addr):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(addr)
        except BaseException:
            s.close()
            raise
    else:
        host, sep, port = addr.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("address %r: want HOST:PORT or an absolute unix socket path" % addr)
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        s = socket.create_connection((host, int(port)), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(None)
    return s


class App(object):
    """A task runtime: register task functions by task id, then call main().

    ::

        app = taskwire.App()

        @app.task("extract")
        def extract(ctx):
            return {"rows": 3}

        if __name__ == "__main__":
            app.main()

    What a task function does decides the try's outcome:

    - returns: the value (unless None) is pushed as XCom "return_value",
      then SucceedTask;
    - raises Skip(reason): TaskState skipped;
    - raises Fail(reason): TaskState failed, with no retry;
    - calls ctx.defer(...): DeferTask, and the try resumes later;
    - raises anything else: RetryTask with the traceback as the reason (the
      full traceback is logged at error level); the executor retries while
      tries remain.
    """

    def __init__(self, log_level: int = logging.INFO, request_timeout: Optional[float] = None) -> None:
        #: The level of the task's logger ("task"); other loggers log at INFO
        #: unless configured otherwise.
        self.log_level = log_level
        self.request_timeout = request_timeout
        self._tasks: Dict[str, TaskFunc] = {}
        self._methods: Dict[Tuple[str, str], TaskFunc] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------- registering

    def task(self, task_id: str) -> Callable[[_F], _F]:
        """Decorator registering fn(ctx) as the code of task task_id."""
        def deco(fn: _F) -> _F:
            self.register(task_id, fn)
            return fn
        return deco

    def method(self, task_id: str, method: str) -> Callable[[_F], _F]:
        """Decorator registering fn(ctx) as the code task task_id resumes at
        when a trigger it deferred on fires with next_method method. A resumed
        task without a method of that name runs its task function, which can
        branch on ctx.next_method."""
        def deco(fn: _F) -> _F:
            self.register_method(task_id, method, fn)
            return fn
        return deco

    def register(self, task_id: str, fn: TaskFunc) -> None:
        if not task_id or not callable(fn):
            raise ValueError("register needs a task id and a function")
        with self._lock:
            if task_id in self._tasks:
                raise ValueError("task %r registered twice" % task_id)
            self._tasks[task_id] = fn

    def register_method(self, task_id: str, method: str, fn: TaskFunc) -> None:
        if not task_id or not method or not callable(fn):
            raise ValueError("register_method needs a task id, a method and a function")
        if method == FAIL_METHOD:
            raise ValueError("method %r is reserved" % FAIL_METHOD)
        with self._lock:
            if (task_id, method) in self._methods:
                raise ValueError("method %r of task %r registered twice" % (method, task_id))
            self._methods[(task_id, method)] = fn

    @property
    def tasks(self) -> List[str]:
        with self._lock:
            return sorted(self._tasks)

    def lookup(self, name: str, method: str = "") -> TaskFunc:
        """Return the function to run for task name resumed at method ("" on a
        first run), or raise Fail saying what is missing."""
        with self._lock:
            if method and (name, method) in self._methods:
                return self._methods[(name, method)]
            if name in self._tasks:
                return self._tasks[name]
        if method:
            raise Fail("no method %r for task %r in this runtime" % (method, name))
        raise Fail("no task %r in this runtime" % name)

    # -------------------------------------------------------------- running

    def main(self, argv: Optional[Sequence[str]] = None) -> None:
        """Run the task the worker asks for and exit the process: 0 once the
        outcome was reported, 1 when it could not be, 2 on bad arguments.
        With TASKWIRE_WARM_TASKS=N (the worker's warm mode) serve many tries
        instead, N at once, until the worker retires the process (see
        taskwire.warm).
        The addresses come from --comm and --logs, else TASKWIRE_COMM_ADDR and
        TASKWIRE_LOGS_ADDR; the codec from --codec, else TASKWIRE_CODEC
        (msgpack by default)."""
        sys.exit(self._main(argv))

    def _main(self, argv: Optional[Sequence[str]] = None) -> Union[int, str, None]:
        p = argparse.ArgumentParser(description="taskwire Python task runtime")
        p.add_argument("--comm", default=os.environ.get(ENV_COMM_ADDR, ""),
                       help="worker's comm address (env %s)" % ENV_COMM_ADDR)
        p.add_argument("--logs", default=os.environ.get(ENV_LOGS_ADDR, ""),
                       help="worker's logs address (env %s)" % ENV_LOGS_ADDR)
        p.add_argument("--codec", default=os.environ.get(ENV_CODEC, ""),
                       help="comm body codec, msgpack or json (env %s)" % ENV_CODEC)
        try:
            args = p.parse_args(argv)
        except SystemExit as e:
            return e.code
        try:
            codec = protocol.parse_codec(args.codec)
        except ValueError as e:
            print("taskwire sdk: %s" % e, file=sys.stderr)
            return 2
        if not args.comm:
            print("taskwire sdk: no comm address: pass --comm or set %s" % ENV_COMM_ADDR, file=sys.stderr)
            return 2
        warm = os.environ.get(ENV_WARM_TASKS, "")
        try:
            if warm:
                try:
                    slots = int(warm)
                except ValueError:
                    print("taskwire sdk: %s=%r: want a number of task slots" % (ENV_WARM_TASKS, warm),
                          file=sys.stderr)
                    return 2
                run_warm(self, args.comm, args.logs, codec, slots)
            else:
                self.run(args.comm, args.logs, codec)
        except Exception as e:
            print("taskwire sdk: %s" % e, file=sys.stderr)
            return 1
        return 0

    def run(self, comm_addr: str, logs_addr: str = "", codec: Union[protocol.Codec, str, None] = protocol.MSGPACK,
            install_logging: bool = True) -> protocol.Message:
        """Connect to the worker at comm_addr (requests) and logs_addr (log
        lines; "" or unreachable means stderr), run the one task try it
        starts, and return its terminal message once the worker has
        acknowledged it. Raises when no outcome could be reported.

        With install_logging, a handler on the root logger ships every
        record (root at INFO, the task's logger at log_level) to the logs
        channel while the try runs."""
        codec = protocol.parse_codec(codec)
        writer = LogWriter()
        secret = protocol.comm_secret()
        if logs_addr:
            try:
                ls = dial(logs_addr)
                try:
                    ls.sendall(protocol.log_header(secret))
                except OSError:
                    ls.close()
                    raise
                writer.sock = ls
            except (OSError, ValueError) as e:
                writer.error = e if isinstance(e, OSError) else OSError(str(e))
                print("taskwire sdk: logs to stderr: %s" % e, file=sys.stderr)
        restore = self._install_logging(writer) if install_logging else None
        try:
            sock = dial(comm_addr)
            try:
                # The secret first: the worker sends nothing before it.
                sock.sendall(protocol.auth_frame(secret))
            except OSError:
                sock.close()
                raise
            conn = protocol.Conn(sock, codec)
            try:
                out = serve_one(self, conn, Client(conn, self.request_timeout or 120.0))
                if out is None:
                    raise ConnectionError("the worker closed the connection before StartupDetails")
                return out
            finally:
                conn.close()
        finally:
            if restore:
                restore()
            writer.close()

    def _install_logging(self, writer: LogWriter) -> Callable[[], None]:
        root = logging.getLogger()
        task_log = logging.getLogger("task")
        handler = JSONLineHandler(writer)
        saved = (root.level, task_log.level)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        task_log.setLevel(self.log_level)

        def restore() -> None:
            root.removeHandler(handler)
            root.setLevel(saved[0])
            task_log.setLevel(saved[1])
        return restore


def serve_one(app: App, conn: protocol.Conn, client: Optional[Client] = None) -> Optional[protocol.Message]:
    """Serve one task try on conn: read StartupDetails (id 0), run the task
    it names, report the outcome with one terminal message, and return that
    message once the worker has acknowledged it (None when the worker closed
    the connection before StartupDetails). A warm runtime can call it again
    on the same connection for the next try.

    Raises WorkerGone/ProtocolError/OSError when no outcome could be
    reported."""
    if client is None:
        client = Client(conn)
    first = conn.read_response()
    if first is None:
        return None
    if first.id != 0 or first.msg is None or first.msg.get("type") != "StartupDetails":
        raise protocol.ProtocolError("first frame from the worker is %s with id %d, want StartupDetails with id 0"
                                     % ("nothing" if first.msg is None else first.msg.get("type"), first.id))
    startup = first.msg
    ctx = Context(startup, client)
    name = startup["ti_context"]["entrypoint"] or startup["ti"]["task_id"]
    method = startup.get("next_method") or ""

    outcome: Union[_Returned, BaseException]  # what the task did
    if method == FAIL_METHOD:
        # The worker normally ends such a try itself; end it the same way.
        err = ctx.next_kwargs.get("error")
        reason = err if isinstance(err, str) and err else _TRIGGER_FAILED_DEFAULT
        sdk_log.error("resumed after the trigger failed: not running the task",
                      extra={"task_id": name, "err": reason})
        msg = protocol.message("RetryTask", end_date=protocol.rfc3339(), reason=_truncate(reason))
    else:
        try:
            fn = app.lookup(name, method)
        except Fail as e:
            sdk_log.error("no code to run", extra={"task_id": name, "next_method": method, "err": e.reason})
            outcome = e
        else:
            if method:
                sdk_log.debug("resuming", extra={"task_id": name, "next_method": method})
            outcome = _run_task(fn, ctx)
        if ctx.deferred:
            # DeferTask was the terminal message.
            if not isinstance(outcome, TaskDeferred):
                sdk_log.warning("task deferred, then did something else: ignored",
                                extra={"task_id": name, "err": repr(outcome)})
            return ctx.defer_message
        msg = _terminal(ctx, name, outcome)
    client.call(msg)
    return msg


class _Returned(object):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _run_task(fn: TaskFunc, ctx: Context) -> Union[_Returned, BaseException]:
    """Run fn(ctx) and push its return value; return _Returned or the
    exception it raised (TaskDeferred included)."""
    try:
        if inspect.iscoroutinefunction(fn):
            # An async def task in cold mode: on an event loop of its own.
            value = asyncio.run(fn(ctx))
        else:
            value = fn(ctx)
        if value is not None and not ctx.deferred:
            ctx.xcom_push("return_value", value)
        return _Returned(value)
    except (Exception, TaskDeferred) as e:
        return e


def _terminal(ctx: Context, name: str, outcome: Union[_Returned, BaseException]) -> protocol.Message:
    now = protocol.rfc3339()
    if isinstance(outcome, _Returned):
        return protocol.message("SucceedTask", end_date=now)
    if isinstance(outcome, Skip):
        return protocol.message("TaskState", state="skipped", end_date=now, reason=_truncate(outcome.reason))
    if isinstance(outcome, Fail):
        return protocol.message("TaskState", state="failed", end_date=now, reason=_truncate(outcome.reason))
    if isinstance(outcome, TaskDeferred):
        # Raised by hand, without Context.defer: nothing was deferred.
        reason = "TaskDeferred raised without Context.defer"
        sdk_log.error(reason, extra={"task_id": name})
        return protocol.message("RetryTask", end_date=now, reason=reason)
    tb = "".join(traceback.format_exception(type(outcome), outcome, outcome.__traceback__))
    sdk_log.error("task failed: %s: %s", type(outcome).__name__, outcome,
                  exc_info=(type(outcome), outcome, outcome.__traceback__), extra={"task_id": name})
    return protocol.message("RetryTask", end_date=now, reason=_truncate(tb.rstrip("\n")))


def _truncate(s: str) -> str:
    """Bound a reason; a long traceback keeps its end, where the error is."""
    if len(s) <= MAX_REASON_LEN:
        return s
    return "[truncated]\n" + s[-MAX_REASON_LEN:]
