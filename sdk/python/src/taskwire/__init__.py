"""taskwire: the Python task SDK.

A task runtime registers task functions by task id and hands control to
App.main(), which speaks the task protocol with the worker that started it::

    import taskwire

    app = taskwire.App()

    @app.task("extract")
    def extract(ctx):
        ctx.log.info("extracting", extra={"day": ctx.params.get("day")})
        return {"rows": 3}            # pushed as XCom "return_value"

    @app.task("wait")
    def wait(ctx):
        ctx.defer(trigger="timedelta", kwargs={"delta": 30}, method="resume")

    @app.method("wait", "resume")
    def wait_resume(ctx):
        return ctx.event

    if __name__ == "__main__":
        app.main()

The worker starts the program per task try with --comm ADDR --logs ADDR
(or TASKWIRE_COMM_ADDR / TASKWIRE_LOGS_ADDR) and --codec msgpack|json (or
TASKWIRE_CODEC). Standard library only; Python 3.9 or later.
"""

from .client import Client
from .context import FAIL_METHOD, Connection, Context, RunContext, TaskInstance, go_duration
from .errors import APIError, Fail, NotFound, Skip, TaskDeferred, TaskwireError, TooLarge, WorkerGone
from .protocol import JSON, MSGPACK, FrameTooLarge, ProtocolError
from .runtime import App, dial, serve_one

from typing import Any

__version__ = "0.1.0"


def rate_limit(key: "str | None" = None) -> "Any":
    """Paces a trigger of the Python trigger runtime by the cluster's rate
    limit ``key``: ``await taskwire.rate_limit(key)`` or
    ``async with taskwire.rate_limit(key):``; see
    :class:`taskwire.airflow_triggers.rate_limit`."""
    from .airflow_triggers import rate_limit as _rate_limit

    return _rate_limit(key)


__all__ = [
    "App", "Context", "TaskInstance", "RunContext", "Connection",
    "APIError", "NotFound", "TooLarge", "WorkerGone", "TaskDeferred", "Skip", "Fail", "TaskwireError",
    "ProtocolError", "FrameTooLarge", "MSGPACK", "JSON", "FAIL_METHOD",
    "Client", "serve_one", "dial", "go_duration", "rate_limit",
]
