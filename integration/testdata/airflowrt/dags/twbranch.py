"""An Airflow DAG with a branch and a short-circuit operator, whose taskwire
DAG (integration/airflowrt_test.go, TestAirflowRuntimeBranchInDagRun) runs
pick and gate here, with Airflow's task runner, and their downstream tasks
as shell commands: the branch not taken and everything below the closed
gate are skipped through SkipDownstreamTasks. skip_odd is mapped: each of
its instances with an odd n skips after_each's instance of its own map
index (a [task_id, map_index] pair)."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, task

with DAG("twbranch", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):

    @task.branch
    def pick():
        return "left"

    @task
    def left():  # run by taskwire as a command
        pass

    @task
    def right():  # run by taskwire as a command
        pass

    @task
    def after_right():  # run by taskwire as a command
        pass

    @task
    def gated():  # run by taskwire as a command
        pass

    @task
    def skip_odd(n, ti=None):
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        if n % 2:
            raise DownstreamTasksSkipped(tasks=[("after_each", ti.map_index)])
        return n

    @task
    def after_each(n):  # run by taskwire as a command
        pass

    skip_odd.expand(n=[0, 1, 2, 3]) >> after_each.expand(n=[0, 1, 2, 3])

    r = right()
    pick() >> [left(), r]
    r >> after_right()
    ShortCircuitOperator(task_id="gate", python_callable=lambda: False) >> gated()
