"""A small client of taskwire's public API (the executor's /api/v1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


class TaskwireError(Exception):
    """An error answer of taskwire's API."""

    def __init__(self, op: str, status: int, body: str):
        super().__init__(f"taskwire {op}: HTTP {status}: {body.strip()[:500]}")
        self.status = status


class NotFound(TaskwireError):
    """The task instance does not exist (HTTP 404)."""


class Client:
    """taskwire's public API: submit, get, cancel and watch task instances."""

    def __init__(self, base_url: str, token: str = "", timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._base = base_url.rstrip("/")
        self._headers = headers
        # Built once: an httpx.Client builds its own TLS context otherwise
        # (certifi's CAs: tens of milliseconds of CPU), every watch's too.
        self._ssl = httpx.create_ssl_context()
        self._http = httpx.Client(base_url=self._base, headers=headers, timeout=timeout, verify=self._ssl)

    @property
    def base_url(self) -> str:
        return self._base

    def close(self) -> None:
        self._http.close()

    def _check(self, op: str, r: httpx.Response) -> Any:
        if r.status_code == 404:
            raise NotFound(op, r.status_code, r.text)
        if r.status_code >= 400:
            raise TaskwireError(op, r.status_code, r.text)
        return r.json()

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """POST /api/v1/activities: queue one task; returns its record."""
        return self._check("submit", self._http.post("/api/v1/activities", json=spec))

    def get(self, ti_id: str) -> dict[str, Any]:
        return self._check(f"get {ti_id}", self._http.get(f"/api/v1/task-instances/{ti_id}"))

    def list(self, dag_id: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """GET /api/v1/task-instances: task instances, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if dag_id:
            params["dag_id"] = dag_id
        return self._check("list", self._http.get("/api/v1/task-instances", params=params))["task_instances"]

    def logs(self, ti_id: str, try_number: int = 0) -> list[dict[str, Any]]:
        """GET /api/v1/task-instances/{id}/logs: its log lines (of one try
        of taskwire's, or of all when try_number is 0), each a JSON object."""
        params = {"try": try_number} if try_number else {}
        r = self._http.get(f"/api/v1/task-instances/{ti_id}/logs", params=params)
        if r.status_code >= 400:
            self._check(f"logs {ti_id}", r)
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def cancel(self, ti_id: str) -> dict[str, Any]:
        return self._check(f"cancel {ti_id}", self._http.post(f"/api/v1/task-instances/{ti_id}/cancel"))

    def watch(self, ti_id: str, read_timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """GET /api/v1/task-instances/{id}/watch: the record now, then every
        revision as it is written, until it is finished. Each call opens its
        own connection (httpx.Client is not meant to be shared by threads
        that each hold a stream open)."""
        timeout = httpx.Timeout(30.0, read=read_timeout)
        with httpx.Client(base_url=self._base, headers=self._headers, timeout=timeout, verify=self._ssl) as c:
            with c.stream("GET", f"/api/v1/task-instances/{ti_id}/watch") as r:
                if r.status_code >= 400:
                    r.read()
                    self._check(f"watch {ti_id}", r)
                for line in r.iter_lines():
                    if line.strip():
                        yield json.loads(line)
