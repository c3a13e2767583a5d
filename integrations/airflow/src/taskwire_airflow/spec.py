"""Pure translation between Airflow's workloads and taskwire's activities.

Nothing here talks to the network or to Airflow's database, so it is tested
on its own (tests/test_spec.py).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

# taskwire's own limits (activity.ValidateQueue and validateID).
_QUEUE_BAD = re.compile(r"[^a-z0-9_-]")
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_RUN_ID_BAD = re.compile(r"[^A-Za-z0-9_.:+@-]")

#: The environment variable that carries the workload's JSON to the worker's
#: runner (taskwire_airflow.run). It is not put on the command line, where
#: every user of the worker's machine could read the token in it.
WORKLOAD_ENV = "TASKWIRE_AIRFLOW_WORKLOAD"

#: The key of taskwire's params that holds Airflow's identity of the try.
PARAMS_KEY = "airflow"

# Airflow's state names for what the executor reports (TaskInstanceState /
# CallbackState values are these strings).
RUNNING, SUCCESS, FAILED = "running", "success", "failed"

#: taskwire's state → what the executor reports to Airflow's event buffer.
#: Airflow owns retries (taskwire is told retries=0), so every unsuccessful
#: end of the taskwire try is a failed process for Airflow; the task's own
#: state (up_for_retry, failed, deferred, skipped) is what Airflow's
#: supervisor already told Airflow's API server.
_STATE_MAP = {
    "running": RUNNING,
    "success": SUCCESS,
    "skipped": SUCCESS,
    "failed": FAILED,
    "up_for_retry": FAILED,
    "cancelled": FAILED,
    "removed": FAILED,
}

#: taskwire states after which a record no longer changes.
TERMINAL = frozenset({"success", "failed", "skipped", "cancelled", "removed"})


@dataclass(frozen=True)
class Settings:
    """The ``[taskwire]`` section of Airflow's configuration.

    Each can be set as ``AIRFLOW__TASKWIRE__<NAME>`` in the environment.
    """

    #: taskwire executor's base URL (its public API serves /api/v1/...).
    api_url: str = "http://127.0.0.1:8080"
    #: The operator token of taskwire's public API; empty when it has none.
    token: str = ""
    #: taskwire queue for tasks whose queue is empty or Airflow's default.
    default_queue: str = "default"
    #: Airflow's own default queue name ([operators] default_queue).
    airflow_default_queue: str = "default"
    #: The command a taskwire worker runs for a workload (shell-split).
    worker_command: tuple[str, ...] = ("python3", "-m", "taskwire_airflow.run")
    #: Airflow's Execution API URL as the workers reach it; given to the
    #: runner as AIRFLOW__CORE__EXECUTION_API_SERVER_URL. Empty: the
    #: scheduler's own [core] execution_api_server_url.
    execution_api_server_url: str = ""
    #: Extra environment for every workload, as "K=V K2=V2" (shell-split).
    worker_env: dict[str, str] = field(default_factory=dict)
    #: Seconds between reconnects of a broken watch stream.
    watch_retry_seconds: float = 2.0
    #: Submits in flight at once: the workloads of one scheduler heartbeat
    #: are submitted in parallel (1: one after the other).
    submit_parallelism: int = 8

    @classmethod
    def from_conf(cls, get) -> Settings:
        """Build from a getter ``get(key, fallback) -> str`` of the [taskwire] section."""
        d = cls()
        env = {}
        for item in shlex.split(get("worker_env", "") or ""):
            if "=" not in item:
                raise ValueError(f"[taskwire] worker_env: {item!r} is not K=V")
            k, v = item.split("=", 1)
            env[k] = v
        cmd = tuple(shlex.split(get("worker_command", "") or "")) or d.worker_command
        return cls(
            api_url=(get("api_url", "") or d.api_url).rstrip("/"),
            token=get("token", "") or "",
            default_queue=queue_name(get("default_queue", "") or d.default_queue, "default"),
            airflow_default_queue=get("airflow_default_queue", "") or d.airflow_default_queue,
            worker_command=cmd,
            execution_api_server_url=get("execution_api_server_url", "") or "",
            worker_env=env,
            watch_retry_seconds=float(get("watch_retry_seconds", "") or d.watch_retry_seconds),
            submit_parallelism=_positive_int("submit_parallelism", get("submit_parallelism", "") or d.submit_parallelism),
        )


def _positive_int(key: str, v: Any) -> int:
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"[taskwire] {key}: {v!r} is not an integer") from None
    if n < 1:
        raise ValueError(f"[taskwire] {key}: {n} is below 1")
    return n


def queue_name(q: str | None, default: str) -> str:
    """taskwire's queue for Airflow's queue q: lower case, [a-z0-9_-], at most 64."""
    if not q:
        return default
    name = _QUEUE_BAD.sub("-", q.lower())[:64]
    return name or default


def safe_id(s: str | None, fallback: str, *, run_id: bool = False) -> str:
    """s within taskwire's id alphabet (dag_id, task_id: [A-Za-z0-9_.-];
    run_id: [A-Za-z0-9_.:+@-]; 1-250, no ".."); the exact value always
    travels in the params too."""
    bad = _RUN_ID_BAD if run_id else _KEY_BAD
    name = bad.sub("_", s or "")[:250]
    while ".." in name:
        name = name.replace("..", "._")
    if name in (".", ""):
        return fallback
    return name


def airflow_state(tw_state: str) -> str | None:
    """What to report to Airflow for a taskwire state; None for nothing."""
    return _STATE_MAP.get(tw_state)


def identity(workload: Any) -> dict[str, Any]:
    """Airflow's identity of a workload, for taskwire's params and adoption."""
    ti = getattr(workload, "ti", None)
    if ti is not None:
        return {
            "kind": "ExecuteTask",
            "ti_id": str(ti.id),
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "try_number": ti.try_number,
            "queue": ti.queue,
        }
    cb = getattr(workload, "callback", None)
    return {
        "kind": type(workload).__name__,
        "callback_id": str(getattr(cb, "id", "")),
        "dag_id": getattr(workload, "dag_id", None) or _callback_dag(workload),
    }


def _callback_dag(workload: Any) -> str | None:
    data = getattr(getattr(workload, "callback", None), "data", None) or {}
    return data.get("dag_id") if isinstance(data, dict) else None


def task_spec(workload: Any, workload_json: str, settings: Settings, server_url: str) -> dict[str, Any]:
    """The body of taskwire's POST /api/v1/activities for one workload.

    The command runs Airflow's workload runner on the worker; the workload
    (with Airflow's token) travels in its environment.
    """
    ident = identity(workload)
    if ident["kind"] == "ExecuteTask":
        q = ident["queue"]
        if q == settings.airflow_default_queue:
            q = None
        spec = {
            "dag_id": safe_id(ident["dag_id"], "airflow"),
            "task_id": safe_id(ident["task_id"], "task"),
            "run_id": safe_id(ident["run_id"], "run", run_id=True),
            "map_index": -1 if ident["map_index"] is None else ident["map_index"],
            "queue": queue_name(q, settings.default_queue),
        }
        # Airflow's weight (already computed by its weight_rule) orders the
        # task among those waiting for taskwire's admission (a queue's
        # max_running). Airflow's pools are not passed: its scheduler
        # enforces them before it queues a workload (which names no pool,
        # only pool_slots), so a taskwire pool would limit the task twice.
        weight = getattr(workload.ti, "priority_weight", None)
        if isinstance(weight, int) and not isinstance(weight, bool):
            spec["priority_weight"] = weight
    else:
        spec = {
            "dag_id": safe_id(ident.get("dag_id"), "airflow"),
            "task_id": "callback",
            "run_id": safe_id(ident["callback_id"], "callback", run_id=True),
            "queue": settings.default_queue,
        }
    env = dict(settings.worker_env)
    env[WORKLOAD_ENV] = workload_json
    if server_url:
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = server_url
    spec.update(
        {
            "params": {PARAMS_KEY: ident},
            "command": list(settings.worker_command),
            "env": env,
            # Airflow decides retries; taskwire runs each try once.
            "retries": 0,
        }
    )
    return spec
