"""Run one Airflow task with Airflow's own task runner under a taskwire worker.

The worker's ``airflow`` runtime starts ``python -m taskwire.airflow_runtime``
in an environment with the pinned ``apache-airflow-task-sdk``. This shim does
what Airflow's supervisor does for a task process it forks, and nothing else:

* it dials the worker's comm address (``TASKWIRE_COMM_ADDR``) and puts the
  socket on file descriptor 0, where Airflow's runner expects its end of the
  supervisor channel;
* it presents the worker's secret (``TASKWIRE_COMM_SECRET``) first on both
  connections, as every taskwire runtime does;
* it dials the logs address (``TASKWIRE_LOGS_ADDR``) and points Airflow's
  structured logging at it (JSON lines, as Airflow sends its supervisor);
* it calls the runner's ``main()``, unchanged.

The worker then speaks Airflow's dialect of the task protocol on the channel.
Only the standard library and Airflow are imported.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys


def _dial(addr: str) -> socket.socket:
    """Connect to a worker address: host:port, or an absolute unix socket path."""
    if addr.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr)
        return s
    host, _, port = addr.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)))


def main() -> None:
    comm_addr = os.environ.get("TASKWIRE_COMM_ADDR")
    logs_addr = os.environ.get("TASKWIRE_LOGS_ADDR")
    if not comm_addr or not logs_addr:
        sys.exit("taskwire.airflow_runtime: TASKWIRE_COMM_ADDR and TASKWIRE_LOGS_ADDR must be set (run by a taskwire worker)")

    secret = os.environ.get("TASKWIRE_COMM_SECRET", "")
    comm = _dial(comm_addr)
    # The secret first, before Airflow's runner takes the socket: the worker
    # sends it nothing until then (taskwire.protocol.auth_frame; not
    # imported, to keep this shim's start to the standard library).
    auth = json.dumps({"type": "Auth", "secret": secret}, separators=(",", ":")).encode()
    comm.sendall(struct.pack(">I", len(auth)) + auth)
    os.dup2(comm.fileno(), 0)
    comm.close()

    logs = _dial(logs_addr)
    logs.sendall(json.dumps({"secret": secret}, separators=(",", ":")).encode() + b"\n")
    log_fd = os.dup(logs.fileno())
    logs.close()

    from airflow.sdk.log import configure_logging, reset_logging

    reset_logging()
    configure_logging(json_output=True, output=os.fdopen(log_fd, "wb", buffering=0), sending_to_supervisor=True)

    from airflow.sdk.execution_time import task_runner

    task_runner.main()


def preload() -> None:
    """What a prefork zygote of the airflow runtime imports before it forks
    (worker.yaml ``prefork``; taskwire.prefork): Airflow's task runner and
    what it imports as it runs a task (the DAG bag that parses the DAG file,
    Airflow's models and serialization, logging, the standard provider's
    operators, sensors and triggers), which every task process would
    otherwise import again: seconds of CPU. The list comes from the
    zygote's TASKWIRE_PREFORK_TRACE output (modules a child imported after
    the fork); one the installed version lacks is skipped."""
    import importlib

    import airflow.sdk  # noqa: F401
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    import airflow.sdk.log  # noqa: F401

    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


_PRELOAD = (
    # the runner's startup: the DAG bag, the bundle, the models
    "airflow.dag_processing.dagbag",
    "airflow.dag_processing.bundles.local",
    "airflow.dag_processing.importers.python_importer",
    "airflow.serialization.serialized_objects",
    "airflow.models.dag",
    "airflow.models.dagrun",
    "airflow.models.taskinstance",
    "airflow.models.xcom",
    "airflow.models.taskmap",
    "airflow.plugins_manager",
    "airflow.listeners.listener",
    "airflow.executors.workloads",
    "airflow.api_fastapi.execution_api.datamodels.taskinstance",
    "airflow.assets.manager",
    "airflow.callbacks.callback_requests",
    "airflow.ti_deps.dependencies_deps",
    "airflow.timetables.interval",
    "airflow.timetables.simple",
    "airflow.triggers.base",
    "airflow.triggers.temporal",
    "airflow.triggers.file",
    "airflow.triggers.external_task",
    # logging as the shim configures it
    "airflow.sdk._shared.logging.structlog",
    "airflow.sdk._shared.logging.remote",
    "airflow.sdk._shared.logging.factory",
    "airflow.version",
    # the Task SDK's definitions a DAG file uses
    "airflow.sdk.bases.decorator",
    "airflow.sdk.bases.sensor",
    "airflow.sdk.definitions.dag",
    "airflow.sdk.definitions.decorators",
    "airflow.sdk.definitions.decorators.task_group",
    "airflow.sdk.definitions.decorators.setup_teardown",
    "airflow.sdk.definitions.timetables.interval",
    "airflow.sdk.definitions.timetables.trigger",
    "airflow.sdk.definitions.timetables.events",
    "airflow.sdk.execution_time.context",
    "airflow.sdk.definitions.asset.metadata",
    "airflow.sdk.definitions.connection",
    # the standard provider
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.bash",
    "airflow.providers.standard.operators.empty",
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.sensors.date_time",
    "airflow.providers.standard.sensors.time_delta",
    "airflow.providers.standard.triggers.temporal",
    # third-party modules they import lazily
    "jinja2.ext",
    "dill",
    "croniter",
    "cron_descriptor",
    "setproctitle",
    "tabulate",
    "multiprocessing",
    "getpass",
    "termios",
    "encodings.idna",
)


if __name__ == "__main__":
    main()
