"""The airflow runtime's test DAG: Airflow Task SDK code run unchanged by
taskwire workers (integration/airflowrt_test.go)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Connection, Variable, task
from airflow.sdk.exceptions import AirflowSkipException


def read_config():
    greeting = Variable.get("greeting")
    conn = Connection.get("warehouse")
    print(f"greeting={greeting} host={conn.host} login={conn.login} password={conn.password}")
    print(f"extra={conn.extra_dejson}")
    return {"greeting": greeting, "port": conn.port}


with DAG("twrt", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):

    @task
    def produce():
        return {"n": 41, "items": ["a", "b"]}

    @task
    def consume(value):
        print(f"consumed n={value['n']}")
        return value["n"] + 1

    consume(produce())

    BashOperator(task_id="bash", bash_command='echo "bash says $((6 * 7))"')

    PythonOperator(task_id="read_config", python_callable=read_config)

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def boom():
        raise ValueError("failing on purpose")

    boom()

    @task
    def skip_me():
        raise AirflowSkipException("nothing to do today")

    skip_me()

    @task
    def noop():
        return None

    noop()
