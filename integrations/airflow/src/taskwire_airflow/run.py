"""The worker side: run one Airflow workload as a taskwire task.

A taskwire worker starts ``python3 -m taskwire_airflow.run`` (the command
the executor put in the activity) with the workload's JSON in
TASKWIRE_AIRFLOW_WORKLOAD. It hands the workload to Airflow's own runner
(``BaseExecutor.run_workload``: the Task SDK's supervisor, which forks the
task and talks to Airflow's API server with the workload's token) and exits
0 when the try succeeded (or deferred, or skipped) and 1 when it failed, so
taskwire's record of the try matches Airflow's. Airflow's supervisor returns
the task process's exit code, which is 0 also for a task that raised and
reported its failure; the try's final state is read from the supervisor's
own "finished" log record (its final_state field), falling back to the exit
code when the record is absent. The supervisor's and the task's logs go to stdout, which
the taskwire worker ships to taskwire's log stream.
"""

from __future__ import annotations

import os
import sys

# A taskwire worker whose queue has a prefork zygote (worker.yaml: prefork,
# preload taskwire_airflow.run:preload, modules taskwire_airflow.run) runs
# this module in a child of the zygote, which imported Airflow and ran
# preload() once; without one, this process imports Airflow itself.


def main() -> int:
    return run_in_process()


def prefork_main() -> int:
    """What a prefork child of a taskwire worker's zygote calls (the zygote
    preloaded this module): main, without running the module again."""
    return main()


def run_in_process() -> int:
    """Decode the workload from the environment and run it with Airflow's runner."""
    from taskwire_airflow import trace
    from taskwire_airflow.spec import WORKLOAD_ENV

    trace.configured(os.environ.get(trace.TRACE_ENV))
    trace.begin()
    data = os.environ.pop(WORKLOAD_ENV, None)
    if not data:
        print(f"taskwire_airflow.run: {WORKLOAD_ENV} is not set", file=sys.stderr)
        return 2

    try:
        workload = workload_adapter().validate_json(data)
    except Exception as e:  # a bad workload: say what, fail the try
        print(f"taskwire_airflow.run: bad workload JSON: {e}", file=sys.stderr)
        return 2
    trace.mark("workload decoded")

    from airflow.executors.base_executor import BaseExecutor
    from airflow.settings import dispose_orm

    # As Airflow's execute_workload does: no database here, JSON logs on stdout.
    dispose_orm(do_log=False)
    configure_logging()
    final = _capture_final_state()
    trace.mark("logging set up; run_workload")
    rc = BaseExecutor.run_workload(
        workload,
        subprocess_logs_to_stdout=True,
        proctitle=f"airflow supervisor (taskwire): {workload.display_name}",
    )
    return exit_code(int(rc or 0), final.get("state"))


def preload() -> None:
    """What every workload needs, imported and built once by a taskwire
    worker's prefork zygote before it forks the workloads' processes
    (worker.yaml ``prefork: {preload: [taskwire_airflow.run:preload],
    modules: [taskwire_airflow.run]}``; integrations/airflow/worker.yaml)."""
    from pydantic import TypeAdapter  # noqa: F401

    import airflow.executors.base_executor  # noqa: F401
    import airflow.executors.workloads  # noqa: F401
    import airflow.sdk.execution_time.supervisor  # noqa: F401
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    import airflow.sdk.log  # noqa: F401
    from airflow.sdk.api import client as api_client

    from airflow.settings import dispose_orm

    import taskwire_airflow.spec  # noqa: F401
    from taskwire_airflow import trace

    trace.configured(os.environ.get(trace.TRACE_ENV))
    workload_adapter()
    # No database in a workload's process (run_in_process disposes of it
    # first, as Airflow's execute_workload does): the engine that importing
    # Airflow set up goes here, once, not in every child (≈ 1.3 ms of CPU).
    dispose_orm(do_log=False)
    # Airflow's logging as the workloads configure it (stdlib logging's
    # dictConfig walks every logger Airflow created: ≈ 5 ms of CPU per
    # child otherwise); a child whose [logging] settings differ does it again.
    configure_logging()
    # The Execution API client's TLS context (certifi's CAs: tens of
    # milliseconds to load), cached by the Task SDK: built here, every
    # child has it.
    api_client.Client._get_ssl_context_cached(api_client.API_SSL_CA_FILE_PATH, api_client.API_SSL_CERT_PATH)


_adapter = None
_logging_done: tuple[tuple[str, str], ...] | None = None


def _logging_settings() -> tuple[tuple[str, str], ...]:
    """What Airflow's logging configuration reads from the environment."""
    return tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith("AIRFLOW__LOGGING__") or k in ("AIRFLOW_HOME", "AIRFLOW_CONFIG"))
    )


def configure_logging() -> None:
    """Airflow's logging as its execute_workload configures it (JSON records
    on stdout), once per process and per [logging] settings: a child of a
    process that configured it with the same environment keeps it."""
    global _logging_done
    from airflow.sdk import log

    settings = _logging_settings()
    if _logging_done == settings:
        return
    log.configure_logging.cache_clear()  # Airflow's own cache of the call
    log.configure_logging(output=sys.stdout.buffer, json_output=True)
    _logging_done = settings


def workload_adapter():
    """pydantic's validator of Airflow's workloads, built once (building it
    costs tens of milliseconds; a prefork zygote builds it before it forks)."""
    global _adapter
    if _adapter is None:
        from pydantic import TypeAdapter

        from airflow.executors import workloads

        _adapter = TypeAdapter(workloads.All)
    return _adapter


#: Airflow's final states of a try that mean the process did its job.
_OK_STATES = frozenset({"success", "skipped", "deferred", "up_for_reschedule"})


def exit_code(rc: int, final_state: str | None) -> int:
    """The runner's exit code for the supervisor's rc and the try's final state."""
    if rc != 0:
        return rc
    if final_state is None or final_state in _OK_STATES:
        return 0
    return 1


def _capture_final_state() -> dict[str, str]:
    """Record the final_state of the supervisor's log records (structlog)."""
    import structlog

    seen: dict[str, str] = {}

    def capture(logger, method_name, event_dict):
        v = event_dict.get("final_state")
        if v is not None:
            seen["state"] = str(getattr(v, "value", v))
        return event_dict

    cfg = structlog.get_config()
    structlog.configure(processors=[capture, *cfg["processors"]])
    return seen


if __name__ == "__main__":
    # Run as a module (python -m; a prefork zygote's child calls
    # prefork_main instead): main of the imported module, whose state (the
    # workload validator, the logging done) a zygote prepared before it
    # forked; this __main__ copy is a fresh namespace.
    from taskwire_airflow import run as _run

    sys.exit(_run.main())
