"""The demo's Airflow DAG (./demo.sh), run task by task by Airflow's own task
runner on a taskwire worker queue whose runtime is "airflow". The taskwire
DAG examples/airflow/dag.yaml names these tasks and adds a shell command
between them: taskwire schedules the run; Airflow's runner runs each task.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, Variable, task

with DAG("airflow_demo", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):

    @task
    def extract():
        print(f"extract: {Variable.get('greeting')}")
        return [3, 1, 4, 1, 5]

    @task
    def double(values):  # run by taskwire as a shell command (dag.yaml)
        return [v * 2 for v in values]

    @task
    def total(values):  # values: double's return value, an XCom of the taskwire run
        print(f"total of {values} = {sum(values)}")
        return sum(values)

    @task
    def report():  # skipped: the gate is closed
        print("never runs")

    total(double(extract()))
    ShortCircuitOperator(task_id="gate", python_callable=lambda: False) >> report()
