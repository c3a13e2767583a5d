"""Golden frames of Airflow's dialect, encoded by the real, pinned Task SDK.

Run with the Airflow venv (scripts/airflow-env.sh) from the repository root:

    .venv-airflow/bin/python protocol/testdata/airflow/gen.py [OUT_DIR]

(OUT_DIR defaults to this directory; integration's
TestAirflowGoldenFramesFromPinnedSDK writes them elsewhere and compares.)

Each NAME.bin is one frame body (without its 4-byte length) as
apache-airflow-task-sdk's own _RequestFrame / _ResponseFrame encoder writes
it; protocol's TestAirflowGoldenFrames decodes and re-encodes each one byte
for byte. req_* are task → worker, resp_* worker → task.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import datetime, timedelta, timezone

from airflow.sdk.api.datamodels._generated import (
    BundleInfo,
    DagRun,
    DagRunState,
    DagRunType,
    TaskInstance,
    TIRunContext,
)
from airflow.sdk.execution_time import comms as c

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
T0 = datetime(2026, 11, 22, 8, 15, 30, 123456, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)
TI_ID = uuid.UUID("0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a")
DV_ID = uuid.UUID("0195b3c2-0000-7000-8000-000000000001")
RUN = "manual__2026-11-22T00:00:00+00:00"

requests = {
    "GetConnection": c.GetConnection(conn_id="warehouse"),
    "GetVariable": c.GetVariable(key="greeting"),
    "PutVariable": c.PutVariable(key="last_run", value="2026-11-22", description="day the ETL last ran"),
    "DeleteVariable": c.DeleteVariable(key="scratch"),
    "GetXCom": c.GetXCom(key="return_value", dag_id="etl", run_id=RUN, task_id="extract", map_index=2),
    "GetXComCount": c.GetXComCount(key="return_value", dag_id="etl", run_id=RUN, task_id="extract"),
    "GetXComSequenceItem": c.GetXComSequenceItem(key="return_value", dag_id="etl", run_id=RUN, task_id="extract", offset=1),
    "GetXComSequenceSlice": c.GetXComSequenceSlice(key="return_value", dag_id="etl", run_id=RUN, task_id="extract", start=None, stop=None, step=None),
    "SetXCom": c.SetXCom(key="return_value", value={"rows": 1204, "ratio": 0.25, "tags": ["daily"], "none": None, "big": 2**40, "neg": -70000},
                         dag_id="etl", run_id=RUN, task_id="transform"),
    "DeleteXCom": c.DeleteXCom(key="scratch", dag_id="etl", run_id=RUN, task_id="transform", map_index=-1),
    "SucceedTask": c.SucceedTask(end_date=T0, task_outlets=[], outlet_events=[]),
    "RetryTask": c.RetryTask(end_date=T0, retry_reason="boom"),
    "TaskState": c.TaskState(state="failed", end_date=T0),
    "TaskStateSkipped": c.TaskState(state="skipped", end_date=T0),
    "DeferTask": c.DeferTask(classpath="airflow.providers.standard.triggers.temporal.DateTimeTrigger",
                             trigger_kwargs={"moment": "2026-11-22T08:16:30+00:00", "end_from_trigger": False},
                             trigger_timeout=timedelta(hours=1, seconds=5), next_method="execute_complete",
                             next_kwargs={"a": 1}),
    "RescheduleTask": c.RescheduleTask(reschedule_date=T0, end_date=T0),
    "SkipDownstreamTasks": c.SkipDownstreamTasks(tasks=["a", ("b", 1)]),
    "SetRenderedFields": c.SetRenderedFields(rendered_fields={"bash_command": "echo hi", "env": None}),
    "SetRenderedMapIndex": c.SetRenderedMapIndex(rendered_map_index="day=2026-11-22"),
    "ValidateInletsAndOutlets": c.ValidateInletsAndOutlets(ti_id=TI_ID),
    "GetDagRunState": c.GetDagRunState(dag_id="etl", run_id=RUN),
    "GetDagRun": c.GetDagRun(dag_id="etl", run_id=RUN),
    "GetTICount": c.GetTICount(dag_id="etl", task_ids=["extract"], states=["success"]),
    "GetTaskStates": c.GetTaskStates(dag_id="etl", run_ids=[RUN]),
    "GetDRCount": c.GetDRCount(dag_id="etl", states=["success"]),
    "GetPrevSuccessfulDagRun": c.GetPrevSuccessfulDagRun(ti_id=TI_ID),
    "GetPreviousDagRun": c.GetPreviousDagRun(dag_id="etl", logical_date=T1),
    "TriggerDagRun": c.TriggerDagRun(dag_id="other", run_id="manual__x", conf={"k": "v"}, logical_date=T1),
    "MaskSecret": c.MaskSecret(value={"token": "s3cret", "nested": ["x"]}, name="extra"),
    "GetVariableKeys": c.GetVariableKeys(prefix="etl_"),
    "GetTaskRescheduleStartDate": c.GetTaskRescheduleStartDate(ti_id=TI_ID, try_number=1),
}

ctx = TIRunContext(
    dag_run=DagRun(dag_id="etl", run_id=RUN, logical_date=T1, data_interval_start=T1, data_interval_end=T1,
                   run_after=T1, start_date=T0, end_date=None, run_type=DagRunType.MANUAL,
                   state=DagRunState.RUNNING, conf={"day": "2026-11-22"}, consumed_asset_events=[],
                   partition_key=None),
    max_tries=2,
)
responses = {
    "StartupDetails": (c.StartupDetails(
        ti=TaskInstance(id=TI_ID, task_id="transform", dag_id="etl", run_id=RUN, try_number=1,
                        dag_version_id=DV_ID, map_index=-1, queue="airflow"),
        dag_rel_path="etl.py", bundle_info=BundleInfo(name="dags-folder"), start_date=T0,
        ti_context=ctx, sentry_integration=""), {}),
    "ConnectionResult": (c.ConnectionResult(conn_id="warehouse", conn_type="postgres", host="db.internal",
                                            schema="analytics", login="etl", password="s3cret!", port=5432,
                                            extra='{"sslmode": "require"}'), {"exclude_unset": True, "by_alias": True}),
    "VariableResult": (c.VariableResult(key="greeting", value="hello"), {"exclude_unset": True}),
    "XComResult": (c.XComResult(key="return_value", value={"rows": 3, "ok": True}), {}),
    "OKResponse": (c.OKResponse(ok=True), {}),
    "ErrorResponse": (c.ErrorResponse(error="VARIABLE_NOT_FOUND", detail={"key": "missing"}), {}),
    "DagRunStateResult": (c.DagRunStateResult(state="running"), {}),
    "InactiveAssetsResult": (c.InactiveAssetsResult(inactive_assets=[]), {"exclude_unset": True}),
    "XComCountResponse": (c.XComCountResponse(len=3), {}),
    "XComSequenceSliceResult": (c.XComSequenceSliceResult(root=[1, 2, 3]), {}),
    "TaskRescheduleStartDate": (c.TaskRescheduleStartDate(start_date=T0), {}),
    "TaskRescheduleStartDateNone": (c.TaskRescheduleStartDate(start_date=None), {}),
}


def write(name: str, frame) -> None:
    body = bytes(frame.as_bytes())[4:]
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(body)


for i, (name, msg) in enumerate(requests.items(), start=1):
    write("req_" + name, c._RequestFrame(id=i, body=msg.model_dump()))
write("req_GetVariable_carrier", c._RequestFrame(id=7, body=requests["GetVariable"].model_dump(),
                                                 context_carrier={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}))
for i, (name, (msg, opts)) in enumerate(responses.items()):
    write("resp_" + name, c._ResponseFrame(id=i, body=msg.model_dump(**opts)))
write("resp_error", c._ResponseFrame(id=9, error=c.ErrorResponse(error="API_SERVER_ERROR", detail={"status_code": 400, "message": "Unhandled request"}).model_dump()))
write("resp_none", c._ResponseFrame(id=10))
print(f"wrote {len(requests) + len(responses) + 3} frames to {OUT}", file=sys.stderr)
