"""Where the start of an Airflow workload forked from a prefork zygote
spends its CPU: the worker's side of the last segment of
BenchmarkAirflowQueuedToStart, without Airflow's services.

    .venv-airflow/bin/python integrations/airflow/bench/zygote_start.py [N]

starts the real zygote (``python -m taskwire.prefork`` with the preload of
integrations/airflow/worker.yaml, this checkout's packages) on a socket as
a worker does, and sends it N fork requests of ``taskwire_airflow.run``
with an ExecuteTask workload, one at a time. Each child runs the workload
with Airflow's runner until Airflow's supervisor has forked the task process
and is about to call the Execution API's ``…/run`` (where Airflow stamps the
try's start_date): there it reports and exits (nothing listens on the
Execution API address). Printed: wall time from the request to that point,
the child's CPU (user + sys), the zygote's CPU per fork, and CPU and wall
time between the steps (measurement hooks around Airflow's functions, in
the child only). CPU is what the machine's load inflates least: compare
two checkouts by it, alternating runs.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

CHILD = "TASKWIRE_ZYGOTE_START_CHILD"
PRELOAD = ["taskwire_airflow.run:preload", "taskwire.airflow_runtime:preload"]


def child() -> None:
    """In the zygote's child: hook the steps, run taskwire_airflow.run."""
    import runpy

    t0, c0 = time.time(), time.process_time()
    import airflow.sdk.log as slog
    import airflow.settings as settings
    from airflow.sdk.execution_time import supervisor as sup

    marks: list[tuple[str, float, float]] = []

    def mark(name: str) -> None:
        marks.append((name, (time.time() - t0) * 1000, (time.process_time() - c0) * 1000))

    def hook(obj, name, label, cls=False):
        f = getattr(obj, name)
        f = f.__func__ if cls else f

        def w(*a, **k):
            mark(label + " <")
            try:
                return f(*a, **k)
            finally:
                mark(label + " >")

        if hasattr(f, "cache_clear"):
            w.cache_clear = f.cache_clear
        setattr(obj, name, classmethod(w) if cls else w)

    hook(slog, "configure_logging", "configure_logging")
    hook(settings, "dispose_orm", "dispose_orm")
    hook(sup, "ensure_secrets_backend_loaded", "secrets")
    hook(sup.WatchedSubprocess, "start", "supervisor start", cls=True)
    hook(os, "fork", "fork of the task process")

    def on_started(self, **kw):
        mark("…/run")
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass
        out = {"t_end": time.time(), "t_begin": t0, "marks": marks}
        os.write(0, (json.dumps(out) + "\n").encode())
        os._exit(0)

    sup.ActivitySubprocess._on_child_started = on_started
    mark("run module")
    runpy.run_module("taskwire_airflow.run", run_name="__main__", alter_sys=True)


def workload() -> str:
    return json.dumps(
        {
            "type": "ExecuteTask",
            "token": "not-a-token",
            "ti": {
                "id": str(uuid.uuid4()),
                "task_id": "t",
                "dag_id": "d",
                "run_id": "r",
                "try_number": 1,
                "dag_version_id": str(uuid.uuid4()),
                "map_index": -1,
                "queue": "default",
                "pool_slots": 1,
                "priority_weight": 1,
            },
            "dag_rel_path": "d.py",
            "bundle_info": {"name": "dags-folder"},
            "log_path": None,
        }
    )


def cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    tmp = tempfile.mkdtemp(prefix="zygote-start-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AIRFLOW_HOME": tmp,
        "PYTHONPATH": os.pathsep.join([f"{root}/integrations/airflow/src", f"{root}/sdk/python/src", here]),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:9/execution/",
    }
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    began = time.time()
    z = subprocess.Popen(
        [sys.executable, "-m", "taskwire.prefork"],
        env=dict(env, TASKWIRE_PREFORK_PRELOAD=json.dumps(PRELOAD)),
        preexec_fn=lambda: os.dup2(theirs.fileno(), 3),
        pass_fds=[3],
        stdout=subprocess.DEVNULL,
    )
    theirs.close()
    msg = json.loads(mine.recv(1 << 20))
    if "ready" not in msg:
        sys.exit(f"zygote: {msg}")
    with open(f"/proc/{z.pid}/status") as f:
        rss = next(line.split(":")[1].strip() for line in f if line.startswith("VmRSS"))
    print(f"zygote ready in {time.time() - began:.1f} s, RSS {rss}")
    out = open(os.path.join(tmp, "children.log"), "ab")
    results = []
    zc0 = cpu_ms(z.pid)
    for i in range(n):
        r, w = os.pipe()
        t0 = time.time()
        req = {"id": i, "argv": [sys.executable, "-m", "zygote_start"], "env": dict(env, TASKWIRE_AIRFLOW_WORKLOAD=workload(), **{CHILD: "1"}), "cwd": tmp}
        socket.send_fds(mine, [json.dumps(req).encode()], [w, out.fileno(), out.fileno()])
        os.close(w)
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            line += chunk
        os.close(r)
        if not line:
            sys.exit(f"a child reported nothing: see {out.name}")
        d = json.loads(line)
        d["wall"] = (d["t_end"] - t0) * 1000
        results.append(d)
        mine.setblocking(False)
        try:
            while True:
                mine.recv(1 << 16)
        except BlockingIOError:
            pass
        mine.setblocking(True)
        time.sleep(0.05)  # the child's exit reaped before the next fork
    zcpu = (cpu_ms(z.pid) - zc0) / n
    z.terminate()
    z.wait()
    wall = [d["wall"] for d in results]
    cpu = [d["marks"][-1][2] for d in results]
    print(f"{n} workloads: request → supervisor at …/run p50 {statistics.median(wall):.1f} ms (min {min(wall):.1f});"
          f" child CPU p50 {statistics.median(cpu):.1f} ms (min {min(cpu):.1f}); zygote CPU per fork {zcpu:.1f} ms")
    steps: dict[str, list[tuple[float, float]]] = {}
    for d in results:
        for (a, wa, ca), (b, wb, cb) in zip(d["marks"], d["marks"][1:]):
            steps.setdefault(f"{a} → {b}", []).append((wb - wa, cb - ca))
    for k, v in steps.items():
        print(f"  {k:60s} CPU mean {sum(c for _, c in v) / len(v):6.2f} ms, wall p50 {statistics.median(x for x, _ in v):6.1f} ms")


if __name__ == "__main__":
    if os.environ.get(CHILD):
        child()
    else:
        main()
