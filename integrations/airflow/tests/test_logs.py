"""taskwire's log lines as Airflow's log reader gets them, and which
taskwire task is an Airflow try's (no network: a try's identity is the
params the executor wrote)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from taskwire_airflow.logs import _is_try, airflow_lines

TI = SimpleNamespace(
    id="0199-ti", dag_id="etl", run_id="manual__1", task_id="load", map_index=-1, try_number=2
)


def rec(**ident):
    base = {"kind": "ExecuteTask", "ti_id": "0199-ti", "dag_id": "etl", "run_id": "manual__1",
            "task_id": "load", "map_index": -1, "try_number": 2}
    base.update(ident)
    return {"id": "tw1", "params": {"airflow": base}}


def test_is_try():
    assert _is_try(rec(), TI)
    assert not _is_try(rec(try_number=1), TI)
    assert not _is_try(rec(kind="ExecuteCallback"), TI)
    assert not _is_try({"id": "x", "params": {}}, TI)
    # A try recorded without the ti id (a TaskInstanceHistory row has the
    # same identity fields).
    assert _is_try(rec(ti_id="other"), SimpleNamespace(**{**vars(TI), "id": None}))
    assert not _is_try(rec(ti_id="other", task_id="x"), SimpleNamespace(**{**vars(TI), "id": None}))


def test_airflow_lines():
    airflow_rec = {"timestamp": "2026-12-07T01:00:00.5Z", "level": "error", "event": "Task failed", "logger": "task"}
    lines = [
        {"try": 1, "timestamp": "2026-12-07T01:00:00Z", "level": "info", "event": "started on w1", "logger": "worker"},
        {"try": 1, "timestamp": "2026-12-07T01:00:01Z", "level": "info", "event": json.dumps(airflow_rec), "logger": "stdout"},
        {"try": 1, "timestamp": "2026-12-07T01:00:02Z", "level": "warning", "event": "{not json", "logger": "stderr"},
    ]
    out = [json.loads(x) for x in airflow_lines(lines)]
    assert out[0] == {"timestamp": "2026-12-07T01:00:00Z", "level": "info", "event": "started on w1", "logger": "worker"}
    # Airflow's own record, as the supervisor printed it.
    assert out[1] == airflow_rec
    assert out[2]["event"] == "{not json" and "try" not in out[2]
