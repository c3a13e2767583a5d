"""taskwire's pre-forking runtime process (the "zygote") of a worker queue.

A taskwire worker whose queue has ``prefork`` in worker.yaml starts
``python -m taskwire.prefork`` once, with a SOCK_SEQPACKET unix socket on
file descriptor 3 and the modules to import in TASKWIRE_PREFORK_PRELOAD (a
JSON list of "module" or "module:function", the function called with no
argument once the module is imported). The zygote imports them, freezes
what it loaded out of the garbage collector's reach (gc.freeze, so that the
children's collections do not copy the pages they share with it) and says
``{"ready": pid}``. Then, for each request

    {"id": N, "argv": [python, "-m", module, args...], "env": {...}, "cwd": "..."}

with the task's stdin, stdout and stderr attached (SCM_RIGHTS), it forks a
child that starts a session of its own, takes those descriptors, the
environment and the working directory, and runs ``module`` as ``python -m``
would (runpy, as __main__, with sys.argv); it answers ``{"id": N, "pid":
P}`` (or ``{"id": N, "error": "..."}``), and ``{"id": N, "exit": STATUS}``
(the raw wait status) when it reaped the child.

With TASKWIRE_PREFORK_SPARE=N the zygote keeps N children forked ahead
("spares"), each already in its own session and waiting on a socket of its
own: a request goes to a spare, which takes its descriptors, environment and
working directory and runs the module at once (no fork on the task's path),
and the zygote forks a new spare when no request is waiting. A spare that
is gone is replaced (after a second when it died unused), and a request
finds a fresh fork when no spare is left.

The worker supervises each child as a process of its own: it kills the
child's session on cancel or timeout, reads its output, and takes the exit
status from here. The child dies with the zygote (PR_SET_PDEATHSIG); when
the worker's end of the socket closes (the worker stopped or died) or the
zygote gets SIGTERM, the zygote kills every child's session and exits.

Only the standard library is imported here.
"""

from __future__ import annotations

import array
import ctypes
import gc
import importlib
import io
import json
import os
import runpy
import select
import signal
import socket
import sys
import time
import traceback
import warnings
from typing import Any, Callable, NoReturn

CONTROL_FD = 3
PRELOAD_ENV = "TASKWIRE_PREFORK_PRELOAD"
SPARE_ENV = "TASKWIRE_PREFORK_SPARE"
#: Wait before a spare that died unused is replaced.
_SPARE_RETRY = 1.0
MAX_MESSAGE = 4 << 20
#: TASKWIRE_PREFORK_TRACE=1 in the zygote's environment (prefork.env): each
#: child prints, as it exits, its time and the modules it imported after the
#: fork (candidates for preload).
_TRACE = bool(os.environ.get("TASKWIRE_PREFORK_TRACE"))
_PR_SET_PDEATHSIG = 1
#: In a child: when (time.time()) the zygote read its fork request and when
#: the child began, for a workload's own trace of its start (the zygote runs
#: as __main__ and is also registered as taskwire.prefork, so a child reads
#: these with ``from taskwire import prefork``). 0 in the zygote.
request_at = 0.0
forked_at = 0.0


def _send(ctl: socket.socket, msg: dict[str, Any]) -> None:
    try:
        ctl.send(json.dumps(msg).encode())
    except OSError:
        pass  # the worker is gone: the loop sees it on its next read


def _recv(ctl: socket.socket, size: int = MAX_MESSAGE) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancdata, _flags, _addr = ctl.recvmsg(size, socket.CMSG_SPACE(16 * fds.itemsize))
    for level, typ, cdata in ancdata:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    return data, list(fds)


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


def _kill_sessions(pids: list[int]) -> None:
    for pid in pids:
        for target in (-pid, pid, *_session_members(pid)):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass


def _preload(specs: list[str]) -> None:
    for spec in specs:
        mod, _, fn = spec.partition(":")
        m = importlib.import_module(mod)
        if fn:
            getattr(m, fn)()


#: The function a preloaded module may define for its forked tasks: called
#: with the task's sys.argv, environment and stdio in place of running the
#: module as __main__; its return value is the exit code (None is 0), as
#: sys.exit takes it.
PREFORK_MAIN = "prefork_main"


def _set_environ(env: dict[str, str]) -> None:
    """Make os.environ the task's env, changing only what differs from the
    zygote's (mostly the same): clearing it all and setting it again costs a
    child ≈ 2 ms and hundreds of page faults on a copy-on-write heap."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _detach(parent: int, libc: Any, close: list[int]) -> None:
    """In a fresh child: a session of its own, death with the zygote, the
    default signal handlers, none of the zygote's descriptors."""
    os.setsid()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(137)  # the zygote died between fork and prctl
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd in close:
        try:
            os.close(fd)
        except OSError:
            pass


def _spare(sock: socket.socket, parent: int, libc: Any, close: list[int]) -> NoReturn:
    """A child forked ahead: wait for a request on sock, then become its
    task; never returns. Its request comes as "<request_at>\\n<request>"
    with the task's three descriptors."""
    global request_at, forked_at
    try:
        _detach(parent, libc, close)
        data, fds = _recv(sock, MAX_MESSAGE + 64)
        sock.close()
        if not data:
            os._exit(0)  # not needed any more
        forked_at = time.time()
        at, _, data = data.partition(b"\n")
        request_at = float(at)
        req = json.loads(data)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    _child(req, fds, parent, libc, [], detached=True)


def _child(req: dict[str, Any], fds: list[int], parent: int, libc: Any, close: list[int], detached: bool = False) -> NoReturn:
    """Become the task: never returns."""
    global forked_at
    if not detached:
        forked_at = time.time()
    code = 1
    trace: Callable[[], None] | None = None
    try:
        if not detached:
            _detach(parent, libc, close)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        env = req.get("env") or {}
        _set_environ(env)
        if req.get("cwd"):
            os.chdir(req["cwd"])
        if env.get("PYTHONUNBUFFERED"):
            for s in (sys.stdout, sys.stderr):
                if isinstance(s, io.TextIOWrapper):
                    s.reconfigure(line_buffering=True)
        argv = req["argv"]
        if len(argv) < 3 or argv[1] != "-m":
            raise ValueError(f"argv {argv!r}: want [python, -m, module, args...]")
        sys.argv = [argv[0], *argv[3:]]
        if _TRACE:
            before, began = set(sys.modules), time.monotonic()

            def trace() -> None:
                new = sorted(set(sys.modules) - before)
                print(
                    f"taskwire.prefork: {time.monotonic() - began:.3f}s in the child; {len(new)} modules imported"
                    f" after the fork (candidates for preload): {' '.join(new)}",
                    file=sys.stderr,
                    flush=True,
                )
        # A preloaded module that defines prefork_main() has it called
        # instead of its code run again as __main__ (taskwire_airflow.run:
        # ≈ 3 ms and 230 page faults less per child).
        entry = getattr(sys.modules.get(argv[2]), PREFORK_MAIN, None)
        try:
            if callable(entry):
                code = _exit_code(entry())
            else:
                # A preloaded module run as __main__ is expected here.
                warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package", category=RuntimeWarning)
                runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
                code = 0
        except SystemExit as e:
            code = _exit_code(e.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        if trace is not None:
            trace()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(ctl: socket.socket) -> None:
    global request_at
    try:
        _preload(json.loads(os.environ.pop(PRELOAD_ENV, "") or "[]") or [])
    except BaseException as e:
        traceback.print_exc()
        _send(ctl, {"error": f"preload: {e!r}"})
        sys.exit(1)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        libc = None

    rd, wr = os.pipe()
    os.set_blocking(rd, False)
    os.set_blocking(wr, False)
    signal.set_wakeup_fd(wr)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid → request id
    spares: dict[int, socket.socket] = {}  # pid → its socket, oldest first
    want_spares = max(0, int(os.environ.pop(SPARE_ENV, "") or 0))
    spare_at = 0.0  # no spare forked before (time.monotonic())

    zygote = os.getpid()

    def stop(*_: object) -> None:
        if os.getpid() != zygote:
            os._exit(143)  # a child not yet past its signal reset: only itself
        _kill_sessions([*children, *spares])
        os._exit(0)

    def fork_spare() -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:
            print(f"taskwire.prefork: fork a spare: {e}", file=sys.stderr, flush=True)
            mine.close()
            theirs.close()
            return
        if pid == 0:
            _spare(theirs, zygote, libc, [ctl.fileno(), rd, wr, mine.fileno(), *(s.fileno() for s in spares.values())])
        theirs.close()
        spares[pid] = mine

    def hand_to_spare(data: bytes, fds: list[int]) -> int:
        """Give the request to the oldest live spare: its pid, or 0."""
        while spares:
            pid = next(iter(spares))
            sock = spares.pop(pid)
            try:
                sock.sendmsg([b"%.6f\n" % request_at + data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                return pid
            except OSError:
                pass  # gone: reaped below
            finally:
                sock.close()
        return 0

    signal.signal(signal.SIGTERM, stop)
    gc.collect()
    gc.freeze()
    _send(ctl, {"ready": zygote})
    while True:
        timeout = None
        if len(spares) < want_spares:
            timeout = max(0.0, spare_at - time.monotonic())
        try:
            ready, _, _ = select.select([ctl.fileno(), rd], [], [], timeout)
        except InterruptedError:
            continue
        if not ready and len(spares) < want_spares:
            fork_spare()  # nothing waits: now the next spare
            continue
        if rd in ready:
            try:
                while os.read(rd, 512):
                    pass
            except BlockingIOError:
                pass
            while children or spares:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                rid = children.pop(pid, None)
                if rid is not None:
                    _send(ctl, {"id": rid, "exit": status})
                elif pid in spares:
                    spares.pop(pid).close()
                    spare_at = time.monotonic() + _SPARE_RETRY
        if ctl.fileno() in ready:
            try:
                data, fds = _recv(ctl)
            except OSError:
                data, fds = b"", []
            request_at = time.time()
            if not data:
                stop()  # the worker is gone
            try:
                req = json.loads(data)
                rid = req["id"]
            except Exception as e:
                print(f"taskwire.prefork: bad request: {e!r}", file=sys.stderr, flush=True)
                for fd in fds:
                    os.close(fd)
                continue
            if len(fds) != 3:
                _send(ctl, {"id": rid, "error": f"want 3 descriptors (stdin, stdout, stderr), got {len(fds)}"})
                for fd in fds:
                    os.close(fd)
                continue
            pid = hand_to_spare(data, fds)
            if pid == 0:
                sys.stdout.flush()
                sys.stderr.flush()
                try:
                    pid = os.fork()
                except OSError as e:
                    _send(ctl, {"id": rid, "error": f"fork: {e}"})
                    pid = -1
                if pid == 0:
                    _child(req, fds, zygote, libc, [ctl.fileno(), rd, wr, *(s.fileno() for s in spares.values())])
            for fd in fds:
                os.close(fd)
            if pid > 0:
                children[pid] = rid
                _send(ctl, {"id": rid, "pid": pid})


def main() -> None:
    if __name__ == "__main__":
        sys.modules.setdefault("taskwire.prefork", sys.modules[__name__])
    try:
        ctl = socket.socket(fileno=CONTROL_FD)
    except OSError as e:
        sys.exit(f"taskwire.prefork: no control socket on fd {CONTROL_FD} ({e}): started by a taskwire worker only")
    serve(ctl)


if __name__ == "__main__":
    main()
