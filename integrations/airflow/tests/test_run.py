"""taskwire_airflow.run as a worker runs it: a process of its own, or a
prefork zygote's child (runpy, as __main__, in a process that ran
preload())."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import taskwire
import taskwire_airflow

# The children import the same code as this test (pytest's pythonpath).
_PATH = os.pathsep.join(os.path.dirname(os.path.dirname(m.__file__)) for m in (taskwire_airflow, taskwire))


def run(env_extra):
    env = dict(os.environ, PYTHONPATH=_PATH, **env_extra)
    return subprocess.run([sys.executable, "-m", "taskwire_airflow.run"], env=env, capture_output=True, text=True)


def test_bad_and_missing_workload():
    r = run({"TASKWIRE_AIRFLOW_WORKLOAD": '{"type": "nope"}'})
    assert r.returncode == 2, r
    assert "bad workload JSON" in r.stderr
    r = run({"TASKWIRE_AIRFLOW_WORKLOAD": ""})
    assert r.returncode == 2, r
    assert "TASKWIRE_AIRFLOW_WORKLOAD is not set" in r.stderr


def script(body: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__LOGGING__")}
    env["PYTHONPATH"] = _PATH
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(body)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_zygote_child_uses_what_preload_built():
    # A zygote's child runs the module as __main__ (a fresh namespace): it
    # must use the imported module's workload validator, built by preload
    # before the fork, not build its own.
    r = script(
        """
        import os, runpy
        import taskwire_airflow.run as r
        r.preload()
        built, used = r.workload_adapter(), []
        def adapter():
            used.append(1)
            return built
        r.workload_adapter = adapter
        os.environ["TASKWIRE_AIRFLOW_WORKLOAD"] = '{"type": "nope"}'
        try:
            runpy.run_module("taskwire_airflow.run", run_name="__main__", alter_sys=True)
        except SystemExit as e:
            assert e.code == 2, e.code
        assert used == [1], used
        print("ok")
        """
    )
    assert "ok" in r.stdout and "bad workload JSON" in r.stderr


def test_logging_configured_once_per_settings():
    # preload configures Airflow's logging; a child with the same [logging]
    # environment keeps it, one whose settings differ configures it again.
    script(
        """
        import logging, os
        import taskwire_airflow.run as r
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        r.configure_logging()
        root = logging.getLogger()
        assert root.level == logging.WARNING, root.level
        root.setLevel(logging.DEBUG)  # undone only by configuring again
        r.configure_logging()
        assert root.level == logging.DEBUG, root.level
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
        r.configure_logging()
        assert root.level == logging.ERROR, root.level
        """
    )
