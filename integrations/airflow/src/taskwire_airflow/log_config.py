"""Airflow's logging configuration with taskwire's task logs.

``AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS=taskwire_airflow.log_config.LOGGING_CONFIG``
keeps Airflow's default logging and adds ``REMOTE_TASK_LOG``: Airflow reads a
try's log from taskwire's logs API (taskwire_airflow.logs), with the
``[taskwire]`` settings of the executor (api_url, token).
"""

from __future__ import annotations

from copy import deepcopy

from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

from taskwire_airflow.client import Client
from taskwire_airflow.logs import TaskwireLogIO
from taskwire_airflow.spec import Settings

LOGGING_CONFIG = deepcopy(DEFAULT_LOGGING_CONFIG)


def _client() -> Client:
    from airflow.configuration import conf

    def get(key: str, fallback: str = "") -> str:
        v = conf.get("taskwire", key, fallback=fallback)
        return v if v is not None else fallback

    s = Settings.from_conf(get)
    return Client(s.api_url, s.token)


REMOTE_TASK_LOG = TaskwireLogIO(_client)
