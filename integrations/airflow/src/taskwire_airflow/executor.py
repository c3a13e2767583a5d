"""TaskwireExecutor: Airflow's scheduler hands its workloads to taskwire.

Load it with ``AIRFLOW__CORE__EXECUTOR=taskwire_airflow.executor.TaskwireExecutor``.

Each workload (an ExecuteTask try, or an ExecuteCallback) becomes one
taskwire task, submitted through taskwire's public API (POST
/api/v1/activities) on the taskwire queue named by the task's ``queue``. Its
command is Airflow's workload runner (``python3 -m taskwire_airflow.run``),
which a taskwire worker runs and supervises; the workload and Airflow's token
travel in the command's environment, so the task talks to Airflow's API server
as under any other executor. taskwire runs each try once: Airflow decides
retries.

State flows back through taskwire's watch stream (GET
/api/v1/task-instances/{id}/watch, NDJSON): one streaming request per running
workload, held by a daemon thread, not a poll per task per heartbeat. The
threads only append to a queue; ``sync`` (the scheduler's thread) moves what
they saw into Airflow's event buffer.

- parallelism: Airflow's BaseExecutor counts ``running``; a workload stays in
  it until taskwire reports the end of its try.
- ``external_executor_id`` is taskwire's task-instance id, given to Airflow
  with the QUEUED event as soon as taskwire accepted the task, so a new
  scheduler can adopt the try (``try_adopt_task_instances``) and ``revoke_task``
  can cancel it.
- Settings: the ``[taskwire]`` section (see spec.Settings).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.executors.base_executor import BaseExecutor, get_execution_api_server_url
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.utils.state import TaskInstanceState

from taskwire_airflow.client import Client, NotFound
from taskwire_airflow.spec import (
    FAILED,
    PARAMS_KEY,
    RUNNING,
    SUCCESS,
    TERMINAL,
    Settings,
    airflow_state,
    task_spec,
)

if TYPE_CHECKING:
    from airflow.models.taskinstance import TaskInstance


class TaskwireExecutor(BaseExecutor):
    """Runs Airflow's workloads as taskwire tasks on taskwire workers."""

    supports_callbacks: bool = True
    is_local: bool = False
    # Task logs go to the worker's stdout, shipped by taskwire (and to the
    # worker's own log file when it has Airflow's log folder).
    serve_logs: bool = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.settings: Settings | None = None
        self.client: Client | None = None
        self._events: queue.SimpleQueue[tuple[Any, str, str]] = queue.SimpleQueue()
        self._watches: dict[Any, threading.Event] = {}
        self._tw_ids: dict[Any, str] = {}
        self._server_url = ""
        self._submitter: ThreadPoolExecutor | None = None

    # -- lifecycle ----------------------------------------------------------

    def _get(self, key: str, fallback: str = "") -> str:
        conf = getattr(self, "conf", None)
        if conf is None:
            from airflow.configuration import conf
        try:
            v = conf.get("taskwire", key, fallback=fallback)
        except Exception:  # the section may not exist at all
            v = fallback
        return v if v is not None else fallback

    def start(self) -> None:
        self.settings = Settings.from_conf(self._get)
        self.client = Client(self.settings.api_url, self.settings.token)
        self._server_url = self.settings.execution_api_server_url or get_execution_api_server_url(
            getattr(self, "conf", None) or _global_conf()
        )
        self.log.info(
            "taskwire executor: api %s, default queue %s, workers reach Airflow at %s",
            self.settings.api_url,
            self.settings.default_queue,
            self._server_url,
        )

    def end(self) -> None:
        """Stop following the tries; they go on in taskwire and a new
        scheduler adopts them."""
        self.sync()
        self._stop_watches()

    def terminate(self) -> None:
        self._stop_watches()

    def _stop_watches(self) -> None:
        for stop in self._watches.values():
            stop.set()
        self._watches.clear()
        if self._submitter is not None:
            self._submitter.shutdown(wait=True)
            self._submitter = None
        if self.client is not None:
            self.client.close()

    # -- submitting ---------------------------------------------------------

    def _process_workloads(self, workload_list: Sequence[Any]) -> None:
        """Submit the heartbeat's workloads, up to submit_parallelism at once
        (each a round trip to taskwire: one after the other, the last of a
        heartbeat's would wait for all the others); the results are
        handled here, on the scheduler's thread, in order."""
        assert self.client is not None and self.settings is not None
        specs = []
        for w in workload_list:
            self.queued_tasks.pop(w.key, None) or self.queued_callbacks.pop(w.key, None)
            specs.append(task_spec(w, w.model_dump_json(), self.settings, self._server_url))
        client = self.client

        def submit(spec: dict[str, Any]) -> dict[str, Any] | Exception:
            try:
                return client.submit(spec)
            except Exception as e:
                return e

        if len(specs) > 1 and self.settings.submit_parallelism > 1:
            if self._submitter is None:
                self._submitter = ThreadPoolExecutor(self.settings.submit_parallelism, thread_name_prefix="taskwire-submit")
            results = list(self._submitter.map(submit, specs))
        else:
            results = [submit(spec) for spec in specs]
        for w, spec, rec in zip(workload_list, specs, results):
            key = w.key
            if isinstance(rec, Exception):
                self.log.error("taskwire refused %s: %s", w.display_name, rec)
                self.fail(key, info=f"taskwire submit: {rec}")
                continue
            tw_id = rec["id"]
            self.running.add(key)
            self._tw_ids[key] = tw_id
            if isinstance(key, TaskInstanceKey):
                # Airflow records the info of a QUEUED event as the try's
                # external_executor_id: what a new scheduler adopts by.
                self.event_buffer[key] = (TaskInstanceState.QUEUED, tw_id)
            self._watch(key, tw_id)
            self.log.info("queued %s as taskwire task %s on %s", w.display_name, tw_id, spec["queue"])

    # -- following ----------------------------------------------------------

    def _watch(self, key: Any, tw_id: str) -> None:
        stop = threading.Event()
        self._watches[key] = stop
        t = threading.Thread(
            target=self._follow, args=(key, tw_id, stop), name=f"taskwire-watch-{tw_id}", daemon=True
        )
        t.start()

    def _follow(self, key: Any, tw_id: str, stop: threading.Event) -> None:
        """Follow one taskwire task until it ends; reconnect when the stream breaks."""
        assert self.client is not None and self.settings is not None
        reported = None
        while not stop.is_set():
            try:
                for rec in self.client.watch(tw_id):
                    if stop.is_set():
                        return
                    st = rec.get("state", "")
                    mapped = airflow_state(st)
                    if mapped is None or mapped == reported:
                        continue
                    if mapped != RUNNING and st not in TERMINAL and st != "up_for_retry":
                        continue
                    reported = mapped
                    self._events.put((key, mapped, tw_id if mapped == RUNNING else rec.get("reason", "")))
                    if mapped != RUNNING:
                        return
            except NotFound:
                self._events.put((key, FAILED, f"taskwire has no task {tw_id}"))
                return
            except Exception as e:
                if stop.is_set():
                    return
                self.log.warning("watch of taskwire task %s broke (%s); reconnecting", tw_id, e)
            # The stream ended before the task did (taskwire's executor
            # restarted): the next watch begins with the current record.
            stop.wait(self.settings.watch_retry_seconds)

    def sync(self) -> None:
        while True:
            try:
                key, state, info = self._events.get_nowait()
            except queue.Empty:
                return
            if key not in self.running:
                continue  # revoked meanwhile
            if state == RUNNING:
                self.running_state(key, info)
                continue
            self._watches.pop(key, None)
            self._tw_ids.pop(key, None)
            if state == SUCCESS:
                self.success(key, info)
            else:
                self.fail(key, info)

    # -- cancellation and adoption -------------------------------------------

    def revoke_task(self, *, ti: TaskInstance) -> None:
        """Cancel the try in taskwire and forget it; no event (Airflow's rule)."""
        key = ti.key
        tw_id = self._tw_ids.pop(key, None) or ti.external_executor_id
        stop = self._watches.pop(key, None)
        if stop is not None:
            stop.set()
        self.running.discard(key)
        self.queued_tasks.pop(key, None)
        if tw_id and self.client is not None:
            try:
                self.client.cancel(tw_id)
            except Exception as e:
                self.log.warning("cancel taskwire task %s of %s: %s", tw_id, ti, e)

    def try_adopt_task_instances(self, tis: Sequence[TaskInstance]) -> Sequence[TaskInstance]:
        """Adopt the tries a dead scheduler left: each one taskwire knows,
        for the same Airflow try, is followed again; the rest are returned
        for Airflow to reset."""
        assert self.client is not None
        not_adopted = []
        for ti in tis:
            tw_id = ti.external_executor_id
            if not tw_id:
                not_adopted.append(ti)
                continue
            try:
                rec = self.client.get(tw_id)
            except Exception as e:
                self.log.warning("cannot adopt %s (taskwire task %s): %s", ti, tw_id, e)
                not_adopted.append(ti)
                continue
            ident = (rec.get("params") or {}).get(PARAMS_KEY) or {}
            if ident.get("ti_id") != str(ti.id) or ident.get("try_number") != ti.try_number:
                self.log.warning("taskwire task %s is not %s try %s", tw_id, ti, ti.try_number)
                not_adopted.append(ti)
                continue
            key = ti.key
            self.running.add(key)
            self._tw_ids[key] = tw_id
            self._watch(key, tw_id)
            self.log.info("adopted %s: taskwire task %s (%s)", ti, tw_id, rec.get("state"))
        return not_adopted


def _global_conf():
    from airflow.configuration import conf

    return conf

