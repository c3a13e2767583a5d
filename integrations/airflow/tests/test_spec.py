"""Pure tests of the workload ↔ taskwire translation, on Airflow's real
workload models (no Airflow process, no network)."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
from pydantic import TypeAdapter

from airflow.executors import workloads
from taskwire_airflow.spec import (
    PARAMS_KEY,
    WORKLOAD_ENV,
    Settings,
    airflow_state,
    queue_name,
    safe_id,
    task_spec,
)


def make_workload(**ti):
    fields = {
        "id": str(uuid.uuid4()),
        "task_id": "group.extract",
        "dag_id": "etl",
        "run_id": "manual__2026-12-03T19:00:00.123456+00:00",
        "try_number": 2,
        "dag_version_id": str(uuid.uuid4()),
        "map_index": 3,
        "queue": "High Mem",
        "pool_slots": 1,
        "priority_weight": 1,
    }
    fields.update(ti)
    data = {
        "type": "ExecuteTask",
        "token": "the-airflow-token",
        "ti": fields,
        "dag_rel_path": "etl.py",
        "bundle_info": {"name": "dags-folder"},
        "log_path": "etl/run/extract/attempt=2.log",
    }
    return TypeAdapter(workloads.All).validate_python(data)


def test_queue_names():
    assert queue_name("High Mem", "default") == "high-mem"
    assert queue_name("gpu_a100", "default") == "gpu_a100"
    assert queue_name("", "fallback") == "fallback"
    assert queue_name(None, "fallback") == "fallback"
    assert len(queue_name("x" * 100, "d")) == 64


def test_safe_ids():
    run = "manual__2026-12-03T19:00:00+00:00"
    assert safe_id(run, "run", run_id=True) == run
    # dag_id and task_id: Airflow's KEY_REGEX in ASCII, no "..".
    assert safe_id(run, "run") == "manual__2026-12-03T19_00_00_00_00"
    assert safe_id("a b/c", "x") == "a_b_c"
    assert safe_id("a..b", "x") == "a._b"
    assert safe_id(".", "x") == "x"
    assert safe_id("", "x") == "x"


def test_task_spec_carries_identity_token_and_command():
    w = make_workload()
    s = Settings(worker_env={"EXTRA": "1"})
    spec = task_spec(w, w.model_dump_json(), s, "http://airflow:8080/execution/")
    assert spec["queue"] == "high-mem"
    assert (spec["dag_id"], spec["task_id"], spec["map_index"]) == ("etl", "group.extract", 3)
    assert spec["run_id"] == "manual__2026-12-03T19:00:00.123456+00:00"
    assert spec["retries"] == 0
    assert spec["command"] == ["python3", "-m", "taskwire_airflow.run"]
    ident = spec["params"][PARAMS_KEY]
    assert ident["try_number"] == 2 and ident["ti_id"] == str(w.ti.id) and ident["queue"] == "High Mem"
    env = spec["env"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow:8080/execution/"
    assert env["EXTRA"] == "1"
    # The workload (and its token) round-trips to what the worker's runner decodes.
    back = TypeAdapter(workloads.All).validate_json(env[WORKLOAD_ENV])
    assert back.token == "the-airflow-token" and back.ti.id == w.ti.id
    # Not on the command line, where other users of the worker could read it.
    assert "the-airflow-token" not in " ".join(spec["command"])
    json.dumps(spec)  # the POST body


def test_airflow_default_queue_maps_to_taskwire_default():
    w = make_workload(queue="default", map_index=-1)
    spec = task_spec(w, w.model_dump_json(), Settings(default_queue="airflow"), "")
    assert spec["queue"] == "airflow"
    assert spec["map_index"] == -1
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL" not in spec["env"]


@pytest.mark.parametrize(
    "tw,af",
    [
        ("queued", None),
        ("deferred", None),
        ("running", "running"),
        ("success", "success"),
        ("skipped", "success"),
        ("failed", "failed"),
        ("up_for_retry", "failed"),
        ("cancelled", "failed"),
        ("removed", "failed"),
    ],
)
def test_state_map(tw, af):
    assert airflow_state(tw) == af


def test_settings_from_conf():
    conf = {
        "api_url": "http://tw:8080/",
        "token": "op",
        "default_queue": "Airflow",
        "worker_command": "/opt/venv/bin/python -m taskwire_airflow.run",
        "worker_env": "A=1 'B=two words'",
    }
    s = Settings.from_conf(lambda k, fb="": conf.get(k, fb))
    assert s.api_url == "http://tw:8080"
    assert s.token == "op"
    assert s.default_queue == "airflow"
    assert s.worker_command == ("/opt/venv/bin/python", "-m", "taskwire_airflow.run")
    assert s.worker_env == {"A": "1", "B": "two words"}
    assert Settings.from_conf(lambda k, fb="": fb) == Settings()
    with pytest.raises(ValueError, match="not K=V"):
        Settings.from_conf(lambda k, fb="": "nope" if k == "worker_env" else fb)
    assert Settings.from_conf(lambda k, fb="": "3" if k == "submit_parallelism" else fb).submit_parallelism == 3
    for bad, msg in (("0", "below 1"), ("many", "not an integer")):
        with pytest.raises(ValueError, match=f"submit_parallelism: .*{msg}"):
            Settings.from_conf(lambda k, fb="", bad=bad: bad if k == "submit_parallelism" else fb)


@pytest.mark.parametrize(
    "rc,final,want",
    [(0, "success", 0), (0, "deferred", 0), (0, None, 0), (0, "failed", 1), (0, "up_for_retry", 1), (-9, None, -9)],
)
def test_runner_exit_code(rc, final, want):
    from taskwire_airflow.run import exit_code

    assert exit_code(rc, final) == want


def test_priority_weight_passed_pool_not():
    w = make_workload(priority_weight=42, pool_slots=3)
    spec = task_spec(w, w.model_dump_json(), Settings(), "")
    assert spec["priority_weight"] == 42
    # Airflow's scheduler enforced its pool before queueing the workload:
    # taskwire must not limit it again.
    assert "pool" not in spec and "pool_slots" not in spec
    neg = make_workload(priority_weight=-5)
    assert task_spec(neg, neg.model_dump_json(), Settings(), "")["priority_weight"] == -5
    # Callbacks have no weight.
    cb = SimpleNamespace(callback=SimpleNamespace(id="cb1", data={"dag_id": "etl"}))
    assert "priority_weight" not in task_spec(cb, "{}", Settings(), "")
