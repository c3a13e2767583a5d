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

    from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

    DateTimeSensorAsync(
        task_id="wait_async",
        target_time="{{ (macros.datetime.now(macros.dateutil.tz.UTC) + macros.timedelta(seconds=2)).isoformat() }}",
    )

    @task
    def every_request(ti=None):
        """Sends the requests ordinary operators send, straight through the
        runner's own channel: each is answered, none kills the try."""
        from airflow.sdk.exceptions import AirflowRuntimeError
        from airflow.sdk.execution_time import comms as c
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        here = dict(dag_id=ti.dag_id, run_id=ti.run_id)
        requests = [
            c.SetRenderedFields(rendered_fields={"templated": "rendered-value"}),
            c.SetRenderedMapIndex(rendered_map_index="label-7"),
            c.ValidateInletsAndOutlets(ti_id=ti.id),
            c.GetDagRunState(**here),
            c.GetXComCount(key="return_value", task_id="produce", **here),
            c.GetXComSequenceSlice(key="return_value", task_id="produce", start=None, stop=None, step=None, **here),
            c.GetVariable(key="no-such-variable"),
            c.GetConnection(conn_id="no-such-connection"),
            c.PutVariable(key="written_by_airflow", value="yes", description=None),
            c.MaskSecret(value={"api_token": "tok-123456"}, name=None),
            c.GetDagRun(**here),
            c.GetTICount(dag_id=ti.dag_id),
            c.SkipDownstreamTasks(tasks=["x"]),
        ]
        for msg in requests:
            try:
                resp = SUPERVISOR_COMMS.send(msg)
                print(f"request {msg.type}: {type(resp).__name__} {getattr(resp, 'error', '')}".rstrip())
            except AirflowRuntimeError as e:
                print(f"request {msg.type}: refused {e.error.error.value} {e.error.detail}")
        print("token is tok-123456")

    every_request()

    from airflow.sdk import BaseOperator
    from twrt_triggers import FileAppearsTrigger

    class WaitForFile(BaseOperator):
        """Defers on the DAG folder's own trigger class, waiting for the file
        the variable signal_path names."""

        def execute(self, context):
            self.defer(trigger=FileAppearsTrigger(Variable.get("signal_path")), method_name="done")

        def done(self, context, event=None):
            print(f"resumed: file said {event['content']}")
            return event["content"]

    WaitForFile(task_id="wait_file")

    from twrt_triggers import PollApiTrigger, ReadSecretsTrigger

    class PollApi(BaseOperator):
        """Defers on a DAG-folder trigger polling the variable api_url's
        server, paced by taskwire's rate limit twrt-api."""

        def execute(self, context):
            self.defer(trigger=PollApiTrigger(Variable.get("api_url"), "twrt-api"), method_name="done")

        def done(self, context, event=None):
            print(f"resumed: api answered {event['status']} after {event['polls']} polls")
            return event["polls"]

    PollApi(task_id="poll_api")

    class ReadSecretsInTrigger(BaseOperator):
        """Defers on a trigger that reads a Variable and a Connection."""

        def execute(self, context):
            self.defer(trigger=ReadSecretsTrigger("trigger_conn", "trigger_greeting"), method_name="done")

        def done(self, context, event=None):
            return event

    ReadSecretsInTrigger(task_id="read_secrets")

    # end_from_trigger: Airflow's DateTimeTrigger yields TaskSuccessEvent, and
    # the task ends in the triggerer, never resumed (execute_complete unrun).
    DateTimeSensorAsync(
        task_id="wait_end",
        end_from_trigger=True,
        target_time="{{ (macros.datetime.now(macros.dateutil.tz.UTC) + macros.timedelta(seconds=1)).isoformat() }}",
    )

    from twrt_triggers import EndTaskTrigger

    class EndInTrigger(BaseOperator):
        """Defers on a DAG-folder trigger that ends the task itself in state."""

        def __init__(self, *, state, **kwargs):
            super().__init__(**kwargs)
            self.state = state

        def execute(self, context):
            self.defer(trigger=EndTaskTrigger(self.state), method_name="resumed")

        def resumed(self, context, event=None):
            raise RuntimeError("a task its trigger ended was resumed")

    EndInTrigger(task_id="end_success", state="success")
    EndInTrigger(task_id="end_skipped", state="skipped")
    EndInTrigger(task_id="end_failed", state="failed")

    from airflow.providers.standard.sensors.python import PythonSensor

    def _signal_there():
        import os

        path = Variable.get("reschedule_path")
        print(f"poking {path}")
        return os.path.exists(path)

    # A reschedule-mode sensor: each poke that finds nothing ends the run as
    # up_for_reschedule, and the same try runs again a second later.
    PythonSensor(task_id="poke_file", mode="reschedule", poke_interval=1, timeout=600, python_callable=_signal_there)
