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

Only the standard library and Airflow are imported.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import traceback
from typing import Any


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _end_event() -> Any:
    from airflow.triggers.base import BaseTaskEndEvent

    return BaseTaskEndEvent


def _load(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


async def _run(tid: str, classpath: str, kwargs: Any) -> None:
    from airflow.sdk.serde import deserialize, serialize

    trigger = None
    try:
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
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: dict[str, asyncio.Task[None]] = {}
    while line := await reader.readline():
        try:
            msg = json.loads(line)
            op, tid = msg["op"], msg["id"]
        except (ValueError, KeyError, TypeError):
            print(f"bad line from the triggerer: {line[:200]!r}", file=sys.stderr, flush=True)
            continue
        if op == "start" and tid not in tasks:
            task = asyncio.create_task(_run(tid, msg.get("classpath", ""), msg.get("kwargs")))
            tasks[tid] = task
            task.add_done_callback(_forget(tasks, tid))
        elif op == "stop" and tid in tasks:
            tasks.pop(tid).cancel()
    for task in list(tasks.values()):
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
