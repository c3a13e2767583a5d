"""The worker side: run one Airflow workload as a taskwire task.

A taskwire worker starts ``python3 -m taskwire_airflow.run`` (the command
the executor put in the activity) with the workload's JSON in
TASKWIRE_AIRFLOW_WORKLOAD. It hands the workload to Airflow's own runner
(``BaseExecutor.run_workload``: the Task SDK's supervisor, which forks the
task and talks to Airflow's API server with the workload's token) and exits
with its exit code, so taskwire's record of the try says whether the task
process succeeded. The supervisor's and the task's logs go to stdout, which
the taskwire worker ships to taskwire's log stream.
"""

from __future__ import annotations

import os
import sys

from taskwire_airflow.spec import WORKLOAD_ENV


def main() -> int:
    data = os.environ.pop(WORKLOAD_ENV, None)
    if not data:
        print(f"taskwire_airflow.run: {WORKLOAD_ENV} is not set", file=sys.stderr)
        return 2

    from pydantic import TypeAdapter

    from airflow.executors import workloads

    try:
        workload = TypeAdapter(workloads.All).validate_json(data)
    except Exception as e:  # a bad workload: say what, fail the try
        print(f"taskwire_airflow.run: bad workload JSON: {e}", file=sys.stderr)
        return 2

    from airflow.executors.base_executor import BaseExecutor
    from airflow.sdk.log import configure_logging
    from airflow.settings import dispose_orm

    # As Airflow's execute_workload does: no database here, JSON logs on stdout.
    dispose_orm(do_log=False)
    configure_logging(output=sys.stdout.buffer, json_output=True)
    rc = BaseExecutor.run_workload(
        workload,
        subprocess_logs_to_stdout=True,
        proctitle=f"airflow supervisor (taskwire): {workload.display_name}",
    )
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
