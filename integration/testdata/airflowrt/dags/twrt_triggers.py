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
