"""A trace of where a workload's start spends its time, step by step.

Set ``TASKWIRE_AIRFLOW_TRACE=<file>`` in a taskwire worker's prefork zygote
environment (worker.yaml ``prefork: {env: …}``; read by the zygote's preload)
or in the runner's own environment: each ExecuteTask run by
taskwire_airflow.run then appends one JSON line to the file, as its
supervisor's ``PATCH …/run`` to Airflow's API server returns::

    {"ti_id": …, "marks": [[step, unix time, process CPU seconds], …]}

Steps (wall time on this machine's clock, comparable with taskwire's and
Airflow's timestamps): the zygote read the fork request, the child began,
the runner's main, the workload decoded, Airflow's logging set up, Airflow's
run_workload, the secrets backends, the supervisor's fork of the task process
(before/after), and the …/run call (sent, answered). The supervisor's
start_date, what Airflow records as the try's start, is the time the …/run
is sent. The hooks wrap Airflow's functions in this process only (a zygote's
child), never in the zygote.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

TRACE_ENV = "TASKWIRE_AIRFLOW_TRACE"

_marks: list[list[Any]] = []
_path = ""
_ti_id = ""


def configured(path: str | None) -> None:
    """Remember the trace file (the zygote's preload calls this with its
    environment's value; the runner with its own when it has one)."""
    global _path
    if path:
        _path = path


def enabled() -> bool:
    return bool(_path)


def mark(step: str) -> None:
    if _path:
        _marks.append([step, time.time(), time.process_time()])


def begin() -> None:
    """In the runner's main: the zygote's stamps, then hook Airflow's steps."""
    if not _path:
        return
    try:
        from taskwire import prefork

        if prefork.request_at:
            _marks.append(["zygote read the fork request", prefork.request_at, None])
            _marks.append(["child began", prefork.forked_at, None])
    except Exception:
        pass
    mark("runner main")
    import airflow.sdk.execution_time.supervisor as sup
    from airflow.sdk.api import client as api_client

    _wrap(sup, "ensure_secrets_backend_loaded", "secrets backends")
    _wrap(os, "fork", "supervisor's fork of the task process")
    start = api_client.TaskInstanceOperations.start

    def traced_start(self, id, pid, when):
        global _ti_id
        _ti_id = str(id)
        mark("…/run sent (Airflow's start_date)")
        try:
            return start(self, id, pid, when)
        finally:
            mark("…/run answered")
            flush()

    api_client.TaskInstanceOperations.start = traced_start


def _wrap(obj: Any, name: str, label: str) -> None:
    f = getattr(obj, name)

    def w(*a, **k):
        mark(label + " <")
        try:
            return f(*a, **k)
        finally:
            if os.getpid() == pid:
                mark(label + " >")

    pid = os.getpid()
    setattr(obj, name, w)


def flush() -> None:
    """Append this process's trace to the file (one write, O_APPEND)."""
    global _marks
    if not _path or not _marks:
        return
    line = json.dumps({"ti_id": _ti_id, "marks": _marks}) + "\n"
    _marks = []
    try:
        fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError:
        pass
