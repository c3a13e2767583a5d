"""Warm mode: one process serves many task tries, several at once.

The worker starts the runtime with TASKWIRE_WARM_TASKS=N (its queue's
``warm.tasks_per_process``). The runtime then keeps N comm connections open
to the worker, each a task slot waiting for a try's StartupDetails, exactly
as the Go SDK's RunWarm does:

- the try's requests and its terminal message travel on its slot's
  connection, with the unchanged task protocol (so each try's requests go
  with its own token, and its secrets are masked in its own log);
- its log lines travel on the process's one log connection to the logs
  address (header line ``{"mux":true,"secret":…}``), each line prefixed with the try's
  ``ti_id<TAB>try_number<TAB>``; an empty line for the try ends its lines,
  written before the terminal message (Go's protocol.MuxLogLine, golden
  vector protocol/testdata/log_stream_mux.txt). One connection for every
  try keeps thousands of concurrent tries at one descriptor each;
- once the try has reported its outcome the slot closes its connection and
  dials again for the next try;
- the worker cancels a try by half-closing its connection: an ``async def``
  task is cancelled (asyncio.CancelledError at its await), a plain ``def``
  task sees ``ctx.cancelled`` set and should return soon; one that does not
  return within the worker's kill grace gets the whole process killed.

All slots live on one asyncio event loop in the main thread: ``async def``
tasks run on that loop, plain ``def`` tasks on a thread pool (one thread
per running plain task). The tries share the process: memory, globals,
imported modules, the working directory and the environment.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Mapping, Optional

from . import protocol
from .context import FAIL_METHOD, Context
from .errors import APIError, Fail, TaskDeferred, WorkerGone
from .log import JSONLineHandler, LogWriter

__all__ = ["ENV_WARM_TASKS", "run_warm", "AsyncClient", "log_stream_header", "log_mux_header", "mux_log_line"]

# ENV_WARM_TASKS is the number of task slots of a warm runtime (Go's
# protocol.EnvWarmTasks); the worker sets it in warm mode only.
ENV_WARM_TASKS = "TASKWIRE_WARM_TASKS"

_TRIGGER_FAILED_DEFAULT = "trigger failed"

sdk_log = logging.getLogger("taskwire.sdk")

# The log writer of the try running in the current task or thread.
_current_writer: contextvars.ContextVar[Optional[LogWriter]] = contextvars.ContextVar(
    "taskwire_log_writer", default=None)


def log_mux_header(secret: str) -> bytes:
    """The header line of a multiplexed log connection (Go's
    protocol.LogStreamHeader with Mux), newline included."""
    return protocol.log_header(secret, mux=True)


def mux_log_line(ti_id: str, try_number: int, line: bytes) -> bytes:
    """One line of the multiplexed log connection (Go's protocol.MuxLogLine):
    ``ti_id TAB try_number TAB line NEWLINE``; an empty line ends the try's
    lines."""
    return ti_id.encode("utf-8") + b"\t" + str(try_number).encode("ascii") + b"\t" + line + b"\n"


class _MuxLog(object):
    """The process's one log connection, shared by every try (thread-safe)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.error: Optional[OSError] = None
        self.lock = threading.Lock()

    def send(self, data: bytes) -> bool:
        with self.lock:
            if self.error is not None:
                return False
            try:
                self.sock.sendall(data)
                return True
            except OSError as e:
                self.error = e
                print("taskwire sdk: log connection failed, logs to stderr: %s" % e, file=sys.stderr)
                return False

    def close(self) -> None:
        with self.lock:
            if self.error is None:
                self.error = OSError("closed")
            try:
                self.sock.close()
            except OSError:
                pass


class _TryLogWriter(LogWriter):
    """A try's lines on the process's multiplexed log connection; stderr
    (which the worker captures) once that fails."""

    def __init__(self, mux: _MuxLog, ti_id: str, try_number: int) -> None:
        super().__init__()
        self.mux = mux
        self.prefix = ti_id.encode("utf-8") + b"\t" + str(try_number).encode("ascii") + b"\t"
        self.closed = False

    def write(self, data: Any) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        if not self.closed:
            lines = [ln for ln in data.split(b"\n") if ln]
            if not lines or self.mux.send(b"".join(self.prefix + ln + b"\n" for ln in lines)):
                return
        super().write(data)  # no socket: stderr

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.mux.send(self.prefix + b"\n")


class _RoutingWriter(object):
    """The writer of the process's one log handler: each record goes to the
    log stream of the try it was logged in, stderr outside of any."""

    def write(self, data: Any) -> None:
        w = _current_writer.get()
        if w is None:
            if isinstance(data, bytes):
                data = data.decode("utf-8", "replace")
            sys.stderr.write(data)
            return
        w.write(data)


async def _open(addr: str) -> "tuple[asyncio.StreamReader, asyncio.StreamWriter]":
    if os.path.isabs(addr):
        return await asyncio.open_unix_connection(addr)
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("address %r: want HOST:PORT or an absolute unix socket path" % addr)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    r, w = await asyncio.open_connection(host, int(port))
    sock = w.get_extra_info("socket")
    if sock is not None:
        import socket as _socket
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return r, w


async def _read_body(r: asyncio.StreamReader, max_frame: int) -> Optional[bytes]:
    try:
        hdr = await r.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise protocol.ProtocolError("unexpected end of stream inside a frame header") from None
    n = struct.unpack(">I", hdr)[0]
    if n > max_frame:
        raise protocol.FrameTooLarge("frame too large: %d bytes, the limit is %d" % (n, max_frame))
    try:
        return await r.readexactly(n)
    except asyncio.IncompleteReadError:
        raise protocol.ProtocolError("unexpected end of stream inside a frame") from None


class AsyncClient(object):
    """The requests of one try on its slot's connection, owned by the event
    loop. ``acall`` is awaited on the loop; ``call`` (what Context uses)
    works from any other thread. Several requests may be in flight; answers
    are matched by id."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, codec: protocol.Codec, timeout: float) -> None:
        self.loop = loop
        self.reader = reader
        self.writer = writer
        self.codec = codec
        self.timeout = timeout
        self._next = 1
        self._pending: Dict[int, "asyncio.Future[protocol.Response]"] = {}
        self._broken: Optional[BaseException] = None

    async def read_loop(self, on_end: Any) -> None:
        """Read the answers until the worker closes its side, then call
        on_end() (the worker's way to cancel the try)."""
        err: BaseException
        try:
            while True:
                body = await _read_body(self.reader, protocol.MAX_FRAME_SIZE_DEFAULT)
                if body is None:
                    err = EOFError("end of stream")
                    break
                try:
                    resp = self.codec.decode_response(body)
                except protocol.ProtocolError as e:
                    if e.id is not None and e.id in self._pending:
                        f = self._pending.pop(e.id)
                        if not f.done():
                            f.set_exception(protocol.ProtocolError("answer from the worker: %s" % e, e.id))
                        continue
                    err = e
                    break
                pf = self._pending.pop(resp.id, None)
                if pf is not None and not pf.done():
                    pf.set_result(resp)
        except (OSError, protocol.ProtocolError) as e:
            err = e
        except asyncio.CancelledError:
            err = EOFError("closed")
            raise
        finally:
            if self._broken is None:
                self._broken = err
            for f in self._pending.values():
                if not f.done():
                    f.set_exception(WorkerGone("connection to the worker lost: %s" % self._broken))
            self._pending.clear()
            on_end()

    async def acall(self, msg: Mapping[str, Any], timeout: Optional[float] = None) -> Optional[protocol.Message]:
        if self._broken is not None:
            raise WorkerGone("connection to the worker lost: %s" % self._broken)
        id = self._next
        self._next += 1
        f = self.loop.create_future()
        self._pending[id] = f
        try:
            self.writer.write(protocol.frame(self.codec.encode_request(id, msg)))
            await self.writer.drain()
        except OSError as e:
            self._pending.pop(id, None)
            self._broken = e
            raise WorkerGone("send %s to the worker: %s" % (msg.get("type"), e)) from e
        try:
            resp: protocol.Response = await asyncio.wait_for(f, self.timeout if timeout is None else timeout)
        except asyncio.TimeoutError:
            self._pending.pop(id, None)
            raise TimeoutError("no answer from the worker to %s (request %d)" % (msg.get("type"), id)) from None
        if resp.error is not None:
            raise APIError.from_response(resp.error)
        if resp.msg is not None and resp.msg.get("type") == "ErrorResponse":
            raise APIError.from_response(resp.msg)
        return resp.msg

    def call(self, msg: Mapping[str, Any], timeout: Optional[float] = None) -> Optional[protocol.Message]:
        if _on_loop(self.loop):
            raise RuntimeError("a blocking request from the event loop's thread would stop every task of this "
                               "warm process: in an async def task use the awaitable methods (await "
                               "ctx.avariable(...), await ctx.adefer(...)) ")
        fut = asyncio.run_coroutine_threadsafe(self.acall(msg, timeout), self.loop)
        out: Optional[protocol.Message] = fut.result()
        return out


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class _Warm(object):
    def __init__(self, app: Any, comm_addr: str, logs_addr: str, codec: protocol.Codec, slots: int) -> None:
        self.app = app
        self.comm_addr = comm_addr
        self.logs_addr = logs_addr
        self.codec = codec
        self.slots = slots
        self.auth = protocol.auth_frame(protocol.comm_secret())
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(slots, 1024)), thread_name_prefix="taskwire-task")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        # Plain def tasks run in this pool; Context's awaitable methods too.
        loop.set_default_executor(self.pool)
        self.mux: Optional[_MuxLog] = None
        if self.logs_addr:
            try:
                from .runtime import dial
                sock = dial(self.logs_addr)
                sock.sendall(log_mux_header(protocol.comm_secret()))
                self.mux = _MuxLog(sock)
            except (OSError, ValueError) as e:
                print("taskwire sdk: logs to stderr: %s" % e, file=sys.stderr)
        try:
            results = await asyncio.gather(*(self.slot(i) for i in range(self.slots)), return_exceptions=True)
        finally:
            if self.mux is not None:
                self.mux.close()
        errs = [r for r in results if isinstance(r, BaseException)]
        if errs and len(errs) == len(results):
            raise errs[0]

    async def slot(self, n: int) -> None:
        """Serve tries until the worker stops taking connections (it retired
        the process, or is gone)."""
        while True:
            try:
                reader, writer = await _open(self.comm_addr)
            except OSError:
                return  # the worker closed its listener: the process retires
            # The secret first: the worker gives the slot no try before it.
            writer.write(self.auth)
            try:
                await self.serve(reader, writer)
            except (WorkerGone, OSError, protocol.ProtocolError, EOFError) as e:
                print("taskwire sdk: warm slot %d: %s" % (n, e), file=sys.stderr)
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except (OSError, asyncio.CancelledError):
                    pass

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _read_body(reader, protocol.MAX_FRAME_SIZE_DEFAULT)
        if body is None:
            return  # the worker retired the slot before giving it a try
        first = self.codec.decode_response(body)
        if first.id != 0 or first.msg is None or first.msg.get("type") != "StartupDetails":
            raise protocol.ProtocolError("first frame from the worker is %s with id %d, want StartupDetails with id 0"
                                         % ("nothing" if first.msg is None else first.msg.get("type"), first.id))
        startup = first.msg
        client = AsyncClient(self.loop, reader, writer, self.codec, self.app.request_timeout or 120.0)
        lw = await self.open_logs(startup)
        token: "Optional[contextvars.Token[Optional[LogWriter]]]" = _current_writer.set(lw)
        ctx = Context(startup, client)  # type: ignore[arg-type]  # a Client in all it uses
        cancelled = threading.Event()
        ctx._cancel_event = cancelled
        run: "Optional[asyncio.Future[Any]]" = None

        def on_end() -> None:
            cancelled.set()
            if run is not None and not run.done() and is_async:
                run.cancel()

        name = startup["ti_context"]["entrypoint"] or startup["ti"]["task_id"]
        method = startup.get("next_method") or ""
        is_async = False
        reading = asyncio.ensure_future(client.read_loop(on_end))
        try:
            if method == FAIL_METHOD:
                err = ctx.next_kwargs.get("error")
                reason = err if isinstance(err, str) and err else _TRIGGER_FAILED_DEFAULT
                sdk_log.error("resumed after the trigger failed: not running the task",
                              extra={"task_id": name, "err": reason})
                msg = protocol.message("RetryTask", end_date=protocol.rfc3339(), reason=_rt()._truncate(reason))
            else:
                outcome: Any
                try:
                    fn = self.app.lookup(name, method)
                except Fail as e:
                    sdk_log.error("no code to run", extra={"task_id": name, "next_method": method, "err": e.reason})
                    outcome = e
                else:
                    if method:
                        sdk_log.debug("resuming", extra={"task_id": name, "next_method": method})
                    is_async = inspect.iscoroutinefunction(fn)
                    if is_async:
                        run = asyncio.ensure_future(fn(ctx))
                    else:
                        cv = contextvars.copy_context()
                        run = self.loop.run_in_executor(self.pool, cv.run, fn, ctx)
                    if cancelled.is_set() and is_async:
                        run.cancel()  # cancelled before it started
                    outcome = await _outcome(run, ctx)
                if ctx.deferred:
                    if not isinstance(outcome, TaskDeferred):
                        sdk_log.warning("task deferred, then did something else: ignored",
                                        extra={"task_id": name, "err": repr(outcome)})
                    return
                if cancelled.is_set():
                    # The worker cancelled the try and closed its side: it
                    # takes no terminal message any more.
                    sdk_log.info("try cancelled by the worker", extra={"task_id": name, "outcome": repr(outcome)})
                    return
                msg = _rt()._terminal(ctx, name, outcome)
            if token is not None:
                _current_writer.reset(token)
                token = None
            lw.close()
            await client.acall(msg)
        finally:
            if token is not None:
                _current_writer.reset(token)
            lw.close()
            reading.cancel()
            try:
                await reading
            except asyncio.CancelledError:
                pass

    async def open_logs(self, startup: Mapping[str, Any]) -> LogWriter:
        """The try's lines on the process's log connection, stderr when it
        could not be opened."""
        if self.mux is None:
            return LogWriter()
        return _TryLogWriter(self.mux, startup["ti"]["id"], startup["ti"]["try_number"])


def log_stream_header(ti_id: str, try_number: int, secret: Optional[str] = None) -> bytes:
    """The first line of a try's log stream (Go's protocol.LogStreamHeader,
    golden vector protocol/testdata/log_stream_header.jsonl), newline
    included; secret defaults to TASKWIRE_COMM_SECRET's."""
    return protocol.log_header(protocol.comm_secret() if secret is None else secret, ti_id, try_number)


def _rt() -> Any:
    from . import runtime
    return runtime


async def _outcome(run: "asyncio.Future[Any]", ctx: Context) -> Any:
    """Await the task and push its return value: the _Returned value or
    the exception it raised (cancellation included)."""
    R = _rt()._Returned
    try:
        value = await run
    except asyncio.CancelledError as e:
        if ctx.cancelled:
            return e  # the worker cancelled the try
        raise
    except (Exception, TaskDeferred) as e:
        return e
    try:
        if value is not None and not ctx.deferred:
            await ctx.axcom_push("return_value", value)
    except Exception as e:
        return e
    return R(value)


def run_warm(app: Any, comm_addr: str, logs_addr: str, codec: Any, slots: int) -> None:
    """Serve tries as a warm runtime with slots tries at once until the
    worker stops taking connections. Installs a log handler on the root
    logger that sends each record to the log stream of the try it was
    logged in."""
    if slots < 1:
        raise ValueError("warm runtime: %d slots, want at least 1" % slots)
    w = _Warm(app, comm_addr, logs_addr, protocol.parse_codec(codec), slots)
    root = logging.getLogger()
    handler = JSONLineHandler(_RoutingWriter())  # type: ignore[arg-type]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("task").setLevel(app.log_level)
    try:
        asyncio.run(w.run())
    finally:
        root.removeHandler(handler)
        w.pool.shutdown(wait=False)
