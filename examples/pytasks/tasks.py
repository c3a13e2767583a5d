#!/usr/bin/env python3
"""A task runtime built with the Python SDK (sdk/python, installed as a
package: pip install ./sdk/python): the worker starts it per task try and it
runs the task the try names.

    python3 examples/pytasks/tasks.py --comm {comm_addr} --logs {logs_addr} [--codec json]

or, in a worker runtime file:

    queues:
      python:
        command: [python3, examples/pytasks/tasks.py, --comm, "{comm_addr}", --logs, "{logs_addr}"]

Tasks:

- noop: succeeds.
- read_config: reads variable "greeting" and connection "db", logs them and
  pushes XCom "greeting".
- push: pushes XCom "value" = 42 and returns 42 (XCom "return_value").
- pull: pulls XCom "value" of task push in the same run; fails (no retry)
  unless it is 42.
- fail: raises ValueError("failing on purpose"), retried while tries remain.
- wait: defers on a "timedelta" trigger of params.seconds (default 1), then
  resumes in "resume", which logs "resumed" with the trigger's event and
  returns the event.
- transform: pulls XCom "value" of task params.from_task (default
  "extract") and returns it doubled (the polyglot pipeline's middle step).
"""

import taskwire

app = taskwire.App()


@app.task("noop")
def noop(ctx):
    ctx.log.info("nothing to do")


@app.task("read_config")
def read_config(ctx):
    greeting = ctx.variable("greeting")
    conn = ctx.connection("db")
    ctx.log.info("read config", extra={
        "greeting": greeting, "conn_id": conn.conn_id, "conn_type": conn.conn_type,
        "host": conn.host, "port": conn.port, "login": conn.login,
    })
    ctx.xcom_push("greeting", greeting)


@app.task("push")
def push(ctx):
    ctx.xcom_push("value", 42)
    ctx.log.info("pushed xcom", extra={"key": "value", "value": 42})
    return 42


@app.task("pull")
def pull(ctx):
    v = ctx.xcom_pull(task_id="push", key="value")
    ctx.log.info("pulled xcom", extra={"task_id": "push", "key": "value", "value": v})
    if isinstance(v, bool) or v != 42:
        raise taskwire.Fail("xcom value of push is %r, want 42" % (v,))


@app.task("fail")
def fail(ctx):
    raise ValueError("failing on purpose")


@app.task("wait")
def wait(ctx):
    seconds = ctx.params.get("seconds", 1)
    if seconds is None:
        seconds = 1
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise taskwire.Fail("params.seconds is %r, want a number" % (seconds,))
    ctx.log.info("deferring", extra={"seconds": seconds})
    ctx.defer(trigger="timedelta", kwargs={"delta": seconds}, method="resume")


@app.method("wait", "resume")
def wait_resume(ctx):
    ctx.log.info("resumed", extra={"trigger_event": ctx.event})
    return ctx.event


@app.task("transform")
def transform(ctx):
    src = ctx.params.get("from_task") or "extract"
    value = ctx.xcom_pull(task_id=src, key="value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise taskwire.Fail("xcom value of %s is %r, want a number" % (src, value))
    result = value * 2
    ctx.log.info("transformed", extra={"from_task": src, "value": value, "result": result})
    return result


if __name__ == "__main__":
    app.main()
