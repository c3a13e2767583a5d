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
