"""DAGs of the Airflow integration test (integration/airflow_test.go).

Tasks signal the test through files in $TW_TEST_SIGNALS (set in the taskwire
workers' environment, which their task processes inherit).
"""

from __future__ import annotations

import os
import pathlib
import time
from datetime import datetime, timedelta

from airflow.sdk import dag, get_current_context, task


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
