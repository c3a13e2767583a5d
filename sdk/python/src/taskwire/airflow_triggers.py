"""The Python trigger runtime: Airflow trigger classes run for taskwire's triggerer.

A triggerer started with ``--python-triggers "python -m taskwire.airflow_triggers"``
runs this process at its first trigger of an Airflow class it has no
built-in kind for (a provider's trigger, or one in the DAG folder). One
asyncio loop runs every such trigger the triggerer holds, many at once.

The triggerer keeps the claims, heartbeats, timeouts and the exactly-once
publishing of events; this process only runs triggers. JSON lines:

* stdin: ``{"op": "start", "id": ID, "classpath": "pkg.mod.Class", "kwargs": {...}}``
  (kwargs in Airflow's serde form, as the task runner's DeferTask carried them)
  and ``{"op": "stop", "id": ID}``; end of input stops everything;
* stdout: ``{"id": ID, "event": payload}`` (the first TriggerEvent's payload, in
  serde form), ``{"id": ID, "end": "success"|"failed"|"skipped", "xcoms": {...}}``
  (a TaskSuccessEvent, TaskFailedEvent or TaskSkippedEvent: the task ends in
  that state without resuming, Airflow's end_from_trigger) or
  ``{"id": ID, "error": "..."}``, once per trigger.

A running trigger may ask the triggerer (stdout), which answers with
``{"op": "reply", "req": N, "body": ...}`` or ``{..., "error": ...}`` (stdin):

* ``{"op": "acquire", "req": N, "id": ID, "key": K, "hold": bool}``: a token of
  the rate limit K (``executor limits set K --rps R --concurrent C``, the
  buckets the built-in http and file triggers share, across all
  triggerers); with hold, an in-flight place kept until
  ``{"op": "release", "req": N}``. See :func:`rate_limit`.
* ``{"op": "comms", "req": N, "id": ID, "msg": {...}}``: an Airflow message of
  the trigger runner (GetConnection, GetVariable, GetXCom, MaskSecret), answered
  through the Execution API with the trigger's own read-only token: Airflow's
  ``Connection.get``, ``BaseHook.get_connection``, ``Variable.get`` and their
  async forms work in a trigger as in Airflow's triggerer.

Only the standard library and Airflow (with its pydantic and greenback) are imported.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import itertools
import json
import os
import sys
import threading
import traceback
from typing import Any, Generator


def _emit(obj: dict[str, Any]) -> None:
    line = json.dumps(obj, separators=(",", ":"), default=str) + "\n"
    with _write_lock:
        out = _out or sys.stdout
        out.write(line)
        out.flush()


# The channel to the triggerer: the process's stdout, which main() keeps for
# it alone (stray output, such as Airflow's log lines, goes to stderr).
_out: Any = None


_write_lock = threading.Lock()
# The trigger whose code runs: (trigger id, its rate_key or None).
_current: contextvars.ContextVar[tuple[str, str | None]] = contextvars.ContextVar("taskwire_trigger")
# Requests waiting for the triggerer's reply, by req.
_pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
_req_ids = itertools.count(1)
_loop: asyncio.AbstractEventLoop | None = None
# Each trigger gets greenback's portal (≈ 7 KiB a trigger), so that sync SDK
# calls (Variable.get, Connection.get) work inside its async run(); Airflow's
# AIRFLOW_DISABLE_GREENBACK_PORTAL=true turns it off as in Airflow's triggerer
# (such calls then raise; the async forms work).
_portal = os.environ.get("AIRFLOW_DISABLE_GREENBACK_PORTAL", "").lower() != "true"


async def _ask(op: str, **fields: Any) -> dict[str, Any]:
    """Sends a request to the triggerer and waits for its reply (on the runtime's loop)."""
    loop = asyncio.get_running_loop()
    if _loop is not None and loop is not _loop:
        # Another loop (asgiref's async_to_sync): ask on the runtime's.
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_ask(op, **fields), _loop))
    try:
        tid, _ = _current.get()
    except LookupError:
        raise RuntimeError("taskwire: not inside a trigger run by taskwire's Python trigger runtime") from None
    req = next(_req_ids)
    fut = loop.create_future()
    _pending[req] = fut
    try:
        _emit({"op": op, "req": req, "id": tid, **fields})
        reply: dict[str, Any] = await fut
        return reply
    finally:
        _pending.pop(req, None)


class rate_limit:  # noqa: N801 - used like a function
    """Paces a trigger's polls by the cluster's rate limit ``key``.

    ``await rate_limit(key)`` waits for a token of the limit (requests per
    second); ``async with rate_limit(key):`` also holds one of its in-flight
    places (``--concurrent``) until the block ends. The limits are the ones
    ``executor limits set KEY --rps R [--concurrent C]`` sets, shared with
    the built-in http and file triggers and by every triggerer; a key
    without a limit does not wait. ``key`` defaults to the trigger's own
    ``rate_key`` kwarg (the one its ``serialize()`` returns)::

        class PollApi(BaseTrigger):
            def __init__(self, url, rate_key="api.example.com"): ...
            async def run(self):
                while True:
                    async with rate_limit():       # self.rate_key
                        done = await self._poll()
                    if done:
                        yield TriggerEvent(...)
                        return
                    await asyncio.sleep(1)
    """

    def __init__(self, key: str | None = None):
        if key is None:
            try:
                key = _current.get()[1]
            except LookupError:
                key = None
        if not key:
            raise ValueError("rate_limit: no key given and the trigger has no rate_key kwarg")
        self.key = key
        self._req: int | None = None

    def __await__(self) -> Generator[Any, None, None]:
        return self._acquire(False).__await__()

    async def _acquire(self, hold: bool) -> None:
        reply = await _ask("acquire", key=self.key, hold=hold)
        if reply.get("error"):
            raise RuntimeError(f"rate_limit({self.key!r}): {reply['error'].get('detail')}")
        self._req = reply.get("req")

    async def __aenter__(self) -> rate_limit:
        await self._acquire(True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._req is not None:
            _emit({"op": "release", "req": self._req})
            self._req = None


class _Comms:
    """Airflow's SUPERVISOR_COMMS in this process: the trigger runner's
    messages go to the triggerer (``comms`` requests); sync ``send`` from a
    trigger's coroutine goes through greenback's portal, as in Airflow's
    triggerer."""

    def __init__(self) -> None:
        from pydantic import TypeAdapter

        from airflow.sdk.execution_time.comms import ErrorResponse, ToTask

        self._body = TypeAdapter(ToTask)
        self._err = TypeAdapter(ErrorResponse)

    async def asend(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import AirflowRuntimeError

        reply = await _ask("comms", msg=msg.model_dump(mode="json"))
        if reply.get("error") is not None:
            raise AirflowRuntimeError(error=self._err.validate_python(reply["error"]))
        if reply.get("body") is None:
            return None
        return self._body.validate_python(reply["body"])

    def send(self, msg: Any) -> Any:
        if _loop is None:
            raise RuntimeError("taskwire trigger runtime not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is _loop:
            import greenback

            if not greenback.has_portal():
                raise RuntimeError(
                    "Sync SDK methods (get_connection(), Variable.get()) cannot be called from a "
                    "trigger's async def run() when AIRFLOW_DISABLE_GREENBACK_PORTAL is set: use "
                    "the async forms (aget_connection(), Connection.async_get())."
                )
            return greenback.await_(self.asend(msg))
        return asyncio.run_coroutine_threadsafe(self.asend(msg), _loop).result()


def _install_comms() -> None:
    """Makes Airflow's connection, variable and XCom reads go to the triggerer."""
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "client")
    from airflow.sdk.execution_time import task_runner

    task_runner.SUPERVISOR_COMMS = _Comms()


def _end_event() -> Any:
    from airflow.triggers.base import BaseTaskEndEvent

    return BaseTaskEndEvent


def _load(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


async def _run(tid: str, classpath: str, kwargs: Any, rate_key: str | None) -> None:
    from airflow.sdk.serde import deserialize, serialize

    _current.set((tid, rate_key))
    trigger = None
    try:
        if _portal:
            import greenback

            await greenback.ensure_portal()  # sync SDK calls inside run(), as Airflow allows
        cls = _load(classpath)
        trigger = cls(**(deserialize(kwargs) if kwargs else {}))
        async for event in trigger.run():
            if isinstance(event, _end_event()):
                # TaskSuccessEvent / TaskFailedEvent / TaskSkippedEvent: the
                # task ends in that state, its xcoms pushed, and is not resumed.
                state = event.task_instance_state
                _emit({"id": tid, "end": str(getattr(state, "value", state)), "xcoms": event.xcoms or None})
                return
            _emit({"id": tid, "event": serialize(event.payload)})
            return
        _emit({"id": tid, "error": f"trigger {classpath} ended without an event"})
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - reported as the trigger's failure
        print(f"trigger {tid} ({classpath}) failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        _emit({"id": tid, "error": f"trigger {classpath} failed: {type(e).__name__}: {e}"})
    finally:
        if trigger is not None:
            try:
                done = trigger.cleanup()
                if asyncio.iscoroutine(done):
                    await done
            except Exception:  # noqa: BLE001 - a failed cleanup changes nothing
                pass


def _forget(tasks: dict[str, asyncio.Task[None]], tid: str) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        if tasks.get(tid) is task:
            del tasks[tid]

    return done


async def _main() -> None:
    global _loop
    loop = _loop = asyncio.get_running_loop()
    _install_comms()
    reader = asyncio.StreamReader(limit=16 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: dict[str, asyncio.Task[None]] = {}
    while line := await reader.readline():
        try:
            msg = json.loads(line)
            if msg.get("op") == "reply":
                fut = _pending.get(msg.get("req"))
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                continue
            op, tid = msg["op"], msg["id"]
        except (ValueError, KeyError, TypeError, AttributeError):
            print(f"bad line from the triggerer: {line[:200]!r}", file=sys.stderr, flush=True)
            continue
        if op == "start" and tid not in tasks:
            task = asyncio.create_task(_run(tid, msg.get("classpath", ""), msg.get("kwargs"), msg.get("rate_key")))
            tasks[tid] = task
            task.add_done_callback(_forget(tasks, tid))
        elif op == "stop" and tid in tasks:
            tasks.pop(tid).cancel()
    for task in list(tasks.values()):
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


def main() -> None:
    global _out
    _out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    asyncio.run(_main())


if __name__ == "__main__":
    # Run the imported module, not __main__: triggers import rate_limit from
    # taskwire.airflow_triggers and must share its state.
    from taskwire import airflow_triggers

    airflow_triggers.main()
