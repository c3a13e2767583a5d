"""An Airflow DAG whose taskwire DAG (integration/airflowrt_test.go,
TestAirflowRuntimeInDagRun) runs gen and the mapped sq as shell commands
and total here, with Airflow's task runner: total reads sq's mapped XCom
list through Airflow's lazy XCom sequence."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task

with DAG("twmix", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):

    @task
    def sq(n):  # run by taskwire as a command: echo $((map_index * 2))
        return n * 2

    @task
    def total(values):
        vals = list(values)
        print(f"total={sum(vals)} of {len(vals)} values, third={values[2]}")
        return sum(vals)

    total(sq.expand(n=[0, 1, 2, 3]))
