"""A fork server for Airflow workloads on a taskwire worker's machine.

Importing Airflow's runner costs a Python process seconds of CPU; Airflow's
LocalExecutor pays it once, in worker processes it forks ahead. This server
does the same for taskwire: it imports Airflow once and forks a child per
workload. ``taskwire_airflow.run`` (the command taskwire's worker runs, which
imports nothing of Airflow) hands the server its environment and its stdin,
stdout and stderr (SCM_RIGHTS), waits for the child's exit code and exits
with it; taskwire's worker supervises ``run`` as before, and the child's
output reaches taskwire's log stream through the passed descriptors.

Run one per worker machine, as the worker's user, beside the worker::

    python -m taskwire_airflow.forkserver --socket /run/taskwire/airflow.sock

and give the workers' tasks ``AIRFLOW__TASKWIRE__FORKSERVER_SOCKET`` with that
path (the executor's ``[taskwire] worker_env``, or the worker's environment).
When the socket does not answer, ``run`` runs the workload itself.

Each child starts a session of its own. When its ``run`` goes (the worker
cancelled or lost the task: the connection closes), the child kills every
other process of its session (Airflow's task process among them) and exits.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
import threading

from taskwire_airflow._wire import recv_exit, recv_request, send_exit, send_request  # noqa: F401


def _session_members(sid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == sid:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[3] == str(sid):
            pids.append(int(name))
    return pids


def _watch_caller(conn: socket.socket) -> None:
    """In the child: when run's connection closes, kill the session and exit."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    me = os.getpid()
    for pid in _session_members(me):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(1)


def _child(conn: socket.socket, env: dict[str, str], fds: list[int]) -> None:
    code = 1
    try:
        os.setsid()
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update(env)
        threading.Thread(target=_watch_caller, args=(conn,), daemon=True).start()
        from taskwire_airflow.run import run_in_process

        code = run_in_process()
    except BaseException as e:  # report, never return into the server's loop
        try:
            print(f"taskwire_airflow.forkserver: {e!r}", file=sys.stderr, flush=True)
        except Exception:
            pass
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        send_exit(conn, code)
    finally:
        os._exit(code & 0xFF)


def serve(path: str) -> None:
    # What every workload needs, imported once (seconds of CPU each time
    # otherwise).
    from taskwire_airflow.run import preload

    preload()

    # What is loaded now moves out of the collector's reach: a child's
    # collections then do not write to (so copy) the pages it shares with
    # this process (CPython's advice for pre-forking servers).
    gc.collect()
    gc.freeze()

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        srv.bind(path)
    finally:
        os.umask(old)
    srv.listen(128)
    print(f"taskwire_airflow.forkserver: ready on {path}", flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            env, fds = recv_request(conn)
        except Exception as e:
            print(f"taskwire_airflow.forkserver: bad request: {e!r}", file=sys.stderr, flush=True)
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            srv.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _child(conn, env, fds)
        for fd in fds:
            os.close(fd)
        conn.close()
        print(f"taskwire_airflow.forkserver: workload in child {pid}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", required=True, help="unix socket path to listen on")
    serve(p.parse_args().socket)


if __name__ == "__main__":
    main()
