"""A custom async trigger, not one taskwire has built in: it runs in the
triggerer's Python trigger runtime (taskwire.airflow_triggers)."""

from __future__ import annotations

import asyncio
import os

from airflow.triggers.base import BaseTrigger, TriggerEvent


class FileAppearsTrigger(BaseTrigger):
    """Fires when path exists, with the file's content."""

    def __init__(self, path: str, poll: float = 0.1):
        super().__init__()
        self.path = path
        self.poll = poll

    def serialize(self):
        return ("twrt_triggers.FileAppearsTrigger", {"path": self.path, "poll": self.poll})

    async def run(self):
        while not os.path.exists(self.path):
            await asyncio.sleep(self.poll)
        with open(self.path) as f:
            content = f.read().strip()
        yield TriggerEvent({"path": self.path, "content": content})


class EndTaskTrigger(BaseTrigger):
    """Ends its task from the triggerer (Airflow's end_from_trigger): yields
    TaskSuccessEvent (with xcoms), TaskFailedEvent or TaskSkippedEvent."""

    def __init__(self, state: str):
        super().__init__()
        self.state = state

    def serialize(self):
        return ("twrt_triggers.EndTaskTrigger", {"state": self.state})

    async def run(self):
        from airflow.triggers.base import TaskFailedEvent, TaskSkippedEvent, TaskSuccessEvent

        if self.state == "success":
            yield TaskSuccessEvent(xcoms={"verdict": "ended in the triggerer", "return_value": 7})
        elif self.state == "failed":
            yield TaskFailedEvent()
        else:
            yield TaskSkippedEvent()


def _status(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


class PollApiTrigger(BaseTrigger):
    """Polls url until it answers 200, each request paced by taskwire's rate
    limit rate_key (rate_limit() takes the trigger's rate_key kwarg): what a
    subclass wrapping a provider trigger's poll does (README)."""

    def __init__(self, url: str, rate_key: str):
        super().__init__()
        self.url = url
        self.rate_key = rate_key

    def serialize(self):
        return ("twrt_triggers.PollApiTrigger", {"url": self.url, "rate_key": self.rate_key})

    async def run(self):
        from taskwire.airflow_triggers import rate_limit

        polls = 0
        while True:
            async with rate_limit():  # a token, and an in-flight place until the poll ends
                status = await asyncio.to_thread(_status, self.url)
            polls += 1
            if status == 200:
                yield TriggerEvent({"status": status, "polls": polls})
                return
            await asyncio.sleep(0.01)


class ReadSecretsTrigger(BaseTrigger):
    """Reads a Variable and a Connection the ways Airflow's triggers do (sync
    inside run() through greenback's portal, async, and from a thread), and
    writes the password to its log (the triggerer must mask it)."""

    def __init__(self, conn_id: str, var_key: str):
        super().__init__()
        self.conn_id = conn_id
        self.var_key = var_key

    def serialize(self):
        return ("twrt_triggers.ReadSecretsTrigger", {"conn_id": self.conn_id, "var_key": self.var_key})

    async def run(self):
        import hashlib
        import sys

        from asgiref.sync import sync_to_async

        from airflow.sdk import Connection, Variable

        greeting = Variable.get(self.var_key)
        conn = await Connection.async_get(self.conn_id)
        same = await sync_to_async(Connection.get)(self.conn_id)
        missing = Variable.get("twrt_no_such_variable", default="fallback")
        print(f"trigger read {conn.conn_id}: login={conn.login} password={conn.password}", file=sys.stderr, flush=True)
        yield TriggerEvent({
            "greeting": greeting,
            "host": conn.host,
            "login": same.login,
            "extra": conn.extra_dejson,
            "password_sha256": hashlib.sha256(conn.password.encode()).hexdigest(),
            "missing": missing,
        })
