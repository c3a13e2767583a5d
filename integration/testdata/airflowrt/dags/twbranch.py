"""An Airflow DAG with a branch and a short-circuit operator, whose taskwire
DAG (integration/airflowrt_test.go, TestAirflowRuntimeBranchInDagRun) runs
pick and gate here, with Airflow's task runner, and their downstream tasks
as shell commands: the branch not taken and everything below the closed
gate are skipped through SkipDownstreamTasks. skip_odd is mapped: each of
its instances with an odd n skips after_each's instance of its own map
index (a [task_id, map_index] pair). route is a mapped @task.branch: the
pinned SDK sends no SkipDownstreamTasks from a mapped task, each instance
leaves a skipmixin_key XCom ({"followed": [...]}) that taskwire's executor
reads as Airflow's scheduler does (NotPreviouslySkippedDep): route[i]'s
value skips map index i of even_path and odd_path when it does not follow
them; route_report, not mapped, reads map index -1, where route pushed
nothing, and runs."""

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

    @task.branch
    def route(n):
        return ("even_path", "odd_path", None)[n]  # [2] follows nothing

    @task
    def even_path(n):  # run by taskwire as a command
        pass

    @task
    def odd_path(n):  # run by taskwire as a command
        pass

    @task
    def route_report():  # run by taskwire as a command
        pass

    @task
    def after_odd():  # run by taskwire as a command
        pass

    @task(trigger_rule="none_failed_min_one_success")
    def route_join():  # run by taskwire as a command
        pass

    ev, od = even_path.expand(n=[0, 1, 2]), odd_path.expand(n=[0, 1, 2])
    route.expand(n=[0, 1, 2]) >> [ev, od, route_report()]
    od >> after_odd()
    [ev, od] >> route_join()

    r = right()
    pick() >> [left(), r]
    r >> after_right()
    ShortCircuitOperator(task_id="gate", python_callable=lambda: False) >> gated()
