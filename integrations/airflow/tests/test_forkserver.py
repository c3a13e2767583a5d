"""The fork server with real processes: run hands it a workload, the child's
output goes to run's own stdout/stderr, its exit code becomes run's."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest


@pytest.fixture
def forkserver(tmp_path):
    path = str(tmp_path / "fs.sock")
    p = subprocess.Popen(
        [sys.executable, "-m", "taskwire_airflow.forkserver", "--socket", path],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        for line in p.stdout:  # after Airflow's imports (which may log)
            seen.append(line)
            if "ready on" in line:
                break
        assert seen and "ready on" in seen[-1], seen
        yield path
    finally:
        p.kill()
        p.wait()


def run(env_extra):
    env = dict(os.environ, **env_extra)
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "taskwire_airflow.run"], env=env, capture_output=True, text=True)
    return r, time.monotonic() - start


def test_bad_workload_through_forkserver(forkserver):
    r, _ = run({"AIRFLOW__TASKWIRE__FORKSERVER_SOCKET": forkserver, "TASKWIRE_AIRFLOW_WORKLOAD": '{"type": "nope"}'})
    assert r.returncode == 2, r
    # Printed by the fork server's child, onto run's own stderr.
    assert "bad workload JSON" in r.stderr
    assert "running the workload here" not in r.stderr


def test_missing_workload_and_absent_server(tmp_path):
    r, _ = run({"AIRFLOW__TASKWIRE__FORKSERVER_SOCKET": str(tmp_path / "none.sock"), "TASKWIRE_AIRFLOW_WORKLOAD": ""})
    assert r.returncode == 2
    assert "running the workload here" in r.stderr
    assert "TASKWIRE_AIRFLOW_WORKLOAD is not set" in r.stderr
