"""DAGs of the Airflow integration test (integration/airflow_test.go).

Tasks signal the test through files in $TW_TEST_SIGNALS (set in the taskwire
workers' environment, which their task processes inherit).
"""

from __future__ import annotations

import os
import pathlib
import time
from datetime import datetime, timedelta

from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback, dag, get_current_context, task


def _signals() -> pathlib.Path:
    return pathlib.Path(os.environ["TW_TEST_SIGNALS"])


@dag(dag_id="tw_three", schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def tw_three():
    """Three tasks on two queues; one fails its first try and is retried."""

    @task(queue="default")
    def extract():
        return 21

    @task(queue="other")
    def double(x):
        # The XCom came through Airflow's API server.
        if x != 21:
            raise ValueError(f"got {x!r}")
        return x * 2

    @task(queue="default", retries=2, retry_delay=timedelta(seconds=1))
    def flaky():
        ti = get_current_context()["ti"]
        if ti.try_number < 2:
            raise RuntimeError(f"try {ti.try_number} fails on purpose")
        return ti.try_number

    x = extract()
    double(x)
    x >> flaky()


@dag(dag_id="tw_kill", schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def tw_kill():
    """Its first try hangs until its worker is SIGKILLed; the retry succeeds."""

    @task(queue="kill", retries=1, retry_delay=timedelta(seconds=1))
    def hang_first():
        ti = get_current_context()["ti"]
        if ti.try_number == 1:
            (_signals() / "kill-started").write_text(str(os.getpid()))
            time.sleep(3600)
        return ti.try_number

    hang_first()


@dag(dag_id="tw_adopt", schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def tw_adopt():
    """Two tasks that run until released, while the scheduler restarts."""

    def hold(name):
        (_signals() / f"adopt-{name}-started").write_text(str(os.getpid()))
        release = _signals() / "adopt-release"
        deadline = time.monotonic() + 600
        while not release.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.2)
        return name

    @task(queue="default")
    def held_a():
        return hold("a")

    @task(queue="other")
    def held_b():
        return hold("b")

    held_a()
    held_b()


tw_three()
tw_kill()
tw_adopt()


@dag(dag_id="tw_bench", schedule=None, start_date=datetime(2024, 1, 1), catchup=False, max_active_tasks=64)
def tw_bench():
    """100 no-op tasks: scheduler queued → task process started (integration/airflow_bench_test.go)."""

    @task(queue="default")
    def noop(i):
        return None

    noop.expand(i=list(range(100)))


tw_bench()


@dag(dag_id="tw_nat", schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def tw_nat():
    """A task on the queue of the worker behind NAT (outbound only)."""

    # Retries: on a loaded machine Airflow's API server can answer a try's
    # first call after the Task SDK's timeout (the try then fails).
    @task(queue="other", retries=2, retry_delay=timedelta(seconds=1))
    def give():
        return "pulled through the NAT"

    @task(queue="nat", retries=2, retry_delay=timedelta(seconds=1))
    def behind_nat(x):
        # Where this task's connections to Airflow's API server come from:
        # the namespace's private address, not one the API server can dial.
        import socket
        from urllib.parse import urlparse

        url = urlparse(os.environ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        with socket.create_connection((url.hostname, url.port), timeout=10) as s:
            local = s.getsockname()[0]
        (_signals() / "nat-task").write_text(f"{local} {x}")
        return x

    behind_nat(give())


tw_nat()


def deadline_missed(note, context=None):
    """tw_deadline's deadline callback: an ExecuteCallback workload, run by a
    taskwire worker. Top level in this file: Airflow imports it from here."""
    (_signals() / "deadline-missed").write_text(note)


@dag(
    dag_id="tw_deadline",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=1),
        callback=SyncCallback(deadline_missed, kwargs={"note": "missed"}),
    ),
)
def tw_deadline():
    """A run that outlasts its deadline: the scheduler sends the deadline's
    callback to the executor (Airflow 3.3's ExecuteCallback workload)."""

    @task(queue="default")
    def outlast():
        missed = _signals() / "deadline-missed"
        deadline = time.monotonic() + 600
        while not missed.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the deadline callback never ran")
            time.sleep(0.2)
        return missed.read_text()

    outlast()


tw_deadline()
