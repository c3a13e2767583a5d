"""Task logs in Airflow's UI, read from taskwire's logs API.

taskwire's workers ship each try's output to taskwire's log stream (the
runner's stdout: the Task SDK supervisor's and the task's JSON log records).
``TaskwireLogIO`` is a remote task log of Airflow 3.3 (the ``RemoteLogIO``
protocol: ``upload`` and ``read``) that Airflow's API server asks for a try's
log: it finds the try's taskwire task (the try's ``external_executor_id``,
else by its Airflow identity in the tasks' ``params.airflow``) and answers
its lines from ``GET /api/v1/task-instances/{id}/logs``, so Airflow's UI and
REST API (``GET .../taskInstances/{task_id}/logs/{try_number}``) show them.

Enable it on Airflow's API server (and wherever Airflow reads task logs)::

    AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS=taskwire_airflow.log_config.LOGGING_CONFIG

with the ``[taskwire]`` settings (api_url, token) the executor uses. Nothing
is uploaded: the worker already shipped every line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from taskwire_airflow.client import Client, NotFound
from taskwire_airflow.spec import PARAMS_KEY, safe_id

#: The newest taskwire tasks of a DAG searched for a try without an id.
_LIST_LIMIT = 1000


class TaskwireLogIO:
    """Airflow's RemoteLogIO over taskwire's logs API."""

    def __init__(self, client_factory: Callable[[], Client]):
        self._client_factory = client_factory

    @property
    def processors(self) -> tuple:
        return ()

    def upload(self, path: os.PathLike | str, ti: Any = None) -> None:
        """Nothing to upload: taskwire's worker shipped the lines as they came."""

    def read(self, relative_path: str, ti: Any) -> tuple[list[str], list[str] | None]:
        try:
            client = self._client_factory()
        except Exception as e:
            return [f"taskwire logs: {e}"], None
        try:
            tw_id = find_task(client, ti)
            if tw_id is None:
                return [f"taskwire has no task for {_describe(ti)}"], None
            lines = list(airflow_lines(client.logs(tw_id)))
        except Exception as e:  # the API server shows it instead of failing the request
            return [f"taskwire logs of {_describe(ti)}: {e}"], None
        finally:
            client.close()
        return [f"taskwire task {tw_id} ({client.base_url}), {len(lines)} lines"], ["\n".join(lines)]


def _describe(ti: Any) -> str:
    return f"{ti.dag_id}.{ti.task_id} run {ti.run_id} map {ti.map_index} try {ti.try_number}"


def _is_try(rec: dict[str, Any], ti: Any) -> bool:
    ident = (rec.get("params") or {}).get(PARAMS_KEY) or {}
    if ident.get("kind") != "ExecuteTask" or ident.get("try_number") != ti.try_number:
        return False
    if getattr(ti, "id", None) is not None and ident.get("ti_id") == str(ti.id):
        return True
    return (
        ident.get("dag_id") == ti.dag_id
        and ident.get("run_id") == ti.run_id
        and ident.get("task_id") == ti.task_id
        and ident.get("map_index", -1) == ti.map_index
    )


def find_task(client: Client, ti: Any) -> str | None:
    """taskwire's task id of Airflow's try ti (a TaskInstance or TaskInstanceHistory)."""
    ext = getattr(ti, "external_executor_id", None)
    if ext:
        try:
            if _is_try(client.get(ext), ti):
                return ext
        except NotFound:
            pass
    for rec in client.list(dag_id=safe_id(ti.dag_id, "airflow"), limit=_LIST_LIMIT):
        if _is_try(rec, ti):
            return rec["id"]
    return None


def airflow_lines(lines: Iterable[dict[str, Any]]) -> Iterable[str]:
    """Airflow's JSON log lines of taskwire's log lines.

    A line the runner printed on stdout is Airflow's own JSON record (the
    supervisor logs to stdout as JSON); it is given as it was. The worker's
    own lines and anything else keep taskwire's timestamp, level and event.
    """
    for line in lines:
        line.pop("try", None)
        ev = line.get("event")
        if line.get("logger") in ("stdout", "stderr") and isinstance(ev, str) and ev.startswith("{"):
            try:
                rec = json.loads(ev)
            except ValueError:
                rec = None
            if isinstance(rec, dict) and "event" in rec:
                rec.setdefault("timestamp", line.get("timestamp"))
                yield json.dumps(rec)
                continue
        yield json.dumps(line)
